"""GGUF exports through the real command: llama.cpp's own converter (the tree in AWNCOMPRESS_LLAMA_CPP,
which .ci/run extracts from llama-cpp-python's sdist), quantized and run in llama-cpp-python."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import zoo
from typer.testing import CliRunner

from awncompress import load_pretrained
from awncompress.checkpoint.export import export_nested
from awncompress.cli import app
from awncompress.errors import NotAnExportError
from awncompress.model.families import find_ffns, set_config_widths
from awncompress.model.growth import grow_, new_input_rows

runner = CliRunner()


@pytest.fixture
def tree() -> Path:
    found = os.environ.get("AWNCOMPRESS_LLAMA_CPP")
    if not found:
        pytest.skip("set AWNCOMPRESS_LLAMA_CPP to a llama.cpp source tree (.ci/run does)")
    return Path(found)


def _nested(tmp_path, **overrides):
    model, tokenizer = zoo.llama_with_tokenizer(**overrides)
    return export_nested(model, tmp_path / "nested", widths=[0.5], tokenizer=tokenizer)


def _export(nested, out, *args):
    return runner.invoke(app, ["export", str(nested), "--out", str(out), "--format", "gguf", *args])


def _llama_cpp_logits(path: Path, ids: list[int]) -> np.ndarray:
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=64,
        logits_all=True,
        n_threads=2,
        type_k=llama_cpp.GGML_TYPE_F32,
        type_v=llama_cpp.GGML_TYPE_F32,
        verbose=False,
    )
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])
    finally:
        llm.close()


@pytest.mark.parametrize("quant, rel", [("f32", 1e-4), ("f16", 2e-2)])
def test_gguf_runs_in_llama_cpp_like_the_transformers_export(quant, rel, tree, tmp_path):
    nested = _nested(tmp_path)
    out = tmp_path / "served"
    result = _export(nested, out, "--widths", "0.5", "--quant", quant, "--llama-cpp", str(tree))
    assert result.exit_code == 0, result.output
    folder = out / f"width-0.5-gguf-{quant}"
    assert sorted(p.name for p in out.iterdir()) == [folder.name]  # no temp or scratch folder left
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "README.md",
        "awncompress.json",
        f"model-{quant}.gguf",
    ]
    record = json.loads((folder / "awncompress.json").read_text())
    assert record["format"] == "gguf" and record["loads_with"] == "llama.cpp" and record["layer_widths"] == [32, 32]
    assert record["gguf"]["quant"] == quant and record["gguf"]["fallbacks"] == []
    assert record["check"]["runtime"].startswith("llama-cpp-python")
    # Our own comparison, on ids of our own, against the width cut from the nested checkpoint in PyTorch.
    ids = [1, 120, 200, 7, 280, 33, 150, 290, 64, 5]
    got = _llama_cpp_logits(folder / f"model-{quant}.gguf", ids)
    with torch.no_grad():
        want = load_pretrained(nested, width=0.5)(input_ids=torch.tensor([ids])).logits[0].numpy()
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= rel * max(1.0, np.abs(want).max())
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.9
    with pytest.raises(NotAnExportError, match="GGUF export for llama.cpp"):
        load_pretrained(folder)


def test_k_quant_fallback_is_one_warning_and_multiple_256_avoids_it(tree, tmp_path):
    # hidden 256 so every projection can take a k-quant; the FFN is 512 wide.
    nested = _nested(tmp_path, hidden_size=256, intermediate_size=512, widen=False)
    out = tmp_path / "served"
    result = _export(nested, out, "--widths", "0.375", "--quant", "q4_k_m", "--llama-cpp", str(tree))
    assert result.exit_code == 0, result.output
    record = json.loads((out / "width-0.375-gguf-q4_k_m" / "awncompress.json").read_text())
    assert record["layer_widths"] == [192, 192]
    fallbacks = record["gguf"]["fallbacks"]
    assert [f["tensor"] for f in fallbacks] == ["ffn_down"] and fallbacks[0]["rows"] == 192
    assert set(fallbacks[0]["type"].split("/")) <= {"Q5_0", "Q5_1", "Q8_0", "IQ4_NL"} and fallbacks[0]["layers"] == 2
    warned = [line for line in result.output.splitlines() if "k-quants need rows" in line]
    assert len(warned) == 1 and "ffn_down (rows of 192, 2 tensors)" in warned[0] and "--multiple 256" in warned[0]
    assert "Q4_K" in record["gguf"]["tensor_types"]
    result = _export(
        nested, out, "--widths", "0.375", "--quant", "q4_k_m", "--multiple", "256", "--overwrite", "--llama-cpp", tree
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "width-0.375-gguf-q4_k_m" / "awncompress.json").read_text())
    assert record["layer_widths"] == [256, 256] and record["gguf"]["fallbacks"] == []
    assert "k-quants need rows" not in result.output
    ppl = record["check"]["perplexity"]
    assert 0.8 <= ppl[1] / ppl[0] <= 1.25 and record["check"]["top1_agreement"] > 0.3


def test_mistral_converts_and_a_sliding_window_llama_cpp_ignores_is_caught(tree, tmp_path):
    # llama.cpp's converter writes Mistral as its llama architecture, which has no sliding window.
    model, tokenizer = zoo.llama_with_tokenizer(family="mistral", sliding_window=None)
    nested = export_nested(model, tmp_path / "nested", widths=[0.5], tokenizer=tokenizer)
    result = _export(nested, tmp_path / "served", "--widths", "0.5", "--llama-cpp", str(tree))
    assert result.exit_code == 0, result.output
    # A 16-token window, shorter than the 48-token check prompt: the file computes something else, and
    # the check says so instead of writing it.
    model, tokenizer = zoo.llama_with_tokenizer(family="mistral", sliding_window=16)
    nested = export_nested(model, tmp_path / "nested-window", widths=[0.5], tokenizer=tokenizer)
    out = tmp_path / "served-window"
    result = _export(nested, out, "--widths", "0.5", "--llama-cpp", str(tree))
    assert result.exit_code == 1 and "does not match the transformers export in llama.cpp" in result.output
    assert not out.exists()


def test_gguf_mismatch_is_an_error_and_leaves_nothing(tree, tmp_path, monkeypatch):
    from awncompress.serve import gguf

    monkeypatch.setitem(gguf.BOUNDS, "f16", (-1.0, None))
    nested = _nested(tmp_path)
    out = tmp_path / "served"
    result = _export(nested, out, "--widths", "0.5", "--llama-cpp", str(tree))
    assert result.exit_code == 1 and "does not match the transformers export in llama.cpp" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["nested"]


def test_gguf_for_an_encoder_classifier_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv("AWNCOMPRESS_LLAMA_CPP", raising=False)
    nested = export_nested(zoo.make_model("bert"), tmp_path / "nested", widths=[0.5])
    out = tmp_path / "served"
    result = _export(nested, out, "--widths", "0.5")
    assert result.exit_code == 1 and "GGUF is for causal language models" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_without_a_llama_cpp_tree_the_line_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.delenv("AWNCOMPRESS_LLAMA_CPP", raising=False)
    nested = _nested(tmp_path)
    out = tmp_path / "served"
    result = _export(nested, out, "--widths", "0.5")
    assert result.exit_code == 1 and not out.exists()
    assert "pip download llama-cpp-python==0.3.36 --no-deps --no-binary :all:" in result.output
    fake = tmp_path / "not-llama"
    fake.mkdir()
    result = _export(nested, out, "--widths", "0.5", "--llama-cpp", str(fake))
    assert result.exit_code == 1 and "is not a llama.cpp source tree" in result.output and not out.exists()


def test_an_architecture_the_converter_lacks_is_refused_without_running_it(tmp_path):
    tree = tmp_path / "llama.cpp"
    (tree / "conversion").mkdir(parents=True)
    (tree / "gguf-py" / "gguf").mkdir(parents=True)
    (tree / "gguf-py" / "gguf" / "__init__.py").write_text("")
    (tree / "convert_hf_to_gguf.py").write_text("raise SystemExit('must never run')\n")
    (tree / "conversion" / "__init__.py").write_text("")
    (tree / "conversion" / "other.py").write_text('@ModelBase.register("GPT2LMHeadModel")\nclass M: ...\n')
    nested = _nested(tmp_path)
    out = tmp_path / "served"
    result = _export(nested, out, "--widths", "0.5", "--llama-cpp", str(tree))
    assert result.exit_code == 1 and "has no architecture for LlamaForCausalLM" in result.output
    assert not out.exists()


def _nested_with_profile(tmp_path, active_widths):
    model, tokenizer = zoo.llama_with_tokenizer(intermediate_size=512, widen=False)
    profile = {"k": 0.9, "normalised_rates": [1.0, 2.0], "active_widths": active_widths}
    return export_nested(model, tmp_path / "nested", widths=[0.5], tokenizer=tokenizer, profile=profile)


def test_per_layer_widths_run_in_llama_cpp_as_deci(tree, tmp_path):
    import gguf

    nested = _nested_with_profile(tmp_path, [200, 480])
    out = tmp_path / "served"
    result = _export(nested, out, "--learned", "--llama-cpp", str(tree))
    assert result.exit_code == 1 and "layer 0's width 200 cannot be said: give --multiple 256" in result.output
    assert not out.exists()
    result = _export(nested, out, "--learned", "--multiple", "256", "--llama-cpp", str(tree))
    assert result.exit_code == 0, result.output
    folder = out / "per-layer-gguf-f16"
    record = json.loads((folder / "awncompress.json").read_text())
    assert record["layer_widths"] == [256, 512] and record["loads_with"] == "llama.cpp"
    assert (
        record["deci"]["architecture"] == "DeciLMForCausalLM" and "trust_remote_code" in record["deci"]["transformers"]
    )
    reader = gguf.GGUFReader(str(folder / "model-f16.gguf"))
    assert reader.fields["general.architecture"].contents() == "deci"
    downs = {t.name: [int(x) for x in t.shape] for t in reader.tensors if t.name.endswith("ffn_down.weight")}
    assert downs == {"blk.0.ffn_down.weight": [256, 32], "blk.1.ffn_down.weight": [512, 32]}
    # llama.cpp's logits against the per-layer model awncompress builds from the nested checkpoint.
    ids = [1, 120, 200, 7, 280, 33, 150, 290, 64, 5]
    got = _llama_cpp_logits(folder / "model-f16.gguf", ids)
    with torch.no_grad():
        want = load_pretrained(nested, width=[256, 512])(input_ids=torch.tensor([ids])).logits[0].numpy()
    assert np.abs(got - want).max() <= 2e-2 * max(1.0, np.abs(want).max())


def test_per_layer_gguf_refuses_what_deci_cannot_say(tmp_path):
    from awncompress.serve.deci import check_deci, deci_width, ffn_mult

    nested = export_nested(zoo.build("qwen2", head="lm"), tmp_path / "nested", widths=[0.5])
    with pytest.raises(Exception, match="qwen2 blocks do not map"):
        check_deci(load_pretrained(nested).config, [256, 256])
    config = zoo.build("llama", head="lm", hidden_size=64, num_attention_heads=4, num_key_value_heads=2).config
    with pytest.raises(Exception, match="query heads"):
        check_deci(config, [256, 512], heads=[2, 4])
    # The converter's own formula, for a few hidden sizes: every multiple of 256 comes back exactly.
    for hidden in (32, 576, 4096):
        assert [deci_width(ffn_mult(w, hidden), hidden) for w in (256, 768, 1536, 14336)] == [256, 768, 1536, 14336]
    assert deci_width(ffn_mult(200, 576), 576) == 256  # what llama.cpp would silently make of width 200


def test_a_tokenizer_the_deci_converter_cannot_read_is_refused_first():
    from conftest import word_tokenizer

    from awncompress.serve.deci import check_deci_tokenizer

    assert check_deci_tokenizer(zoo.llama_tokenizer(), 291) is False  # byte-fallback BPE, as Llama 2's: as is
    assert check_deci_tokenizer(None, 128256) is False  # Llama 3's vocabulary size: read as Llama 3's
    with pytest.raises(Exception, match="llama.cpp's DeciLM converter reads BPE tokenizers"):
        check_deci_tokenizer(word_tokenizer(), 19)


@pytest.mark.slow
def test_per_layer_gguf_with_smollm2s_plain_bpe_tokenizer_runs_as_deci(tree, tmp_path):
    """DeciLM's converter would read a non-Llama-3 vocabulary as Llama 2's byte-fallback one; SmolLM2's
    GPT-2-style BPE goes to the converter's BPE reader instead, and the file runs like the export."""
    from transformers import AutoTokenizer

    from awncompress.data import assets
    from awncompress.serve.deci import check_deci_tokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(assets.smollm2_path())
    except assets.AssetError as exc:
        pytest.skip(str(exc))
    assert check_deci_tokenizer(tokenizer, len(tokenizer)) is True
    model = zoo.build("llama", 0, head="lm", vocab_size=len(tokenizer), intermediate_size=512, widen=False)
    profile = {"k": 0.9, "normalised_rates": [1.0, 2.0], "active_widths": [200, 480]}
    nested = export_nested(model, tmp_path / "nested", widths=[0.5], tokenizer=tokenizer, profile=profile)
    result = _export(nested, tmp_path / "served", "--learned", "--multiple", "256", "--llama-cpp", str(tree))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "served" / "per-layer-gguf-f16"
    ids = tokenizer("It is a truth universally acknowledged, that a single man")["input_ids"]
    got = _llama_cpp_logits(folder / "model-f16.gguf", ids)
    with torch.no_grad():
        want = load_pretrained(nested, width=[256, 512])(input_ids=torch.tensor([ids])).logits[0].numpy()
    assert np.abs(got - want).max() <= 2e-2 * max(1.0, np.abs(want).max())


