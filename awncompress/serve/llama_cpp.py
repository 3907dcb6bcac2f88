"""llama.cpp: the source tree whose converter writes GGUF, and llama-cpp-python, which quantizes and runs it.

The converter (``convert_hf_to_gguf.py`` with its ``conversion/`` package and ``gguf-py``) is in no
wheel; it ships in the ``llama-cpp-python`` source distribution, whose llama.cpp is the one the
installed llama-cpp-python runs, so the file is written and checked by the same llama.cpp. awncompress
runs that converter only from a tree the user names (``--llama-cpp DIR`` or ``AWNCOMPRESS_LLAMA_CPP``),
never one it merely finds; which architectures the tree converts is read from its source without
running it, before anything is written.
"""

from __future__ import annotations

import ast
import ctypes
import functools
import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import AwnError, UnsupportedModelError, first_line
from .formats import require

log = logging.getLogger("awncompress")
LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
GET_TREE = (
    f"pip download {LLAMA_CPP_PYTHON} --no-deps --no-binary :all: -d /tmp/llama && "
    "tar -xzf /tmp/llama/llama_cpp_python-0.3.36.tar.gz -C /tmp/llama, then pass "
    "--llama-cpp /tmp/llama/llama_cpp_python-0.3.36/vendor/llama.cpp (or set AWNCOMPRESS_LLAMA_CPP)"
)
INSTALL_RUNTIME = f"pip install {LLAMA_CPP_PYTHON} (it builds llama.cpp from source, several minutes)"
CONVERTER = "convert_hf_to_gguf.py"
QUANT_FTYPES = {"q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}


# Where llama.cpp's converter cannot say an awncompress export as it stands, the same converter runs with
# one method of one model class replaced before its main() starts (code from here, never from a file):
# * deci-bpe: DeciLM picks its vocabulary reader by size (Llama 3's 128,256 → BPE, else Llama 2's
#   byte-fallback reader); a plain BPE such as SmolLM2's goes to the BPE reader its other models use.
# * gpt2-widths: GPT-2's writes the FFN width as 4 · n_embd whatever the config says, and reads n_ctx,
#   which transformers 5 no longer writes; the width comes from n_inner, n_ctx from n_positions.
CONVERTER_PATCHES = {
    "deci-bpe": """
import conversion.deci as deci
deci.DeciModel.set_vocab = deci.DeciModel._set_vocab_gpt2
""",
    "gpt2-widths": """
import conversion.gpt2 as gpt2
plain = gpt2.GPT2Model.set_gguf_parameters
def set_gguf_parameters(self):
    self.hparams.setdefault("n_ctx", self.hparams["n_positions"])
    writer, n_inner = self.gguf_writer, self.hparams.get("n_inner")
    if n_inner:
        add = writer.add_feed_forward_length
        writer.add_feed_forward_length = lambda four_n_embd: add(n_inner)
    try:
        plain(self)
    finally:
        writer.__dict__.pop("add_feed_forward_length", None)
gpt2.GPT2Model.set_gguf_parameters = set_gguf_parameters
""",
}
PATCH_FOR_MODEL_TYPE = {"gpt2": "gpt2-widths"}  # families whose converter always needs its patch
_LAUNCH = """\
import runpy, sys
tree = sys.argv.pop(1)
sys.path[:0] = [tree, tree + "/gguf-py"]
{patch}
sys.argv[0] = tree + "/convert_hf_to_gguf.py"
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class LlamaCppError(AwnError, RuntimeError):
    """llama.cpp's converter, quantizer or runtime failed, or no usable llama.cpp tree was named."""


def check_tree(tree: Optional[Path]) -> Path:
    """The named llama.cpp tree, resolved, if it holds the converter; else one line saying how to get one."""
    if tree is None or str(tree) == "":
        raise LlamaCppError(f"GGUF export runs llama.cpp's own converter; name its source tree: {GET_TREE}")
    tree = Path(tree).expanduser().resolve()
    missing = [p for p in (CONVERTER, "conversion/__init__.py", "gguf-py/gguf/__init__.py") if not (tree / p).is_file()]
    if missing:
        raise LlamaCppError(f"{tree} is not a llama.cpp source tree (no {missing[0]}): {GET_TREE}")
    return tree


@functools.lru_cache(maxsize=8)
def convertible(tree: Path) -> frozenset[str]:
    """The Hugging Face architectures the tree's converter registers (``@ModelBase.register("...")``),
    read from its source with ``ast``, not by running it."""
    names: set[str] = set()
    for path in sorted((tree / "conversion").glob("*.py")):
        try:
            parsed = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(parsed):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "register":
                names |= {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return frozenset(names)


def check_tree_for(tree: Optional[Path], architecture: Optional[str], has_tokenizer: bool) -> Path:
    """Everything a GGUF export needs, checked before anything is written: the tree, an architecture its
    converter knows, the model's tokenizer (GGUF embeds it) and llama-cpp-python to run the check."""
    tree = check_tree(tree)
    if architecture not in convertible(tree):
        raise UnsupportedModelError(f"llama.cpp's converter in {tree} has no architecture for {architecture}")
    if not has_tokenizer:
        raise UnsupportedModelError("GGUF files embed the tokenizer, and this export has none")
    require("gguf", "Reading the GGUF's tensor types")
    return tree


def has_runtime() -> bool:
    """Whether llama-cpp-python (llama.cpp itself) is installed to quantize and run GGUF files."""
    return importlib.util.find_spec("llama_cpp") is not None


def check_runtime_for(quant: str, per_layer: bool) -> None:
    """Without llama-cpp-python, f32 / f16 / q8_0 files (the converter writes those itself) are checked in
    transformers' GGUF loader instead, with a warning; k-quants (llama.cpp's quantizer makes them) and
    per-layer DECI files (transformers has no DECI loader) are refused in one line."""
    if has_runtime():
        return
    if quant in QUANT_FTYPES:
        require("llama_cpp", f"{quant} (llama.cpp's quantizer)", INSTALL_RUNTIME)
    if per_layer:
        require("llama_cpp", "A per-layer GGUF check (transformers has no DECI loader)", INSTALL_RUNTIME)
    log.warning(
        "llama-cpp-python is not installed: each GGUF file is checked in transformers' GGUF loader (gguf-py) "
        "instead of llama.cpp (%s)",
        INSTALL_RUNTIME,
    )


def converter_patch(model_type: Optional[str], deci_bpe: bool) -> Optional[str]:
    """The key of :data:`CONVERTER_PATCHES` a conversion runs with (None: the converter as it is);
    ``deci_bpe``: a DeciLM folder whose BPE tokenizer is not Llama 3's (deci.check_deci_tokenizer)."""
    return "deci-bpe" if deci_bpe else PATCH_FOR_MODEL_TYPE.get(model_type or "")


def run_converter(tree: Path, hf: Path, outfile: Path, outtype: str, patch: Optional[str] = None) -> None:
    """``python convert_hf_to_gguf.py HF --outfile F --outtype T`` in a subprocess (the tree's own
    gguf-py is the one it imports); a failure is one line with the converter's last error line.
    ``patch``: a key of :data:`CONVERTER_PATCHES` to run the converter with (see converter_patch)."""
    hf, outfile = Path(hf).resolve(), Path(outfile).resolve()  # the converter runs in another directory
    launch = _LAUNCH.format(patch=CONVERTER_PATCHES[patch]) if patch else None
    script = ["-c", launch, str(tree)] if launch else [str(tree / CONVERTER)]
    cmd = [sys.executable, *script, str(hf), "--outfile", str(outfile), "--outtype", outtype]
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}
    done = subprocess.run(cmd, cwd=str(outfile.parent), env=env, capture_output=True, text=True)
    if done.returncode != 0 or not outfile.is_file():
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        last = next(
            (line for line in reversed(lines) if "Error" in line or "error" in line), lines[-1] if lines else ""
        )
        raise LlamaCppError(f"llama.cpp's converter failed on {hf.name}: {last.strip()[:300]}")


@functools.lru_cache(maxsize=1)
def silence_log() -> Any:
    """Route llama.cpp's log to nowhere (its loader and quantizer print hundreds of lines)."""
    import llama_cpp

    @llama_cpp.llama_log_callback
    def _drop(level, text, user_data):  # noqa: ARG001
        return None

    llama_cpp.llama_log_set(_drop, ctypes.c_void_p(0))
    return _drop  # kept alive by the cache


def quantize(src: Path, dst: Path, quant: str, threads: int) -> None:
    """``llama_model_quantize`` through llama-cpp-python's C binding (no separate binary)."""
    import llama_cpp

    silence_log()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_FTYPES[quant])
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0 or not dst.is_file():
        raise LlamaCppError(f"llama.cpp could not quantize {src.name} to {quant} (code {rc})")


