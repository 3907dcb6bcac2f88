"""ONNX exports through the real command: torch's exporter, checked in onnxruntime before the rename."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import zoo
from typer.testing import CliRunner

from awncompress import load_pretrained
from awncompress.checkpoint.export import export_nested
from awncompress.cli import app
from awncompress.errors import NotAnExportError

runner = CliRunner()


def _nested(tmp_path, family):
    return export_nested(zoo.make_model(family), tmp_path / f"{family}-nested", widths=[0.5])


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("family", ["bert", "llama", "gpt2"])  # gpt2: GPT2LMHeadModel, a causal LM too
def test_onnx_export_runs_in_onnxruntime_like_the_transformers_export(family, tmp_path):
    import onnxruntime as ort

    nested = _nested(tmp_path, family)
    out = tmp_path / "served"
    result = runner.invoke(app, ["export", str(nested), "--widths", "0.5", "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 0, result.output
    folder = out / "width-0.5-onnx"
    assert (folder / "model.onnx").is_file() and (folder / "config.json").is_file()
    assert _leftovers(out) == ["width-0.5-onnx"]  # no temp folder, no hf scratch left
    record = json.loads((folder / "awncompress.json").read_text())
    assert record["format"] == "onnx" and record["loads_with"] == "onnxruntime"
    assert record["layer_widths"] == [32, 32] and record["file"] == "model.onnx"
    assert record["check"]["shapes"] == [[2, 5], [2, 13]] and max(record["check"]["max_abs_diff"]) < 1e-4
    # Our own comparison at a batch and length the export never saw (dynamic axes), against the
    # same width cut from the nested checkpoint in PyTorch.
    reference = load_pretrained(nested, width=0.5)
    ids = torch.randint(5, 97, (3, 11), generator=torch.Generator().manual_seed(7))
    mask = torch.ones_like(ids)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    assert record["onnx"]["inputs"] == ["input_ids", "attention_mask"] + (
        ["token_type_ids"] if family == "bert" else []
    )
    got = session.run(None, {n: feed[n].numpy() for n in record["onnx"]["inputs"]})[0]
    with torch.no_grad():
        want = reference(input_ids=ids, attention_mask=mask).logits.numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    with pytest.raises(NotAnExportError, match="ONNX export for onnxruntime"):
        load_pretrained(folder)


def test_onnx_mismatch_is_an_error_and_leaves_nothing(tmp_path, monkeypatch):
    from awncompress.serve import onnx as serve_onnx

    nested = _nested(tmp_path, "bert")
    out = tmp_path / "served"
    monkeypatch.setattr(serve_onnx, "ONNX_TOLERANCE", -1.0)  # any difference, even none, is a mismatch
    result = runner.invoke(app, ["export", str(nested), "--widths", "0.5", "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 1
    assert "does not match the PyTorch export" in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()  # nor any hidden temp folder beside it
    assert _leftovers(tmp_path) == ["bert-nested"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "tflite"], "unknown export format 'tflite'"),
        (["--format", "onnx", "--quant", "q8_0"], "--quant applies to --format gguf only"),
        (["--format", "gguf", "--quant", "q3_k"], "unknown GGUF quantization 'q3_k'"),
    ],
)
def test_bad_onnx_requests_are_one_line_before_anything_is_written(args, message, tmp_path):
    nested = _nested(tmp_path, "bert")
    out = tmp_path / "served"
    result = runner.invoke(app, ["export", str(nested), "--widths", "0.5", "--out", str(out), *args])
    assert result.exit_code == 1 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_encoder_decoder_is_refused_before_anything_is_written(tmp_path):
    nested = export_nested(zoo.build("t5"), tmp_path / "t5-nested", widths=[0.5])
    out = tmp_path / "served"
    result = runner.invoke(app, ["export", str(nested), "--widths", "0.5", "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 1 and "encoder–decoder" in result.output and not out.exists()


def test_missing_onnx_dependency_names_the_install(tmp_path, monkeypatch):
    import importlib.util

    from awncompress.serve import formats

    real = importlib.util.find_spec
    monkeypatch.setattr(formats.importlib.util, "find_spec", lambda n, *a: None if n == "onnxscript" else real(n, *a))
    nested = _nested(tmp_path, "bert")
    out = tmp_path / "served"
    result = runner.invoke(app, ["export", str(nested), "--widths", "0.5", "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 1 and "pip install 'awncompress[serve]'" in result.output
    assert "onnxscript" in result.output and not out.exists()


def test_per_layer_widths_export_to_onnx(tmp_path):
    import onnxruntime as ort

    model, tokenizer = zoo.llama_with_tokenizer(intermediate_size=512, widen=False)
    profile = {"k": 0.9, "normalised_rates": [1.0, 2.0], "active_widths": [200, 480]}
    nested = export_nested(model, tmp_path / "nested", widths=[0.5], tokenizer=tokenizer, profile=profile)
    out = tmp_path / "served"
    result = runner.invoke(app, ["export", str(nested), "--learned", "--format", "onnx", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "per-layer-onnx" / "awncompress.json").read_text())
    assert record["layer_widths"] == [200, 480] and record["format"] == "onnx"
    ids = torch.tensor([[1, 120, 200, 7, 280, 33]])
    session = ort.InferenceSession(str(out / "per-layer-onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": np.ones_like(ids.numpy())})[0]
    with torch.no_grad():
        want = load_pretrained(nested, width=[200, 480])(input_ids=ids).logits.numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


ENCODER_FAMILIES = ["roberta", "xlm-roberta", "camembert", "electra", "deberta", "deberta-v2", "mpnet", "distilbert"]
ENCODER_FAMILIES += ["albert", "modernbert"]


@pytest.mark.parametrize("family", ENCODER_FAMILIES)
def test_every_encoder_family_exports_to_onnx_and_matches(family, tmp_path):
    out = tmp_path / "served"
    result = runner.invoke(
        app, ["export", str(_nested(tmp_path, family)), "--widths", "0.5", "--format", "onnx", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    check = json.loads((out / "width-0.5-onnx" / "awncompress.json").read_text())["check"]
    assert len(check["max_abs_diff"]) == 2 and check["runtime"].startswith("onnxruntime")


@pytest.mark.parametrize(
    "family, says",
    [
        ("xlnet", "the torch ONNX exporter cannot export XLNetForSequenceClassification"),
        ("funnel", "onnxruntime cannot run the exported FunnelForSequenceClassification at batch 2, sequence 5"),
    ],
)
def test_encoders_the_exporter_cannot_serve_are_one_line_and_leave_nothing(family, says, tmp_path):
    out = tmp_path / "served"
    result = runner.invoke(
        app, ["export", str(_nested(tmp_path, family)), "--widths", "0.5", "--format", "onnx", "--out", str(out)]
    )
    assert result.exit_code == 1 and says in result.output and not out.exists()
