"""One served export: a width of a folded model in a serving engine's format (ONNX or GGUF).

The engine file is made from the uniform (hf) export at that width, the same folder
``export_uniform`` writes, so what is checked is exactly the transformers export a user would
load; see common.py for the temp folders and the rename.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Union

from torch import nn

from ..checkpoint.export import export_uniform, is_export
from ..checkpoint.layout import width_key
from ..checkpoint.load import load_pretrained
from ..checkpoint.provenance import read_provenance
from ..files.atomic import atomic_dir, check_writable
from ..model.surgery import Width
from .common import copy_side_files, finish, scratch_beside, served_record
from .formats import check_applies, require_for, served_dir

log = logging.getLogger("awncompress")


def export_served(
    model: nn.Module,
    out: Union[str, Path],
    width: Width,
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

    The file is run in its engine (onnxruntime, llama-cpp-python) and compared with the transformers
    export before the folder is renamed into place; a mismatch raises and leaves nothing behind.
    ``llama_cpp``: the llama.cpp source tree whose converter writes GGUF (see llama_cpp.py).
    """
    check_applies(fmt, model.config.model_type, type(model).__name__)
    require_for(fmt)
    target = folder or served_dir(out, width_key(width) if isinstance(width, float) else str(width), fmt, quant)
    check_writable(target, overwrite, is_export)
    tree = None
    if fmt == "gguf":
        from .llama_cpp import check_ready

        tree = check_ready(llama_cpp, model, tokenizer)
    with scratch_beside(target) as scratch:
        hf = export_uniform(
            model, scratch / "hf", width, tokenizer=tokenizer, source=source, multiple=multiple, method="awn"
        )
        reference = load_pretrained(hf)  # the transformers export, reloaded from disk
        with atomic_dir(target, overwrite, is_export) as final:
            if fmt == "onnx":
                from .onnx import ONNX_FILE, write_onnx

                extra = write_onnx(reference, final)
                copy_side_files(hf, final)
                file = ONNX_FILE
            else:
                from .gguf import write_gguf

                file, extra = write_gguf(reference, hf, final, scratch, quant or "f16", tree)
            finish(final, served_record(read_provenance(hf), fmt, file, extra))
    log.info("wrote %s (%s)", target, extra["check"]["summary"])
    return target
