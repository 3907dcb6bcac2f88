"""Attention heads as AWN units: ordering keeps outputs, cuts export and reload (vanilla where the
config can say the head count), nested exports cut heads lazily, and FLOPs with heads match torch's
counter. Every family in the head table; GQA (2 query heads per KV group) for the Llama family."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from zoo import auto_class, build, inputs

from awncompress import (
    AWNConfig,
    NotAnExportError,
    UnsupportedModelError,
    WidthError,
    convert_,
    export_nested,
    export_uniform,
    fold_,
    load_pretrained,
    truncate_,
)
from awncompress.model.adaptive import head_units, profile_summary
from awncompress.model.flop_targets import pick_for_flops
from awncompress.model.flops import count_flops
from awncompress.model.head_cuts import order_heads_, truncate_heads_
from awncompress.model.heads import HEAD_SPECS, find_heads, layer_heads
from awncompress.model.surgery import layer_widths

GQA = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text")
FAMILIES = sorted(HEAD_SPECS)


def _build(model_type: str) -> torch.nn.Module:
    if model_type == "gpt2":
        return build(model_type, n_head=4)
    extra = dict(num_key_value_heads=2, head_dim=8) if model_type in GQA else {}
    return build(model_type, num_attention_heads=4, **extra)


def _out(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    return (a - b).abs().max().item() <= tol * max(1.0, b.abs().max().item())


def test_the_table_is_tested():
    assert {"bert", "gpt2", "llama"} <= set(FAMILIES)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_head_order_keeps_outputs_and_moves_heads(model_type):
    model, batch = _build(model_type), inputs(model_type)
    before = _out(model, batch)
    perms = order_heads_(model, "wina", [batch])
    assert _close(_out(model, batch), before), "reordering heads changed the outputs"
    assert sorted(perms[0].tolist()) == list(range(find_heads(model)[0].units))
    for block in find_heads(model):  # a reversal is never the identity, whatever the scores said
        block.select_(torch.arange(block.units).flip(0))
    assert _close(_out(model, batch), before), "reversing the heads changed the outputs"
    blocks = find_heads(model)
    assert blocks[0].group == (2 if model_type in GQA else 1)
    scores = [b.unit_out_norms() for b in blocks]
    assert all(s.shape == (b.units,) for s, b in zip(scores, blocks))


@pytest.mark.parametrize("model_type", FAMILIES)
def test_convert_with_heads_then_fold_keeps_outputs(model_type):
    model, batch = _build(model_type), inputs(model_type)
    before = _out(model, batch)
    convert_(model, AWNConfig(heads=True), calibration=iter([batch]))  # a one-shot iterable is read for both orders
    assert _close(_out(model, batch), before)
    units = head_units(model)
    assert len(units) == len(find_heads(model))
    units[0].truncate_to = 1
    assert not _close(_out(model, batch), before, 1e-3), "training-time head truncation must act"
    units[0].truncate_to = None
    with torch.no_grad():
        units[0].raw_rate += 1.0  # a learned rate: folding must keep what the wrapped model computes
    moved = _out(model, batch)
    assert "head_rates" in profile_summary(model)
    fold_(model)
    assert not head_units(model) and _close(_out(model, batch), moved)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_head_cut_exports_reload(model_type, tmp_path):
    model, batch = _build(model_type), inputs(model_type)
    convert_(model, AWNConfig(heads=True), calibration=[batch])
    fold_(model)
    full = _out(model, batch)
    cut = copy.deepcopy(model)
    truncate_(cut, 0.5)
    assert truncate_heads_(cut, 0.5) == [2, 2]
    want = _out(cut, batch)
    assert not _close(want, full, 1e-3)
    folder = export_uniform(model, tmp_path / "u", 0.5, heads=0.5)
    record = json.loads((folder / "awncompress.json").read_text())
    assert record["layer_heads"] == [2, 2] and record["full_heads"] == 4
    assert _close(_out(load_pretrained(folder), batch), want)
    if model_type in GQA:  # the config says num_attention_heads, num_key_value_heads and head_dim
        assert record["loads_with"] == "transformers"
        vanilla = auto_class(model).from_pretrained(folder).eval()
        assert vanilla.config.num_attention_heads == 2 and vanilla.config.num_key_value_heads == 1
        assert _close(_out(vanilla, batch), want)
    else:  # the head size is hidden_size / num_attention_heads: only the package's loader can say it
        assert record["loads_with"] == "awncompress"
        assert "awncompress.load_pretrained" in (folder / "README.md").read_text()
    nested = export_nested(model, tmp_path / "n", widths=[0.5], heads=True)
    assert _close(_out(load_pretrained(nested, width=0.5, heads=0.5), batch), want)
    assert _close(_out(load_pretrained(nested), batch), full)


@pytest.mark.parametrize("model_type", ["bert", "gpt2", "llama"])
def test_flops_with_heads_match_the_counter(model_type):
    model = _build(model_type)
    model.set_attn_implementation("eager")
    truncate_(model, 0.5)
    truncate_heads_(model, [2, 4])  # per-layer head counts (whole KV groups for GQA)
    ids = torch.full((1, 12), 7)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert count_flops(model, 12).total == counter.get_total_flops()
    assert layer_heads(model) == [2, 4]


def test_flop_pick_fits_the_target_and_loads(tmp_path):
    model, batch = _build("bert"), inputs("bert")
    convert_(model, AWNConfig(heads=True), calibration=[batch])
    profile = profile_summary(model)
    fold_(model)
    dense = count_flops(model, 10).total
    pick = pick_for_flops(model, 0.5, 10)
    assert pick.flops_ratio <= 0.5 and pick.heads < 4 and pick.width < 64
    nested = export_nested(model, tmp_path / "n", widths=[0.5], profile=profile, heads=True)
    loaded = load_pretrained(nested, flops=0.5, seq_len=10)
    assert count_flops(loaded, 10).total <= 0.5 * dense
    assert layer_widths(loaded) == [pick.width] * 2 and layer_heads(loaded) == [pick.heads] * 2
    own = load_pretrained(nested, flops=0.5, per_layer=True, seq_len=10)
    assert count_flops(own, 10).total <= 0.5 * dense
    with pytest.raises(WidthError, match="below what one neuron"):
        pick_for_flops(model, 0.01, 10)


def test_a_fast_decaying_head_profile_gives_heads_up_first():
    model = _build("bert")
    slow = pick_for_flops(model, 0.6, 10, ffn_rate=1.0, head_rate=8.0)
    fast = pick_for_flops(model, 0.6, 10, ffn_rate=8.0, head_rate=1.0)
    assert slow.heads < fast.heads and slow.width > fast.width


def test_bad_head_requests_get_one_clear_error(tmp_path):
    llama = _build("llama")
    with pytest.raises(WidthError, match="multiple of 2"):
        truncate_heads_(copy.deepcopy(llama), 3)
    with pytest.raises(WidthError, match="outside 1..4"):
        truncate_heads_(copy.deepcopy(llama), 6)
    mpnet = build("mpnet")
    with pytest.raises(UnsupportedModelError, match="attention-head cuts are not supported for model_type 'mpnet'"):
        convert_(mpnet, AWNConfig(heads=True, scorer="magnitude"))
    assert not head_units(mpnet) and not any("Adaptive" in type(m).__name__ for m in mpnet.modules())
    bert = _build("bert")
    plain = export_nested(bert, tmp_path / "plain", widths=[0.5])
    with pytest.raises(WidthError, match="without ordered heads"):
        load_pretrained(plain, heads=2)
    uniform = export_uniform(bert, tmp_path / "u", 0.5, heads=2)
    with pytest.raises(WidthError, match="nested exports only"):
        load_pretrained(uniform, heads=2)


def test_a_tampered_head_record_is_refused(tmp_path):
    folder = export_uniform(_build("bert"), tmp_path / "u", 0.5, heads=2)
    record = json.loads((folder / "awncompress.json").read_text())
    record["layer_heads"] = [2, 9]
    (folder / "awncompress.json").write_text(json.dumps(record))
    with pytest.raises(NotAnExportError, match="layer_heads"):
        load_pretrained(folder)


def test_per_layer_head_cuts_export_and_reload(tmp_path):
    from awncompress import export_per_layer

    model, batch = _build("llama"), inputs("llama")
    order_heads_(model, "magnitude")
    cut = copy.deepcopy(model)
    truncate_(cut, [16, 48])
    truncate_heads_(cut, [2, 4])  # heads differ between layers: no config can say it
    folder = export_per_layer(model, tmp_path / "p", [16, 48], heads=[2, 4])
    record = json.loads((folder / "awncompress.json").read_text())
    assert record["layer_heads"] == [2, 4] and record["loads_with"] == "awncompress"
    loaded = load_pretrained(folder)
    assert layer_heads(loaded) == [2, 4] and _close(_out(loaded, batch), _out(cut, batch))


def test_per_layer_pick_fits_and_follows_the_rates():
    from awncompress.model.flop_targets import pick_per_layer_for_flops

    model = _build("bert")
    dense = count_flops(model, 10).total
    pick = pick_per_layer_for_flops(model, 0.5, 10, ffn_rates=[2.3, 2.3], head_rates=[8.0, 1.0])
    assert pick.flops_ratio <= 0.5 + 1e-9
    assert count_flops(model, 10, ffn_widths=pick.widths, head_counts=pick.heads).total <= 0.5 * dense
    assert pick.heads[0] < pick.heads[1], "the layer whose head importance decays fast gives its heads up first"
    with pytest.raises(WidthError):
        pick_per_layer_for_flops(model, 0.01, 10, [2.3, 2.3], [2.3, 2.3])