def _vllm_nested(tmp_path):
    model, tokenizer = zoo.llama_with_tokenizer(intermediate_size=512, widen=False)
    profile = {"k": 0.9, "normalised_rates": [1.0, 2.0], "active_widths": [200, 480]}
    return export_nested(model, tmp_path / "nested", widths=[0.5], tokenizer=tokenizer, profile=profile)


def test_vllm_folder_is_a_deci_config_whose_reading_reproduces_the_per_layer_export(tmp_path):
    from awncompress.serve.configuration_decilm import DeciLMConfig

    nested = _vllm_nested(tmp_path)
    out = tmp_path / "served"
    args = ["export", str(nested), "--out", str(out), "--format", "vllm", "--learned", "--multiple", "256"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    folder = out / "per-layer-vllm"
    record = json.loads((folder / "awncompress.json").read_text())
    assert record["format"] == "vllm" and record["layer_widths"] == [256, 512]
    assert record["vllm"]["serve"] == "vllm serve PATH --trust-remote-code"
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["DeciLMForCausalLM"] and config["auto_map"]["AutoConfig"].endswith(
        "DeciLMConfig"
    )
    assert (folder / "configuration_decilm.py").is_file() and (folder / "tokenizer.json").is_file()
    blocks = DeciLMConfig.from_pretrained(folder).block_configs
    assert [b.ffn.ffn_mult for b in blocks] == [12.0, 24.0] and blocks[0].attention.n_heads_in_group == 2
    assert "vllm serve PATH --trust-remote-code" in (folder / "README.md").read_text()
    inspected = runner.invoke(app, ["inspect", str(folder)])  # its record reads like every export's
    assert inspected.exit_code == 0 and "[256, 512]" in inspected.output
    with pytest.raises(NotAnExportError, match="VLLM export"):
        load_pretrained(folder)


def test_vllm_check_fails_on_a_config_whose_widths_do_not_fit_the_weights(tmp_path):
    from awncompress.errors import UnsupportedModelError
    from awncompress.serve.vllm import check_vllm_folder

    nested = _vllm_nested(tmp_path)
    out = tmp_path / "served"
    runner.invoke(app, ["export", str(nested), "--out", str(out), "--format", "vllm", "--learned", "--multiple", "256"])
    folder = out / "per-layer-vllm"
    config = json.loads((folder / "config.json").read_text())
    config["block_configs"][0]["ffn"]["ffn_mult"] = 24.0  # says 512 where the weights hold 256
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError, match="weights do not fit the DeciLM config"):
        check_vllm_folder(folder, load_pretrained(nested, width=[256, 512]), [1, 50, 60, 70])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--widths", "0.5"], "a uniform export serves in vLLM as it is"),
        (["--learned"], "layer 0's width 200 cannot be said: give --multiple 256"),
    ],
)
def test_bad_vllm_requests_are_one_line_before_anything_is_written(args, message, tmp_path):
    nested = _vllm_nested(tmp_path)
    out = tmp_path / "served"
    result = runner.invoke(app, ["export", str(nested), "--out", str(out), "--format", "vllm", *args])
    assert result.exit_code == 1 and message in result.output and not out.exists()


