"""Exports reload to the in-memory truncated model; every format; bad input writes nothing."""

from __future__ import annotations

import copy
import json

import pytest
import transformers as tf
from conftest import logits, make_batches
from zoo import make_model

from awncompress import (
    AWNConfig,
    NotAnExportError,
    OutputExistsError,
    UnsafeCheckpointError,
    WidthError,
    convert_,
    export_nested,
    export_per_layer,
    export_uniform,
    fold_,
    load_pretrained,
    profile_summary,
    truncate_,
)

TOL = 1e-5


def _folded(family: str):
    model = make_model(family)
    convert_(model, AWNConfig(), calibration=make_batches())
    return fold_(model)


def test_uniform_export_loads_with_plain_transformers(family, tmp_path):
    model = _folded(family)
    batch = make_batches()[1]
    out = export_uniform(model, tmp_path / "w", 0.5, source="tiny")
    expected = copy.deepcopy(model)
    truncate_(expected, 0.5)
    auto = (
        tf.AutoModelForCausalLM
        if family in ("gpt2", "llama", "mistral", "qwen2", "qwen3")
        else tf.AutoModelForSequenceClassification
    )
    loaded = auto.from_pretrained(out).eval()
    assert (logits(loaded, batch) - logits(expected, batch)).abs().max() < TOL
    record = json.loads((out / "awncompress.json").read_text())
    assert record["format"] == "uniform" and record["width"] == 32 and record["source_model"] == "tiny"
    assert record["awncompress_version"] and record["method"] == "awn"
    assert "# tiny" in (out / "README.md").read_text()
    assert not list(out.glob("*.bin")) and (out / "model.safetensors").exists()
    assert (logits(load_pretrained(out), batch) - logits(expected, batch)).abs().max() < TOL


def test_per_layer_export_and_loader(tmp_path):
    model = _folded("bert")
    batch = make_batches()[1]
    out = export_per_layer(model, tmp_path / "pl", [16, 48])
    expected = copy.deepcopy(model)
    truncate_(expected, [16, 48])
    loaded = load_pretrained(out)
    assert type(loaded).__name__ == "BertForSequenceClassification"
    assert (logits(loaded, batch) - logits(expected, batch)).abs().max() < TOL


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama"])
@pytest.mark.parametrize("width", [0.25, 40, [8, 56]])
def test_nested_export_materialises_any_width(family, width, tmp_path):
    model = make_model(family)
    convert_(model, AWNConfig(), calibration=make_batches())
    profile = profile_summary(model)
    fold_(model)
    out = export_nested(model, tmp_path / "nested", widths=[0.25, 0.5], profile=profile)
    batch = make_batches()[1]
    expected = copy.deepcopy(model)
    truncate_(expected, width)
    loaded = load_pretrained(out, width=width)
    assert (logits(loaded, batch) - logits(expected, batch)).abs().max() < TOL
    record = json.loads((out / "awncompress.json").read_text())
    assert record["width_table"] == {"0.25": 16, "0.5": 32}
    assert record["profile"]["active_widths"] == [64, 64]


def test_nested_learned_and_full_width(tmp_path):
    model = make_model("bert")
    convert_(model, AWNConfig(init_rate=4.6), calibration=make_batches())
    profile = profile_summary(model)
    fold_(model)
    out = export_nested(model, tmp_path / "n", profile=profile)
    batch = make_batches()[0]
    full = load_pretrained(out)
    assert (logits(full, batch) - logits(model, batch)).abs().max() < TOL
    learned = load_pretrained(out, width="learned")
    assert [b.out_features for b in (layer.intermediate.dense for layer in learned.bert.encoder.layer)] == profile[
        "active_widths"
    ]


def test_nested_loading_reads_only_slices(tmp_path, monkeypatch):
    """Materialising a width never reads a full-size FFN tensor from disk."""
    model = _folded("llama")
    out = export_nested(model, tmp_path / "n")
    import safetensors

    full_reads = []
    real_safe_open = safetensors.safe_open

    class Spy:
        def __init__(self, *a, **k):
            self.f = real_safe_open(*a, **k)

        def __enter__(self):
            self.inner = self.f.__enter__()
            return self

        def __exit__(self, *a):
            return self.f.__exit__(*a)

        def keys(self):
            return self.inner.keys()

        def get_slice(self, k):
            return self.inner.get_slice(k)

        def get_tensor(self, k):
            full_reads.append(k)
            return self.inner.get_tensor(k)

    monkeypatch.setattr("awncompress.checkpoint.load.safe_open", Spy)
    load_pretrained(out, width=0.5)
    assert full_reads and not [k for k in full_reads if "mlp" in k]


# --- bad input: a clear error, nothing written ---------------------------------------------------


@pytest.mark.parametrize(
    "width, message",
    [
        (0, "outside"),
        (-3, "outside"),
        (65, "outside"),
        (0.0, r"\(0, 1\]"),
        (1.5, r"\(0, 1\]"),
        ([8, 8.5], "integer"),
        ([8], "2 FFN layers"),
        ([8, 8, 8], "3 per-layer"),
        ([8, 0], "outside"),
        ("half", "int"),
    ],
)
def test_bad_widths_raise_and_write_nothing(width, message, tmp_path):
    model = _folded("bert")
    with pytest.raises(WidthError, match=message):
        export_uniform(model, tmp_path / "x", width) if not isinstance(width, list) else export_per_layer(
            model, tmp_path / "x", width
        )
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path):
    model = _folded("bert")
    out = export_uniform(model, tmp_path / "w", 32)
    (out / "marker").write_text("old")
    with pytest.raises(OutputExistsError, match="overwrite"):
        export_uniform(model, out, 16)
    assert (out / "marker").exists()
    export_uniform(model, out, 16, overwrite=True)  # replaces what awncompress wrote, keeps the user's file
    assert (out / "marker").read_text() == "old" and json.loads((out / "awncompress.json").read_text())["width"] == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]  # no temp or trash dirs left


def test_crash_during_export_leaves_no_folder(tmp_path, monkeypatch):
    model = _folded("bert")

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(model), "save_pretrained", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        export_nested(model, tmp_path / "n")
    assert list(tmp_path.iterdir()) == []


def test_pickle_checkpoints_are_refused(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really a pickle")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UnsafeCheckpointError, match="safetensors only"):
        load_pretrained(tmp_path)
    with pytest.raises(UnsafeCheckpointError, match="pickle"):
        load_pretrained(tmp_path / "pytorch_model.bin")


def test_folder_that_is_not_an_export(tmp_path):
    _folded("bert").save_pretrained(tmp_path / "plain")
    with pytest.raises(NotAnExportError, match="not an awncompress export"):
        load_pretrained(tmp_path / "plain")


def test_width_on_a_fixed_export_is_refused(tmp_path):
    out = export_uniform(_folded("bert"), tmp_path / "w", 32)
    with pytest.raises(ValueError, match="nested exports only"):
        load_pretrained(out, width=16)
