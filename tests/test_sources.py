"""The one data-source classifier: builtins, files, Hub ids, and strings that are none of them."""

from __future__ import annotations

import pytest

from awncompress.data.sources import DataSource, classify_source
from awncompress.errors import DataError


def test_builtins_hub_ids_and_files(tmp_path):
    assert classify_source("builtin:rotten-tomatoes") == DataSource("builtin", "rotten-tomatoes")
    assert classify_source("builtin:jane-austen:test") == DataSource("builtin", "jane-austen", None, "test")
    assert classify_source("glue:sst2") == DataSource("hub", "glue", "sst2", None)
    assert classify_source("nyu-mll/glue:sst2:validation") == DataSource("hub", "nyu-mll/glue", "sst2", "validation")
    assert classify_source("imdb::test") == DataSource("hub", "imdb", None, "test")
    assert classify_source("imdb") == DataSource("hub", "imdb")
    assert classify_source("train.csv") == DataSource("file", "train.csv")
    folder = tmp_path / "data"
    folder.mkdir()
    assert classify_source(str(folder)).kind == "file"


def test_the_inputs_two_classifiers_used_to_disagree_on(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # dir/name: a file when dir exists (so a typo says "not found"), else an org/name Hub id.
    assert classify_source("data/eval") == DataSource("hub", "data/eval")
    (tmp_path / "data").mkdir()
    assert classify_source("data/eval") == DataSource("file", "data/eval")
    # A leading ./ is always a path, existing or not.
    assert classify_source("./mydata") == DataSource("file", "mydata")
    # Neither a path nor an id[:config[:split]]: one clear error naming the forms.
    for bad in ("a:b:c:d", "weird name"):
        with pytest.raises(DataError, match="neither a local file, builtin:<name>, nor a Hugging Face dataset id"):
            classify_source(bad)


@pytest.mark.parametrize("bad", ["", "builtin:", "builtin:x:y:z"])
def test_malformed_sources(bad):
    with pytest.raises(DataError):
        classify_source(bad)


def test_the_data_layer_uses_the_classifier(tmp_path, monkeypatch):
    from conftest import word_tokenizer

    from awncompress.data.tokenized import DataConfig, load_task_data

    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="neither a local file"):
        load_task_data(DataConfig(train="weird name"), word_tokenizer())
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match="data file not found: data/eval"):
        load_task_data(DataConfig(train="data/eval"), word_tokenizer())