@pytest.fixture
def no_llama_cpp(monkeypatch):
    """As on a machine where llama-cpp-python could not be built: its module cannot be found."""
    import importlib.util

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else found(name, *a))


def test_without_llama_cpp_python_f16_is_checked_in_transformers_gguf_loader_and_says_so(tree, tmp_path, no_llama_cpp):
    nested = _nested(tmp_path)
    out = tmp_path / "served"
    result = _export(nested, out, "--widths", "0.5", "--quant", "f16", "--llama-cpp", str(tree))
    assert result.exit_code == 0, result.output
    assert "checked in transformers' GGUF loader (gguf-py) instead of llama.cpp" in result.output
    check = json.loads((out / "width-0.5-gguf-f16" / "awncompress.json").read_text())["check"]
    assert "GGUF loader (llama-cpp-python not installed)" in check["runtime"] and check["max_abs_diff"] < 2e-2
    assert check["summary"].startswith("transformers' GGUF loader (no llama-cpp-python) logits")


@pytest.mark.parametrize(
    "args, needs",
    [(["--widths", "0.5", "--quant", "q4_k_m"], "q4_k_m (llama.cpp's quantizer)"), (["--learned"], "DECI loader")],
)
def test_without_llama_cpp_python_what_only_llama_cpp_can_do_is_refused_first(
    args, needs, tree, tmp_path, no_llama_cpp
):
    nested = _nested_with_profile(tmp_path, [256, 512])
    out = tmp_path / "served"
    result = _export(nested, out, *args, "--llama-cpp", str(tree))
    assert result.exit_code == 1 and needs in result.output and "pip install llama-cpp-python" in result.output
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "family, overrides",
    [
        ("qwen3", {}),
        ("gpt2", {}),  # llama.cpp's GPT-2 converter writes 4 · n_embd as the FFN width: patched to n_inner
        ("gemma3_text", {"sliding_window": 128, "query_pre_attn_scalar": 16}),  # as Gemma 3's: scalar = head_dim
        ("mistral", {"sliding_window": None}),
    ],
)
def test_uniform_exports_of_each_decoder_family_run_in_llama_cpp(family, overrides, tree, tmp_path):
    """Each family's converter needs a tokenizer whose pre-tokenizer llama.cpp knows: SmolLM2's real one."""
    from transformers import AutoTokenizer

    from awncompress.data import assets

    try:
        tokenizer = AutoTokenizer.from_pretrained(assets.smollm2_path())
    except assets.AssetError as exc:
        pytest.skip(str(exc))
    model = zoo.build(family, 0, head="lm", vocab_size=len(tokenizer), **overrides)
    nested = export_nested(model, tmp_path / "nested", widths=[0.5], tokenizer=tokenizer)
    result = _export(nested, tmp_path / "served", "--widths", "0.5", "--llama-cpp", str(tree))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "served" / "width-0.5-gguf-f16"
    ids = tokenizer("It is a truth universally acknowledged, that a single man")["input_ids"]
    got = _llama_cpp_logits(folder / "model-f16.gguf", ids)
    with torch.no_grad():
        want = load_pretrained(nested, width=0.5)(input_ids=torch.tensor([ids])).logits[0].numpy()
    assert np.abs(got - want).max() <= 2e-2 * max(1.0, np.abs(want).max())


