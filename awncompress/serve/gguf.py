"""GGUF exports for llama.cpp: llama.cpp's own converter on the transformers export, llama-cpp-python's
quantizer for k-quants, and a check in llama.cpp itself before the file is renamed into place.

The check feeds one fixed prompt's token ids to both the transformers export and the GGUF file in
llama.cpp and compares the logits at every position: f32 and f16 must agree to a tight tolerance;
quantized files must keep the next-token perplexity of the prompt within a stated factor
(:data:`BOUNDS`); top-1 agreement is recorded, not bounded.

k-quants need rows that are a multiple of 256: a tensor whose rows are not (``ffn_down`` at an FFN
width that is not, or every projection when the hidden size is not) is quietly written in another
type by llama.cpp. The types actually written are read back from the file, every fallback is named
in one warning, and they are recorded in ``awncompress.json`` (``gguf.fallbacks``).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from ..errors import UnsupportedModelError
from .common import PROMPT
from .llama_cpp import (
    QUANT_FTYPES,
    converter_patch,
    has_runtime,
    quantize,
    run_converter,
    run_logits,
    runtime_version,
    transformers_logits,
)

log = logging.getLogger("awncompress")
CONVERTER_TYPES = {"f32": "f32", "f16": "f16", "q8_0": "q8_0", "q4_k_m": "f16"}  # q4_k_m quantizes the f16 file
# quant → (max |logit diff| relative to max(1, max |logit|), or None; perplexity ratio bound, or None).
# A quantized file's prompt perplexity must lie within a factor of the transformers export's, either way;
# top-1 agreement is measured and recorded but not a bound (on near-flat logits it flips at random).
BOUNDS = {
    "f32": (1e-4, None),
    "f16": (2e-2, None),
    "q8_0": (None, 1.05),
    "q4_k_m": (None, 1.25),
}
PROMPT_TOKENS = 48
QUANTIZED = ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K")


def write_gguf(
    reference: nn.Module,
    hf: Path,
    final: Path,
    scratch: Path,
    quant: str,
    tree: Path,
    convert_from: Optional[Path] = None,
    deci_bpe: bool = False,
) -> tuple[str, dict]:
    """Convert the hf export ``hf`` (or ``convert_from``, the same weights under another config) into
    ``final/model-<quant>.gguf``, check it against ``reference`` (the export loaded in transformers);
    returns the file name and the record entries. ``deci_bpe``: see llama_cpp.converter_patch."""
    convert_from = convert_from or hf
    patch = converter_patch(reference.config.model_type, deci_bpe)
    name = f"model-{quant}.gguf"
    threads = max(1, min(8, os.cpu_count() or 1))
    if quant in QUANT_FTYPES:  # quantized by llama.cpp's quantizer from the converter's f16 file
        base = scratch / "model-f16.gguf"
        run_converter(tree, convert_from, base, CONVERTER_TYPES[quant], patch)
        quantize(base, final / name, quant, threads)
        base.unlink()
    else:
        run_converter(tree, convert_from, final / name, CONVERTER_TYPES[quant], patch)
    types = tensor_types(final / name)
    fallbacks = kquant_fallbacks(types) if quant in QUANT_FTYPES else []
    if fallbacks:
        log.warning("%s", fallback_warning(quant, fallbacks))
    check = check_gguf(reference, hf, final / name, quant, threads)
    return name, {
        "gguf": {
            "quant": quant,
            "converter": str(tree / "convert_hf_to_gguf.py"),
            "tensor_types": dict(Counter(t for t, _ in types.values())),
            "fallbacks": fallbacks,
        },
        "check": check,
    }


def tensor_types(path: Path) -> dict[str, tuple[str, int]]:
    """Tensor name → (GGML type name, row length) as written in the file."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {t.name: (t.tensor_type.name, int(t.shape[0])) for t in reader.tensors}


def kquant_fallbacks(types: dict[str, tuple[str, int]]) -> list[dict]:
    """The 2-D weights of a k-quant file written in a non-k type, grouped by role (``ffn_down`` …) and row length."""
    groups: dict[tuple[str, int], list[str]] = {}
    for name, (kind, rows) in types.items():
        if kind in QUANTIZED or kind in ("F32", "F16", "BF16") or not name.endswith(".weight"):
            continue
        parts = name.split(".")
        role = ".".join(parts[2:-1]) if parts[0] == "blk" else ".".join(parts[:-1])
        groups.setdefault((role, rows), []).append(kind)
    return [
        {"tensor": role, "rows": rows, "type": "/".join(sorted(set(kinds))), "layers": len(kinds)}
        for (role, rows), kinds in sorted(groups.items())
    ]


