"""One served export: a width of a folded model in a serving engine's format (ONNX or GGUF).

The engine file is made from the uniform (hf) export at that width, the same folder
``export_uniform`` writes, so what is checked is exactly the transformers export a user would
load; see common.py for the temp folders and the rename.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from torch import nn

from ..checkpoint.export import export_per_layer, export_uniform, is_export
from ..checkpoint.layout import width_key
from ..checkpoint.load import load_pretrained
from ..checkpoint.provenance import read_provenance
from ..errors import UnsupportedModelError
from ..files.atomic import atomic_dir, check_writable
from ..model.surgery import Width
from .common import copy_side_files, finish, scratch_beside, served_record
from .deci import DECI_ARCHITECTURE, check_deci, check_deci_tokenizer, ffn_mult, write_deci_folder
from .formats import check_applies, require_for, served_dir

log = logging.getLogger("awncompress")


def export_served(
    model: nn.Module,
    out: Union[str, Path],
    width: Union[Width, Sequence[int]],
    fmt: str,
    *,
    quant: Optional[str] = None,
    tokenizer: Any = None,
    source: Optional[str] = None,
    multiple: Optional[int] = None,
    overwrite: bool = False,
    llama_cpp: Optional[Path] = None,
    folder: Optional[Path] = None,
) -> Path:
    """Write ``model`` cut to ``width`` as ``fmt`` ("onnx" or "gguf") under ``out``
    (``OUT/width-<w>-onnx``, ``OUT/width-<w>-gguf-<quant>``, or ``folder`` when given).

    ``width``: a fraction or neuron count for every layer, or one width per layer (a per-layer export;
    as GGUF it is written as llama.cpp's DECI architecture, see deci.py). The file is run in its engine
    (onnxruntime, llama-cpp-python) and compared with the transformers export before the folder is
    renamed into place; a mismatch raises and leaves nothing behind. ``llama_cpp``: the llama.cpp source
    tree whose converter writes GGUF (see llama_cpp.py).
    """
    per_layer = isinstance(width, (list, tuple))
    check_applies(fmt, model.config.model_type, type(model).__name__)
    require_for(fmt)
    if fmt == "vllm" and not per_layer:
        raise UnsupportedModelError(
            "a uniform export serves in vLLM as it is (vllm serve OUT/width-<w>, the hf export); --format vllm "
            "writes the learned per-layer widths: give --learned without --widths"
        )
    if fmt == "vllm" and tokenizer is None:
        raise UnsupportedModelError("vllm serve reads the tokenizer from the folder, and this export has none")
    deci_bpe = False
    if per_layer and fmt in ("gguf", "vllm"):
        check_deci(model.config, [int(w) for w in width])
    if per_layer and fmt == "gguf":
        deci_bpe = check_deci_tokenizer(tokenizer, int(model.config.vocab_size))
    if per_layer and folder is None:
        raise ValueError("a per-layer served export needs folder=")
    target = folder or served_dir(out, width_key(width) if isinstance(width, float) else str(width), fmt, quant)
    check_writable(target, overwrite, is_export)
    tree = None
    if fmt == "gguf":
        from .llama_cpp import check_runtime_for, check_tree_for

        arch = DECI_ARCHITECTURE if per_layer else type(model).__name__
        tree = check_tree_for(llama_cpp, arch, tokenizer is not None)
        check_runtime_for(quant or "f16", per_layer)
    with scratch_beside(target) as scratch:
        kwargs = dict(tokenizer=tokenizer, source=source)
        if per_layer:
            hf = export_per_layer(model, scratch / "hf", [int(w) for w in width], method="awn-per-layer", **kwargs)
        else:
            hf = export_uniform(model, scratch / "hf", width, multiple=multiple, method="awn", **kwargs)
        reference = load_pretrained(hf)  # the transformers export, reloaded from disk
        with atomic_dir(target, overwrite, is_export) as final:
            file, extra = _write(fmt, reference, hf, final, scratch, quant, tree, per_layer, deci_bpe)
            finish(final, served_record(read_provenance(hf), fmt, file, extra))
    log.info("wrote %s (%s)", target, extra["check"]["summary"])
    return target


def _write(
    fmt: str,
    reference: nn.Module,
    hf: Path,
    final: Path,
    scratch: Path,
    quant: Optional[str],
    tree: Optional[Path],
    per_layer: bool,
    deci_bpe: bool = False,
) -> tuple[str, dict]:
    """The engine file in ``final`` and the record entries that describe it and its check."""
    if fmt == "onnx":
        from .onnx import ONNX_FILE, write_onnx

        extra = write_onnx(reference, final)
        copy_side_files(hf, final)
        return ONNX_FILE, extra
    if fmt == "vllm":
        from .gguf import prompt_ids
        from .vllm import write_vllm

        widths = read_provenance(hf)["layer_widths"]
        return write_vllm(reference, hf, final, widths, prompt_ids(hf, int(reference.config.vocab_size)))
    from .gguf import write_gguf

    convert_from = hf
    if per_layer:
        widths = read_provenance(hf)["layer_widths"]
        convert_from = scratch / "deci"
        write_deci_folder(hf, convert_from, widths)
    file, extra = write_gguf(reference, hf, final, scratch, quant or "f16", tree, convert_from, deci_bpe)
    if per_layer:
        extra["deci"] = {
            "architecture": DECI_ARCHITECTURE,
            "ffn_mult": [ffn_mult(int(w), int(reference.config.hidden_size)) for w in widths],
            "transformers": "DeciLM needs remote code (trust_remote_code=True) in transformers; the per-layer hf "
            "export of the same widths loads with awncompress.load_pretrained",
        }
    return file, extra
