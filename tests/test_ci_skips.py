"""The CI hook (ci_skips.py): with CI set, every kind of skip fails and names its reason; without it,
or with CI=false, the same tests skip. Each case runs pytest in a subprocess on a small test file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ci_skips import in_ci

TESTS = Path(__file__).parent

SKIPS = """
import pytest


@pytest.fixture
def asset():
    pytest.skip("fixture: asset unavailable")


def test_runs():
    pass


def test_skips_in_its_body():
    pytest.skip("body: no network")


@pytest.mark.skip(reason="mark: not today")
def test_skip_mark():
    pass


@pytest.mark.skipif(True, reason="skipif: always")
def test_skipif_mark():
    pass


def test_skips_in_a_fixture(asset):
    pass


@pytest.mark.xfail(reason="known bug", strict=False)
def test_expected_failure():
    assert False
"""

MODULE_SKIP = """
import pytest

pytest.importorskip("no_such_module_awn_ci", reason="module: no_such_module_awn_ci is not installed")


def test_never_collected():
    pass
"""


def _pytest(tmp_path: Path, source: str, ci: str | None) -> tuple[int, dict[str, int], str]:
    """Exit code, outcome counts of the summary line, and the output of pytest on ``source``."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_sample.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    args = [sys.executable, "-m", "pytest", "-p", "ci_skips", "-p", "no:cacheprovider", "-rA", str(tmp_path)]
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    summary = output.strip().splitlines()[-1]
    counts = {noun.rstrip("s"): int(n) for n, noun in re.findall(r"(\d+) (\w+)", summary)}
    return proc.returncode, counts, output


@pytest.mark.parametrize("ci", [None, "false", "0"])
def test_locally_a_skip_still_skips(tmp_path, ci):
    code, counts, output = _pytest(tmp_path, SKIPS, ci)
    assert code == 0, output
    assert counts == {"passed": 1, "skipped": 4, "xfailed": 1}, output


@pytest.mark.parametrize("ci", ["true", "1"])
def test_in_ci_every_skip_fails_and_names_its_reason(tmp_path, ci):
    code, counts, output = _pytest(tmp_path, SKIPS, ci)
    assert code == 1, output
    # A skip in the body fails the test; one in setup (a mark, a fixture) is an error; xfail stays.
    assert counts == {"passed": 1, "failed": 1, "error": 3, "xfailed": 1}, output
    assert "skipped" not in counts, output
    for reason in ("body: no network", "mark: not today", "skipif: always", "fixture: asset unavailable"):
        assert f"in CI (CI={ci}) no test may skip; this one would skip: {reason}" in output, output


def test_a_module_that_skips_fails_collection_in_ci(tmp_path):
    code, counts, output = _pytest(tmp_path, MODULE_SKIP, None)
    assert code == 5 and counts == {"skipped": 1}, output  # 5: no tests ran
    code, counts, output = _pytest(tmp_path, MODULE_SKIP, "true")
    assert code == 2 and counts == {"error": 1}, output  # 2: collection errors
    assert "no test may skip; this one would skip: module: no_such_module_awn_ci is not installed" in output


def test_what_counts_as_ci(monkeypatch):
    for value, on in [("true", True), ("1", True), ("yes", True), ("", False), ("0", False), ("false", False)]:
        monkeypatch.setenv("CI", value)
        assert in_ci() is on, value
    monkeypatch.delenv("CI")
    assert not in_ci()