def fallback_warning(quant: str, fallbacks: list[dict]) -> str:
    shown = "; ".join(
        f"{f['tensor']} (rows of {f['rows']}, {f['layers']} tensor{'s' if f['layers'] > 1 else ''}) as {f['type']}"
        for f in fallbacks
    )
    return (
        f"{quant}: k-quants need rows that are a multiple of 256, so llama.cpp wrote {shown} instead of a "
        "k-quant; round FFN widths with --multiple 256 (rows set by the hidden size cannot be rounded)"
    )


def prompt_ids(hf: Path, vocab: int) -> list[int]:
    """The fixed prompt, tokenized by the export's own tokenizer (ids within the model's vocabulary)."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
    ids = [int(i) for i in tokenizer(PROMPT)["input_ids"] if 0 <= int(i) < vocab][:PROMPT_TOKENS]
    if len(ids) < 4:
        raise UnsupportedModelError("the export's tokenizer gives fewer than 4 tokens for the check prompt")
    return ids


def _perplexity(logits: np.ndarray, ids: list[int]) -> float:
    """exp of the mean negative log-likelihood of ids[1:] given the logits at the positions before."""
    z = torch.from_numpy(logits[:-1]).double()
    nll = torch.nn.functional.cross_entropy(z, torch.tensor(ids[1:]), reduction="mean")
    return float(torch.exp(nll))


def check_gguf(reference: nn.Module, hf: Path, path: Path, quant: str, threads: int) -> dict[str, Any]:
    """Compare llama.cpp's logits with the transformers export's on the prompt; raise past :data:`BOUNDS`."""
    ids = prompt_ids(hf, int(reference.config.vocab_size))
    with torch.no_grad():
        ref = reference(input_ids=torch.tensor([ids])).logits[0].float().numpy()
    got = run_logits(path, ids, threads) if has_runtime() else transformers_logits(path, ids)
    if got.shape != ref.shape:
        raise UnsupportedModelError(f"llama.cpp gave logits of shape {list(got.shape)}, transformers {list(ref.shape)}")
    diff = float(np.abs(got - ref).max())
    scale = max(1.0, float(np.abs(ref).max()))
    ppl_ref, ppl_got = _perplexity(ref, ids), _perplexity(got, ids)
    top1 = float((got.argmax(-1) == ref.argmax(-1)).mean())
    rel, ppl_bound = BOUNDS[quant]
    measured = {
        "runtime": runtime_version(),
        "prompt_tokens": len(ids),
        "max_abs_diff": float(f"{diff:.3g}"),
        "next_token_max_abs_diff": float(f"{np.abs(got[-1] - ref[-1]).max():.3g}"),
        "perplexity": [float(f"{ppl_ref:.4g}"), float(f"{ppl_got:.4g}")],
        "top1_agreement": round(top1, 4),
    }
    if rel is not None:
        ok = diff <= rel * scale
        measured["tolerance"] = f"max |logit diff| <= {rel:g} x max(1, max |logit|) = {rel * scale:.3g}"
        what = f"max |logit difference| {diff:.3g} > {rel * scale:.3g}"
    else:
        ratio = ppl_got / ppl_ref
        ok = 1 / ppl_bound <= ratio <= ppl_bound
        measured["tolerance"] = f"prompt perplexity within a factor {ppl_bound:g} of the transformers export's"
        what = f"perplexity {ppl_got:.4g} vs {ppl_ref:.4g} (ratio {ratio:.3g}), top-1 agreement {top1:.0%}"
    if not ok:  # NaN fails too
        raise UnsupportedModelError(
            f"the {quant} GGUF does not match the transformers export in llama.cpp: {what}; nothing was written"
        )
    where = "llama.cpp" if has_runtime() else "transformers' GGUF loader (no llama-cpp-python)"
    measured["summary"] = (
        f"{where} logits on a {len(ids)}-token prompt: {measured['tolerance']} (max diff {diff:.2g}, top-1 {top1:.0%})"
    )
    return measured