def _grown_nested(tmp_path):
    """A tiny Llama whose layer 1 grew from 512 to 768 neurons (the new ones given weight), nested."""
    model, tokenizer = zoo.llama_with_tokenizer(intermediate_size=512, widen=False)
    block = find_ffns(model)[1]
    grow_(block, *new_input_rows(block, 256, "random", torch.Generator().manual_seed(0)))
    with torch.no_grad():
        block.down.weight[:, 512:].normal_(0, 0.05)  # so that the grown neurons change the logits
    set_config_widths(model.config, find_ffns(model))
    profile = {"k": 0.9, "normalised_rates": [3.0, 1.0], "active_widths": [256, 768]}
    return export_nested(model, tmp_path / "nested", widths=[0.5], tokenizer=tokenizer, profile=profile)


def test_a_layer_grown_past_its_pretrained_width_runs_in_llama_cpp_and_vllm_as_deci(tree, tmp_path):
    import gguf

    from awncompress.serve.configuration_decilm import DeciLMConfig

    nested = _grown_nested(tmp_path)
    assert json.loads((nested / "awncompress.json").read_text())["grown_widths"] == [512, 768]
    out = tmp_path / "served"
    result = _export(nested, out, "--learned", "--multiple", "256", "--llama-cpp", str(tree))
    assert result.exit_code == 0, result.output
    gguf_file = out / "per-layer-gguf-f16" / "model-f16.gguf"
    downs = {t.name: [int(x) for x in t.shape] for t in gguf.GGUFReader(str(gguf_file)).tensors}
    assert downs["blk.0.ffn_down.weight"] == [256, 32] and downs["blk.1.ffn_down.weight"] == [768, 32]
    ids = [1, 120, 200, 7, 280, 33, 150, 290, 64, 5]
    with torch.no_grad():
        want = load_pretrained(nested, width=[256, 768])(input_ids=torch.tensor([ids])).logits[0].numpy()
        narrower = load_pretrained(nested, width=[256, 512])(input_ids=torch.tensor([ids])).logits[0].numpy()
    got = _llama_cpp_logits(gguf_file, ids)
    assert np.abs(got - want).max() <= 2e-2 * max(1.0, np.abs(want).max())
    assert np.abs(narrower - want).max() > 10 * np.abs(got - want).max()  # the grown neurons were served
    args = ["export", str(nested), "--out", str(out / "v"), "--format", "vllm", "--learned", "--multiple", "256"]
    assert runner.invoke(app, args).exit_code == 0
    blocks = DeciLMConfig.from_pretrained(out / "v" / "per-layer-vllm").block_configs
    assert [b.ffn.ffn_mult for b in blocks] == [12.0, 36.0]
