"""Which serving formats exist, which model families each applies to, and their folder names.

Everything here is decided from the model's config and class name alone, so a request that cannot
be served is refused in one line before any weights are loaded or any folder is made.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional, Sequence, Union

from ..errors import AwnError, UnsupportedModelError

FORMATS = ("hf", "onnx", "gguf", "vllm")
QUANTS = ("f32", "f16", "q8_0", "q4_k_m")
DEFAULT_QUANT = "f16"
SERVE_EXTRA = "pip install 'awncompress[serve]'"
# Families whose model classes the torch ONNX exporter traces (checked by tests/test_serve_onnx.py);
# encoder–decoder stacks need a split encoder/decoder graph, which this export does not build.
ONNX_REFUSED = {"t5", "mt5", "bart", "mbart"}
CAUSAL_LM_HEADS = ("ForCausalLM", "LMHeadModel")  # GPT-2's causal LM class is GPT2LMHeadModel
ONNX_HEADS = ("ForSequenceClassification", *CAUSAL_LM_HEADS)


class MissingDependencyError(AwnError, ImportError):
    """An optional package a serving format needs is not installed."""


def require(module: str, what: str, install: str = SERVE_EXTRA) -> None:
    """MissingDependencyError naming the ``pip install`` to run when ``module`` cannot be imported."""
    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(f"{what} needs the Python package {module!r}: {install}")


def parse_formats(text: Union[str, Sequence[str], None]) -> list[str]:
    """'hf,gguf' or ['hf', 'gguf'] → ['hf', 'gguf'] (deduplicated, order kept); unknown names are an error."""
    names = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text or [])]
    names = [n for n in names if n]
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise AwnError(f"unknown export format {bad[0] if bad else text!r}; choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(names))


def check_quant(quant: Optional[str], fmt: str) -> Optional[str]:
    """The GGUF quantization to write (``f16`` by default); a quant given for another format is an error."""
    if quant is None:
        return DEFAULT_QUANT if fmt == "gguf" else None
    if fmt != "gguf":
        raise AwnError(f"--quant applies to --format gguf only (not {fmt})")
    if quant.lower() not in QUANTS:
        raise AwnError(f"unknown GGUF quantization {quant!r}; choose from {', '.join(QUANTS)}")
    return quant.lower()


def check_applies(fmt: str, model_type: Optional[str], architecture: Optional[str]) -> None:
    """UnsupportedModelError (one line) when ``fmt`` cannot serve this family or task head.

    GGUF: llama.cpp runs causal language models; the architectures its converter knows are checked
    against the llama.cpp tree itself (``llama_cpp.convertible``) once the tree is named.
    """
    arch = architecture or "?"
    if fmt == "hf":
        return
    if fmt == "onnx":
        if model_type in ONNX_REFUSED:
            raise UnsupportedModelError(
                f"ONNX export of encoder–decoder models ({model_type}) is not supported: use --format hf"
            )
        if not arch.endswith(ONNX_HEADS):
            raise UnsupportedModelError(
                f"ONNX export takes a sequence classifier or a causal LM, not {arch}: use --format hf"
            )
        return
    if fmt == "vllm" and not arch.endswith(CAUSAL_LM_HEADS):
        raise UnsupportedModelError(f"--format vllm writes causal language models; {arch} ({model_type}) is not one")
    if fmt == "gguf" and not arch.endswith(CAUSAL_LM_HEADS):
        raise UnsupportedModelError(
            f"GGUF is for causal language models that llama.cpp runs; {arch} ({model_type}) is not one "
            "(llama.cpp has no N-label classification head): use --format onnx or hf"
        )


def served_dir(
    out: Union[str, Path], width_key: str, fmt: str, quant: Optional[str] = None, prefix: str = "width-"
) -> Path:
    """``OUT/width-0.5-onnx`` or ``OUT/width-0.5-gguf-q4_k_m`` (the hf export stays ``OUT/width-0.5``);
    ``prefix="per-layer"``, no width: ``OUT/per-layer-gguf-q4_k_m`` (the hf one is ``OUT/per-layer``)."""
    suffix = "" if fmt == "hf" else f"-{fmt}" + (f"-{quant}" if quant else "")
    return Path(out) / f"{prefix}{width_key}{suffix}"


def require_for(fmt: str) -> None:
    """One line naming the install when a package ``fmt`` needs is missing (GGUF: see llama_cpp.check_tree_for)."""
    if fmt == "onnx":
        for module in ("onnx", "onnxscript", "onnxruntime"):
            require(module, "ONNX export")