def run_logits(path: Path, ids: list[int], threads: int) -> np.ndarray:
    """The logits llama.cpp gives at every position of ``ids`` (shape [len(ids), vocab], float32)."""
    import llama_cpp

    silence_log()
    try:
        llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=max(32, len(ids) + 1),
            n_batch=max(32, len(ids)),
            logits_all=True,
            n_threads=threads,
            n_gpu_layers=0,
            type_k=llama_cpp.GGML_TYPE_F32,  # the KV cache in f32 (llama.cpp's default is f16), so the check
            type_v=llama_cpp.GGML_TYPE_F32,  # measures the file, not the cache's rounding
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise LlamaCppError(f"llama.cpp cannot load {path.name}: {first_line(exc)}") from None
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)], dtype=np.float32)
    finally:
        llm.close()


def runtime_version() -> str:
    """What runs the check: llama-cpp-python, else transformers' GGUF loader."""
    if not has_runtime():
        import transformers

        return f"transformers {transformers.__version__} GGUF loader (llama-cpp-python not installed)"
    import llama_cpp

    return f"llama-cpp-python {llama_cpp.__version__}"


def transformers_logits(path: Path, ids: list[int]) -> np.ndarray:
    """The logits at every position of ``ids`` from the GGUF file as transformers' GGUF loader reads it
    (de-quantized to float32): the check when llama.cpp itself is not installed."""
    import torch
    import transformers

    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except (ValueError, RuntimeError, OSError, KeyError) as exc:
        raise LlamaCppError(f"transformers' GGUF loader cannot read {path.name}: {first_line(exc)}") from None
    with torch.no_grad():
        return model.eval()(input_ids=torch.tensor([ids])).logits[0].float().numpy()
