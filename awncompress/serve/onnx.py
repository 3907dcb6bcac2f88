"""ONNX exports for onnxruntime: ``torch.onnx.export`` (the dynamo exporter, torch's default since 2.9;
it needs ``onnxscript``) with dynamic batch and sequence axes, checked in onnxruntime before the
folder is renamed into place.

The graph maps ``input_ids``, ``attention_mask`` (and ``token_type_ids`` where the family has
segment embeddings) to ``logits``: one row per example for a sequence classifier, one per position
for a causal LM (the full forward pass, no KV cache). ``optimum-onnx`` was not used: its only
release (0.1.0) requires transformers < 4.58, and awncompress runs on transformers 5.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..errors import UnsupportedModelError, first_line
from .formats import require_for

ONNX_FILE = "model.onnx"
CHECK_SHAPES = ((2, 5), (2, 13))  # (batch, sequence) the check runs at; the trace runs at (2, 8)
TRACE_SHAPE = (2, 8)
# onnxruntime's logits may differ from PyTorch's by this much, relative to the largest |logit| (at least 1).
ONNX_TOLERANCE = 1e-4
EXTERNAL_DATA_BYTES = 1 << 30  # larger weights go to model.onnx.data (protobuf files stop at 2 GiB)


class _Logits(nn.Module):
    """The model as a plain function of its inputs, returning the logits only."""

    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        kwargs = {n: given[n] for n in self.names}
        if "use_cache" in inspect.signature(self.model.forward).parameters:
            kwargs["use_cache"] = False
        return self.model(**kwargs).logits


def input_names(model: nn.Module) -> list[str]:
    """``input_ids``, ``attention_mask``, and ``token_type_ids`` where the config has segment types."""
    names = ["input_ids", "attention_mask"]
    takes = inspect.signature(model.forward).parameters
    if "token_type_ids" in takes and int(getattr(model.config, "type_vocab_size", 0) or 0) > 1:
        names.append("token_type_ids")
    return names


def example_inputs(model: nn.Module, names: list[str], batch: int, seq: int, seed: int = 0) -> list[torch.Tensor]:
    """Seeded token ids, the last row right-padded by a quarter of its length."""
    g = torch.Generator().manual_seed(seed + seq)
    vocab = int(model.config.vocab_size)
    ids = torch.randint(min(5, vocab - 1), vocab, (batch, seq), generator=g)
    mask = torch.ones_like(ids)
    if batch > 1:
        mask[-1, seq - max(1, seq // 4) :] = 0
    tensors = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    return [tensors[n] for n in names]


def _dynamic_shapes(model: nn.Module, names: list[str]) -> dict:
    limit = getattr(model.config, "max_position_embeddings", None)
    limit = int(limit) if limit and int(limit) > TRACE_SHAPE[1] else 1 << 16  # XLNet says -1: no limit
    batch = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("sequence", min=1, max=limit)
    return {n: {0: batch, 1: seq} for n in names}


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter logs warnings (torchvision missing, dynamic-shape renames) and its optimizer's steps
    ("Replaced initializer ..."), and prints its own steps: none of it is the user's business."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnx_ir", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def write_onnx(model: nn.Module, folder: Path) -> dict[str, Any]:
    """Export ``model`` (a transformers model, eval mode) to ``folder/model.onnx`` and check it in
    onnxruntime; returns the record's ``onnx`` and ``check`` entries. UnsupportedModelError (one line)
    when the exporter cannot trace the family, or when onnxruntime's outputs differ."""
    require_for("onnx")
    names = input_names(model)
    wrapper = _Logits(model.eval(), names).eval()
    big = sum(p.numel() * p.element_size() for p in model.parameters()) > EXTERNAL_DATA_BYTES
    try:
        with _quiet_exporter(), torch.no_grad():
            torch.onnx.export(
                wrapper,
                tuple(example_inputs(model, names, *TRACE_SHAPE)),
                str(folder / ONNX_FILE),
                dynamo=True,
                input_names=names,
                output_names=["logits"],
                dynamic_shapes=_dynamic_shapes(model, names),
                external_data=big,
                verbose=False,
                report=False,
            )
    except Exception as exc:  # noqa: BLE001 - any exporter failure is this family's, said in one line
        raise UnsupportedModelError(
            f"the torch ONNX exporter cannot export {type(model).__name__}: {first_line(exc)}"
        ) from None
    check = check_onnx(folder / ONNX_FILE, wrapper, names)
    import onnx

    opset = max(
        (o.version for o in onnx.load(str(folder / ONNX_FILE), load_external_data=False).opset_import), default=0
    )
    return {
        "onnx": {
            "inputs": names,
            "outputs": ["logits"],
            "dynamic_axes": {"0": "batch", "1": "sequence"},
            "opset": int(opset),
            "exporter": f"torch.onnx.export (dynamo), torch {torch.__version__}",
            "external_data": big,
        },
        "check": check,
    }


def check_onnx(path: Path, wrapper: nn.Module, names: list[str]) -> dict[str, Any]:
    """Run the file in onnxruntime at :data:`CHECK_SHAPES` and compare with PyTorch; raise on a mismatch.

    Positions a causal LM's attention mask hides are not compared (their logits mean nothing)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    worst, diffs = 0.0, []
    for batch, seq in CHECK_SHAPES:
        inputs = example_inputs(wrapper.model, names, batch, seq, seed=1)
        with torch.no_grad():
            ref = wrapper(*inputs).float()
        try:
            got = torch.from_numpy(session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0]).float()
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors share no base class worth naming
            raise UnsupportedModelError(
                f"onnxruntime cannot run the exported {type(wrapper.model).__name__} at batch {batch}, sequence "
                f"{seq} (the exporter fixed a dimension the model computes from its input?): {first_line(exc)}"
            ) from None
        if got.shape != ref.shape:
            raise UnsupportedModelError(
                f"onnxruntime gave logits of shape {list(got.shape)}, PyTorch {list(ref.shape)} (sequence {seq})"
            )
        if ref.dim() == 3:  # per position: keep the positions the mask shows
            keep = inputs[1].bool()
            ref, got = ref[keep], got[keep]
        diff = float((got - ref).abs().max())
        tol = ONNX_TOLERANCE * max(1.0, float(ref.abs().max()))
        diffs.append(diff)
        worst = max(worst, diff / tol)
        if not diff <= tol:  # NaN fails too
            raise UnsupportedModelError(
                f"the ONNX file does not match the PyTorch export: max |logit difference| {diff:.3g} > {tol:.3g} "
                f"at batch {batch}, sequence {seq}; nothing was written"
            )
    return {
        "runtime": f"onnxruntime {ort.__version__}",
        "shapes": [list(s) for s in CHECK_SHAPES],
        "max_abs_diff": [float(f"{d:.3g}") for d in diffs],
        "tolerance": f"{ONNX_TOLERANCE:g} x max(1, max |logit|)",
        "summary": f"onnxruntime logits within {ONNX_TOLERANCE:g} (relative) of PyTorch at sequences "
        + ", ".join(str(s) for _, s in CHECK_SHAPES)
        + f" (max diff {max(diffs):.2g})",
    }
