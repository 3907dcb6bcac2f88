"""The house rules a reader relies on: stage folders that import only downwards, no import circles, small modules,
short functions, few top-level modules."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "awncompress"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60  # body lines, the docstring not counted
# The subpackages in data-flow order: each may import only those before it (and the top-level errors/version).
# config composes every stage's settings section, so it sits above the stages it reads the recipe into.
# The command line sits on top of everything.
LAYERS = ["files", "model", "data", "train", "checkpoint", "serve", "evaluate", "report", "config", "run", "cli"]
BASE = {"awncompress.errors", "awncompress.version"}
TOP_MODULES = {"__init__.py", "__main__.py", "errors.py", "version.py"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for p in PACKAGE.rglob("*.py")
        if "metrics" not in p.relative_to(PACKAGE).parts[:-1] or p.name == "__init__.py"
    }


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """awncompress modules ``name`` imports anywhere in its file (function-level imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    found.add(f"{base}.{alias.name}")
                elif base in known:
                    found.add(base)
    return found - {name}


def test_no_import_circles():
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    # A submodule importing its own package's __init__ is how Python packages work, not a circle.
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle = trail[trail.index(dep) :] + [dep] if dep in trail else [node, dep]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, trail + [dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_modules_are_small_and_functions_short():
    too_long = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(PACKAGE)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                if (
                    isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)
                ):
                    body = body[1:] or body
                lines = body[-1].end_lineno - body[0].lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}: {lines} lines")
    assert not too_long, too_long


def _layer(module: str) -> int | None:
    """The index of ``module``'s subpackage in LAYERS; None for the top-level modules."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def _upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import that points back up the data flow (or from a stage to the package root)."""
    bad = []
    for module, deps in sorted(graph.items()):
        here = _layer(module)
        if here is None:
            continue
        for dep in sorted(deps - BASE):
            there = _layer(dep)
            if there is None or there > here:
                bad.append(f"{module} imports {dep}")
    return bad


def test_stages_import_only_downwards():
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert not _upward_imports(graph)


def test_few_modules_at_the_top():
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top <= TOP_MODULES, sorted(top - TOP_MODULES)
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(LAYERS)


def test_the_layout_checks_can_fail(tmp_path):
    # The circle finder sees function-level imports too (the kind that hid pipeline <-> evaluate_run).
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from ..evaluate import matrix\n")
    known = {"awncompress.evaluate.matrix", "awncompress.data.sources"}
    assert _imports("awncompress.data.sources", a, known) == {"awncompress.evaluate.matrix"}
    # ... and the layering check catches that import, and one from a stage up to the CLI, but not one downwards.
    graph = {
        "awncompress.data.sources": {"awncompress.evaluate.matrix", "awncompress.errors"},
        "awncompress.model.ffn": {"awncompress.cli"},
        "awncompress.run.convert": {"awncompress.data.sources"},
    }
    assert _upward_imports(graph) == [
        "awncompress.data.sources imports awncompress.evaluate.matrix",
        "awncompress.model.ffn imports awncompress.cli",
    ]
