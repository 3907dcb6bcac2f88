"""Conformance of every family in the FFN table: convert and fold leave the outputs unchanged, a
half-width export loads in plain transformers with the in-memory cut's outputs (and the cut changes
them, so the check can fail), the loader and nested slicing agree, and FLOPs match torch's counter."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from zoo import SEQ2SEQ_TYPES, TINY, auto_class, build, inputs

from awncompress import (
    AWNConfig,
    UnsupportedModelError,
    convert_,
    export_nested,
    export_uniform,
    fold_,
    load_pretrained,
    truncate_,
)
from awncompress.model.families import FFN_SPECS, UNSHRINKABLE, find_ffns
from awncompress.model.flops import count_flops

TOL = 1e-5
SHRINKABLE = sorted(t for t in TINY if t not in UNSHRINKABLE)


def _out(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = TOL) -> bool:
    return (a - b).abs().max().item() <= tol * max(1.0, b.abs().max().item())


def test_the_zoo_covers_the_table():
    assert set(FFN_SPECS) | set(UNSHRINKABLE) <= set(TINY)


@pytest.mark.parametrize("model_type", SHRINKABLE)
def test_convert_fold_export_reload(model_type, tmp_path):
    model = build(model_type)
    batch = inputs(model_type)
    before = _out(model, batch)
    convert_(model, AWNConfig(), calibration=[batch])
    assert _close(_out(model, batch), before), "convert_ changed the outputs"
    fold_(model)
    assert _close(_out(model, batch), before), "fold_ changed the outputs"

    cut = copy.deepcopy(model)
    truncate_(cut, 0.5)
    assert not _close(_out(cut, batch), before, 1e-3), "a half-width cut should change the outputs"
    folder = export_uniform(model, tmp_path / "w", 0.5)
    vanilla = auto_class(model).from_pretrained(folder).eval()
    assert _close(_out(vanilla, batch), _out(cut, batch)), "plain from_pretrained differs from the in-memory cut"
    assert _close(_out(load_pretrained(folder), batch), _out(cut, batch))
    nested = export_nested(model, tmp_path / "n", widths=[0.5])
    assert _close(_out(load_pretrained(nested, width=0.5), batch), _out(cut, batch)), "nested slicing differs"


@pytest.mark.parametrize("model_type", SHRINKABLE)
def test_flops_match_the_counter(model_type):
    model = build(model_type, attn_implementation="eager")
    if any(b.kind == "experts" for b in find_ffns(model)):
        model.config._experts_implementation = "eager"  # the counter has no formula for grouped_mm
    ids = torch.full((1, 12), 7)
    kwargs = {"decoder_input_ids": ids} if model_type in SEQ2SEQ_TYPES else {}
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
    assert count_flops(model, 12).total == counter.get_total_flops()
    half = copy.deepcopy(model)
    truncate_(half, 0.5)
    assert count_flops(half, 12).ffn < count_flops(model, 12).ffn


@pytest.mark.parametrize("model_type", sorted(UNSHRINKABLE))
def test_a_family_whose_width_no_config_can_say_is_refused(model_type):
    with pytest.raises(UnsupportedModelError, match="hard-codes"):
        convert_(build(model_type), AWNConfig(scorer="magnitude"))


def test_an_unknown_family_falls_back_only_with_a_probed_width_attribute(monkeypatch):
    import awncompress.model.families as archs

    # StarCoder2 has GPT-2's module names but its width is intermediate_size, not n_inner: the
    # fallback probes the attribute (it wrote n_inner and produced an unloadable export before).
    monkeypatch.delitem(archs.FFN_SPECS, "starcoder2")
    (spec,) = archs.specs_for(build("starcoder2"))
    assert (spec.up, spec.d_ff_attr) == ("mlp.c_fc", "intermediate_size")
    # BLOOM's width follows no attribute: the fallback that finds its modules refuses.
    monkeypatch.delitem(archs.UNSHRINKABLE, "bloom")
    with pytest.raises(UnsupportedModelError, match="no config attribute"):
        archs.specs_for(build("bloom"))


def test_an_export_its_config_cannot_rebuild_is_never_written(tmp_path):
    from awncompress import FFNSpec

    model = build("starcoder2")
    wrong = FFNSpec(up="mlp.c_fc", down="mlp.c_proj", d_ff_attr="n_inner")  # not what StarCoder2 reads
    convert_(model, AWNConfig(scorer="magnitude", spec=wrong))
    fold_(model)
    with pytest.raises(UnsupportedModelError, match="refusing to write"):
        export_uniform(model, tmp_path / "w", 0.5)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("model_type", ["mixtral", "qwen2_moe", "modernbert", "albert", "t5"])
def test_the_fine_tune_trains_every_layout(model_type):
    from awncompress import adaptive_modules
    from awncompress.train.finetune import PriorConfig, TrainConfig, finetune

    model = build(model_type)
    batch = inputs(model_type)
    labels = (
        batch["decoder_input_ids"] if model_type in SEQ2SEQ_TYPES else torch.tensor([0, 1])
    )  # seq2seq / classification
    items = [{k: v[i].tolist() for k, v in batch.items()} | {"labels": labels[i].tolist()} for i in range(2)] * 4
    collate = lambda rows: {k: torch.tensor([r[k] for r in rows]) for k in rows[0]}  # noqa: E731
    convert_(model, AWNConfig(scorer="wina"), calibration=[batch])
    rates = [float(a.normalised_rate().detach()) for a in adaptive_modules(model)]
    cfg = TrainConfig(steps=3, batch_size=2, lr=1e-3, rate_lr=0.5, checkpoint_every=0, extra_widths=[0.25])
    finetune(model, items, collate, cfg, num_examples=8, prior=PriorConfig(4.6, 1.0, 1.0), quiet=True)
    assert [float(a.normalised_rate().detach()) for a in adaptive_modules(model)] != rates
    fold_(model)
    assert not adaptive_modules(model)


def test_the_readme_lists_exactly_the_table():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("<!-- families -->")[1].split("<!-- /families -->")[0]
    listed = set(re.findall(r"`([a-z0-9_-]+)`", section))
    assert listed == set(FFN_SPECS) | set(UNSHRINKABLE)
