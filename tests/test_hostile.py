"""Hostile input and faults: nothing deleted, executed or read that the user did not name; one line,
non-zero exit and nothing half-written for everything else. One test per class of issue 10."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml
from conftest import save_tiny_bert, save_tiny_llama, synthetic_record, write_nested, write_reviews
from typer.testing import CliRunner
from zoo import make_model

from awncompress import NotAnExportError, export_uniform, load_pretrained, read_provenance
from awncompress.cli import app
from awncompress.files.manifest import MANIFEST
from awncompress.report.files import load_report

runner = CliRunner()
FAST = [
    "--steps",
    "2",
    "--dense-steps",
    "2",
    "--set",
    "train.batch_size=8",
    "--set",
    "dense.batch_size=8",
    "--set",
    "train.checkpoint_every=1",
    "--set",
    "evaluate.latency_repeats=1",
    "--quiet",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    return {
        "model": save_tiny_bert(root / "model", with_head=False),
        "data": write_reviews(root / "reviews.csv"),
        "root": root,
    }


def _one_line(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def _convert(tiny, out, *extra):
    return runner.invoke(
        app,
        [
            "convert",
            str(tiny["model"]),
            "--data",
            str(tiny["data"]),
            "--widths",
            "0.5",
            "--no-eval",
            "--out",
            str(out),
            *FAST,
            *extra,
        ],
    )


# --------------------------------------------------------------------------- 1. names read from metadata


@pytest.mark.parametrize("name", ["../outside.safetensors", "../../../../etc/passwd", "/etc/passwd"])
def test_weight_files_named_by_an_index_must_lie_inside_the_folder(tmp_path, name):
    folder = export_uniform(make_model("bert"), tmp_path / "export" / "w", 0.5)
    shutil.copy(folder / "model.safetensors", tmp_path / "export" / "outside.safetensors")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"classifier.weight": name}}))
    with pytest.raises(NotAnExportError, match="outside"):
        load_pretrained(folder)


# --------------------------------------------------------------------------- 2. code named by a folder


def _evil_metric(tmp_path):
    marker = tmp_path / "ran"
    script = tmp_path / "evil_metric.py"
    script.write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    return script, marker


def test_a_metric_script_named_by_an_output_folder_is_not_run(tiny, tmp_path):
    out = tmp_path / "out"
    assert _convert(tiny, out).exit_code == 0
    script, marker = _evil_metric(tmp_path)
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    recipe["evaluate"]["metric"] = str(script)
    (out / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    line = _one_line(runner.invoke(app, ["evaluate", str(out)]))
    assert "not run" in line and "--metric" in line and not marker.exists()


def test_a_metric_script_named_by_a_recipe_file_is_not_run(tiny, tmp_path):
    script, marker = _evil_metric(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {"model": str(tiny["model"]), "data": {"train": str(tiny["data"])}, "evaluate": {"metric": str(script)}}
        )
    )
    line = _one_line(runner.invoke(app, ["convert", str(recipe), "--out", str(tmp_path / "o"), *FAST]))
    assert "not run" in line and not marker.exists() and not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- 3. --overwrite


def test_overwrite_never_deletes_what_awncompress_did_not_write(tiny, tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    monkeypatch.chdir(tmp_path)
    for target in (mine, tmp_path, tmp_path.parent, tiny["model"], tiny["root"]):
        line = _one_line(_convert(tiny, target, "--overwrite"))
        assert str(target.name) in line or "current directory" in line
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert (tiny["model"] / "config.json").exists() and tiny["data"].exists()
    out = tmp_path / "out"
    assert _convert(tiny, out).exit_code == 0
    assert _convert(tiny, out, "--overwrite").exit_code == 0  # an awncompress output is replaced


# --------------------------------------------------------------------------- 4. --resume checks the run


def _kill_after_dense(tiny, out, monkeypatch):
    import awncompress.run.chain as flow

    real, calls = flow.convert_, []

    def killed(*args, **kwargs):  # the dry pass converts first; the real run is killed
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(flow, "convert_", killed)
    assert _convert(tiny, out).exit_code == 130
    monkeypatch.undo()


def test_resume_refuses_another_run_and_names_the_keys(tiny, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _kill_after_dense(tiny, out, monkeypatch)
    recorded = (out / "recipe.yaml").read_text()
    line = _one_line(_convert(tiny, out, "--resume", "--seed", "7", "--set", "train.steps=3"))
    assert "seed" in line and "train.steps" in line
    assert (out / "recipe.yaml").read_text() == recorded
    assert _convert(tiny, out, "--resume").exit_code == 0


# --------------------------------------------------------------------------- 5. temp folders of a killed run


def test_a_killed_runs_temp_folders_are_cleaned_on_resume(tiny, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _kill_after_dense(tiny, out, monkeypatch)
    (out / ".nested.tmp-abc123").mkdir()  # what a SIGKILL during an export leaves
    (out / ".nested.tmp-abc123" / "model.safetensors").write_text("half")
    assert _convert(tiny, out, "--resume").exit_code == 0
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != MANIFEST]


# --------------------------------------------------------------------------- 6. corrupt safetensors


def test_corrupt_safetensors_give_one_line(tiny, tmp_path):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny["model"], broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 3])
    line = _one_line(
        runner.invoke(app, ["convert", str(broken), "--data", str(tiny["data"]), "--out", str(tmp_path / "o"), *FAST])
    )
    assert "model.safetensors" in line and not (tmp_path / "o").exists()
    folder = export_uniform(make_model("bert"), tmp_path / "w", 0.5)
    (folder / "model.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(NotAnExportError, match="model.safetensors"):
        load_pretrained(folder)


# ------------------------------------------------------------------------ 7. inputs longer than the model's positions


def test_max_length_beyond_the_models_positions_is_clamped_and_said(tiny, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "convert",
            str(tiny["model"]),
            "--data",
            str(tiny["data"]),
            "--widths",
            "0.5",
            "--no-eval",
            "--out",
            str(out),
            *FAST[:-1],
            "--set",
            "data.max_length=500",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "max_length" in result.output and "64" in result.output
    assert yaml.safe_load((out / "recipe.yaml").read_text())["data"]["max_length"] == 64


# --------------------------------------------------------------------------- 8. validated before anything is written


@pytest.mark.parametrize(
    "sets",
    [
        ["--set", "evaluate.metric=no_such_metric_xyz"],
        ["--set", "train.batch_size=6", "--set", "train.grad_accum=4"],
        ["--set", "dense.batch_size=6", "--set", "train.grad_accum=4"],
        ["--set", "awn.scorer=none", "--set", "evaluate.methods=awn,finetune"],
    ],
)
def test_settings_that_cannot_work_are_refused_before_the_output_exists(tiny, tmp_path, sets):
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["convert", str(tiny["model"]), "--data", str(tiny["data"]), "--out", str(out), *FAST, *sets]
    )
    _one_line(result)
    assert not out.exists()


# --------------------------------------------------------------------------- 9. output-path errors


def test_output_path_errors_name_the_path_and_the_reason(tiny, tmp_path, monkeypatch):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    line = _one_line(_convert(tiny, a_file))
    assert "a-file" in line and "file" in line and a_file.read_text() == "x"
    line = _one_line(_convert(tiny, a_file / "sub"))
    assert "a-file" in line and "Not a directory" in line

    import awncompress.checkpoint.export as export

    real_save = export._save

    def disk_full(model, folder, record, tokenizer):
        if "full" not in str(folder):  # the dry pass exports into a temp folder first
            return real_save(model, folder, record, tokenizer)
        raise OSError(28, "No space left on device", str(folder / "model.safetensors"))

    monkeypatch.setattr(export, "_save", disk_full)
    line = _one_line(_convert(tiny, tmp_path / "full"))
    assert "No space left on device" in line and "model.safetensors" in line
    assert not [p for p in (tmp_path / "full").rglob("*") if ".tmp-" in p.name]


# --------------------------------------------------------------------------- 10. broken --set values


def test_a_broken_list_in_set_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _one_line(runner.invoke(app, ["convert", "demo", "--set", "train.extra_widths=[1,2"]))
    assert "train.extra_widths" in line or "[1,2" in line
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- 11. tampered metadata


def test_a_tampered_architecture_never_builds_anything_else(tmp_path):
    folder = write_nested(tmp_path / "nested")
    record = json.loads((folder / "awncompress.json").read_text())
    for name in ("os", "logging", "AutoConfig", "__import__", "../evil"):
        (folder / "awncompress.json").write_text(json.dumps({**record, "architecture": name}))
        with pytest.raises(NotAnExportError, match="architecture"):
            load_pretrained(folder)


@pytest.mark.parametrize(
    "key, value, where",
    [
        ("architecture", "logging", "architecture"),
        ("d_ff", 0, "d_ff"),
        ("layer_widths", "abc", "layer_widths"),
        ("format", "zip", "format"),
        ("profile", {"k": 0.9, "normalised_rates": "abc", "active_widths": [8, 8]}, "normalised_rates"),
        ("ffn_spec", {"up": 3}, "ffn_spec"),
    ],
)
def test_tampered_export_metadata_is_not_an_export(tmp_path, key, value, where):
    folder = write_nested(tmp_path / "nested")
    record = json.loads((folder / "awncompress.json").read_text())
    record[key] = value
    (folder / "awncompress.json").write_text(json.dumps(record))
    with pytest.raises(NotAnExportError, match=rf"awncompress\.json.*{where}"):
        read_provenance(folder)
    with pytest.raises(NotAnExportError):
        load_pretrained(folder, width="learned")
    _one_line(runner.invoke(app, ["inspect", str(folder)]))


def test_an_index_that_is_not_json_and_a_tampered_report(tmp_path):
    folder = export_uniform(make_model("bert"), tmp_path / "w", 0.5)
    (folder / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(NotAnExportError, match="index"):
        load_pretrained(folder)
    dense = {"value": 0.8, "flops": 10, "ffn_share": 0.5, "params": 5}
    (tmp_path / "report.json").write_text(json.dumps({"rows": "abc", "dense": dense, "metric": {"name": "accuracy"}}))
    with pytest.raises(NotAnExportError, match="report.json.*rows"):
        load_report(tmp_path)
    _one_line(runner.invoke(app, ["report", str(tmp_path)]))


# --------------------------------------------------------------------------- weak messages, mended


def test_weak_messages_are_mended(tiny, tmp_path, monkeypatch):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    assert "config.json" in _one_line(runner.invoke(app, ["convert", str(empty), "--data", str(tiny["data"]), *FAST]))
    line = _one_line(runner.invoke(app, ["convert", str(tiny["data"]), "--data", str(tiny["data"]), *FAST]))
    assert "is a file" in line and "model" in line
    monkeypatch.chdir(tmp_path)
    line = _one_line(runner.invoke(app, ["convert", "bert-large", *FAST]))
    assert "not a shipped recipe" in line and "demo" in line
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    line = _one_line(runner.invoke(app, ["convert", "demo", "--widths", "0.5,0.5000001"]))
    assert "same folder" in line and not any((tmp_path / "cwd").iterdir())


def test_a_trained_head_of_another_size_is_refused_with_the_way_to_a_new_head(tmp_path):
    import pandas as pd
    import transformers as tf

    headed = save_tiny_bert(tmp_path / "headed")  # a trained head for 2 labels
    three = tmp_path / "three.csv"
    pd.DataFrame({"text": ["good film", "bad film", "dull plot"] * 10, "label": ["a", "b", "c"] * 10}).to_csv(three)
    out = tmp_path / "out"
    line = _one_line(runner.invoke(app, ["convert", str(headed), "--data", str(three), "--out", str(out), *FAST]))
    assert "has a head for 2 labels but the data has 3" in line and "encoder alone" in line and not out.exists()
    encoder = tmp_path / "encoder"  # what the message says to do
    tf.AutoModel.from_pretrained(headed).save_pretrained(encoder)
    tf.AutoTokenizer.from_pretrained(headed).save_pretrained(encoder)
    args = ["convert", str(encoder), "--data", str(three), "--out", str(out), "--widths", "0.5", *FAST]
    result = runner.invoke(app, [*args, "--set", "evaluate.methods=awn"])
    assert result.exit_code == 0, result.output
    assert tf.AutoConfig.from_pretrained(out / "width-0.5").num_labels == 3


def test_labels_only_in_eval_data_and_float_labels(tiny, tmp_path):
    import pandas as pd

    train, evals = tmp_path / "train.csv", tmp_path / "eval.csv"
    pd.DataFrame({"text": ["good film", "bad film"] * 10, "label": ["a", "b"] * 10}).to_csv(train, index=False)
    pd.DataFrame({"text": ["dull plot", "good film"], "label": ["c", "a"]}).to_csv(evals, index=False)
    line = _one_line(
        runner.invoke(app, ["convert", str(tiny["model"]), "--data", str(train), "--eval-data", str(evals), *FAST])
    )
    assert "'c'" in line and "training data" in line
    floats = tmp_path / "floats.csv"
    pd.DataFrame({"text": ["good film", "bad film"] * 10, "label": [0.5, 1.5] * 10}).to_csv(floats, index=False)
    line = _one_line(runner.invoke(app, ["convert", str(tiny["model"]), "--data", str(floats), *FAST]))
    assert "0.5" in line and "class" in line


def test_a_killed_run_folder_hints_resume_and_evaluate_needs_dense(tiny, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _kill_after_dense(tiny, out, monkeypatch)
    assert "--resume" in _one_line(_convert(tiny, out))
    assert _convert(tiny, out, "--resume").exit_code == 0
    shutil.rmtree(out / "dense")
    line = _one_line(runner.invoke(app, ["evaluate", str(out)]))
    assert "--model" in line  # the model lies outside OUT: it is read only when named
    line = _one_line(
        runner.invoke(app, ["evaluate", str(out), "--model", str(tiny["model"]), "--train-data", str(tiny["data"])])
    )
    assert "dense" in line and "untrained" in line


def test_nothing_is_left_when_a_fresh_run_fails_on_its_first_write(tiny, tmp_path, monkeypatch):
    import awncompress.run.outdir as outdir

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "o" / "recipe.yaml"))

    monkeypatch.setattr(outdir, "dump_recipe", no_space)
    _one_line(_convert(tiny, tmp_path / "o"))
    assert not (tmp_path / "o").exists()
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- a second hostile pass (294 cases)


def test_links_inside_an_output_never_lead_outside_it(tiny, tmp_path):
    out, victim = tmp_path / "out", tmp_path / "victim"
    assert _convert(tiny, out).exit_code == 0 and _convert(tiny, victim).exit_code == 0
    card = (victim / "width-0.5" / "awncompress.json").read_text()
    shutil.rmtree(out / "width-0.5")
    (out / "width-0.5").symlink_to(victim / "width-0.5")
    line = _one_line(runner.invoke(app, ["evaluate", str(out), "--train-data", str(tiny["data"])]))
    assert "outside" in line and (victim / "width-0.5" / "awncompress.json").read_text() == card
    nested = out / "nested" / "model.safetensors"
    nested.unlink()
    nested.symlink_to(victim / "nested" / "model.safetensors")
    with pytest.raises(NotAnExportError, match="outside"):
        load_pretrained(out / "nested")


def test_an_input_models_index_may_not_name_files_outside_it(tiny, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny["model"], model)
    (model / "model.safetensors").rename(tmp_path / "elsewhere.safetensors")
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"x": "../elsewhere.safetensors"}}))
    line = _one_line(
        runner.invoke(app, ["convert", str(model), "--data", str(tiny["data"]), "--out", str(tmp_path / "o"), *FAST])
    )
    assert "outside" in line and not (tmp_path / "o").exists()


def test_overwrite_never_deletes_the_recipe_being_read(tiny, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    recipe = project / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"model": str(tiny["model"]), "data": {"train": str(tiny["data"])}}))
    line = _one_line(runner.invoke(app, ["convert", str(recipe), "--out", str(project), "--overwrite", *FAST]))
    assert "recipe.yaml" in line and recipe.exists()


def test_a_second_run_on_the_same_output_is_refused_while_one_runs(tiny, tmp_path):
    from awncompress.run.outdir import exclusive

    out = tmp_path / "out"
    with exclusive(out):
        line = _one_line(_convert(tiny, out))
    assert "another awncompress run" in line and not out.exists()


def test_resume_refuses_changed_data(tiny, tmp_path, monkeypatch):
    data = tmp_path / "data.csv"
    shutil.copy(tiny["data"], data)
    out = tmp_path / "out"
    import awncompress.run.chain as flow

    real, calls = flow.convert_, []

    def killed(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(flow, "convert_", killed)
    args = [
        "convert",
        str(tiny["model"]),
        "--data",
        str(data),
        "--widths",
        "0.5",
        "--no-eval",
        "--out",
        str(out),
        *FAST,
    ]
    assert runner.invoke(app, args).exit_code == 130
    monkeypatch.undo()
    write_reviews(data, n=96, seed=7)  # other reviews under the same name
    assert "changed" in _one_line(runner.invoke(app, [*args, "--resume"]))


def test_bad_model_folders_are_refused(tiny, tmp_path):
    def folder(name, drop=(), config=None):
        path = tmp_path / name
        shutil.copytree(tiny["model"], path)
        for f in drop:
            (path / f).unlink()
        if config is not None:
            (path / "config.json").write_text(config)
        return path

    cases = {
        folder("no-tokenizer", drop=("tokenizer.json", "tokenizer_config.json")): "tokenizer",
        folder("array-config", config="[1, 2, 3]"): "config",
    }
    llama = save_tiny_llama(tmp_path / "llama")
    (llama / "config.json").write_text((tiny["model"] / "config.json").read_text())  # llama weights, bert config
    cases[llama] = "do not match"
    for path, word in cases.items():
        line = _one_line(
            runner.invoke(app, ["convert", str(path), "--data", str(tiny["data"]), "--out", str(tmp_path / "o"), *FAST])
        )
        assert word in line, line
        assert not (tmp_path / "o").exists()


def test_a_decoder_classifies_with_its_eos_as_padding(tmp_path):
    model = save_tiny_llama(tmp_path / "llama")  # no pad token, the default task is classification
    data = write_reviews(tmp_path / "r.csv")
    result = runner.invoke(
        app,
        [
            "convert",
            str(model),
            "--data",
            str(data),
            "--widths",
            "0.5",
            "--no-eval",
            "--out",
            str(tmp_path / "o"),
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("tamper", ["step-abc", "trainer_state.json", "optimizer.json"])
def test_tampered_checkpoints_give_one_line_on_resume(tiny, tmp_path, monkeypatch, tamper):
    out = tmp_path / "out"
    _kill_after_dense(tiny, out, monkeypatch)
    step = next((out / "checkpoints" / "dense").glob("step-*"))
    if tamper == "step-abc":
        (out / "checkpoints" / "dense" / "step-abc").mkdir()
        assert _convert(tiny, out, "--resume").exit_code == 0  # a name that is not a step is ignored
        return
    (step / tamper).write_text("garbage{" if tamper == "trainer_state.json" else '{"param_groups": [{"lr": 1}]}')
    assert "cannot be resumed" in _one_line(_convert(tiny, out, "--resume"))


def test_a_config_that_disagrees_with_its_record_is_not_an_export(tmp_path):
    folder = write_nested(tmp_path / "nested")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "intermediate_size": 10**12}))
    with pytest.raises(NotAnExportError, match="intermediate_size"):
        load_pretrained(folder, width=0.25)
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(NotAnExportError, match="model_type|config"):
        load_pretrained(folder, width=0.25)
    (folder / "config.json").write_text(json.dumps(config))
    record = json.loads((folder / "awncompress.json").read_text())
    (folder / "awncompress.json").write_text(json.dumps({**record, "architecture": "GPT2LMHeadModel"}))
    with pytest.raises(NotAnExportError, match="GPT2LMHeadModel"):
        load_pretrained(folder, width=0.25)


@pytest.mark.parametrize(
    "key, value",
    [("costs", {"awn": "x"}), ("latency_config", "fast"), ("device", [1]), ("versions", "abc"), ("profile", {"k": 1})],
)
def test_a_report_with_wrong_types_is_one_line(tmp_path, key, value):
    from awncompress.report.files import write_report

    write_report(synthetic_record(), tmp_path)
    record = json.loads((tmp_path / "report.json").read_text())
    (tmp_path / "report.json").write_text(json.dumps({**record, key: value}))
    assert key in _one_line(runner.invoke(app, ["report", str(tmp_path)]))


def test_a_full_disk_during_safetensors_writes_is_one_line(tiny, tmp_path, monkeypatch):
    from safetensors import SafetensorError

    def full(*args, **kwargs):
        raise SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    folder = write_nested(tmp_path / "nested")
    import transformers

    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", full)
    line = _one_line(runner.invoke(app, ["export", str(folder), "--widths", "0.25", "--out", str(tmp_path / "x")]))
    assert "No space left" in line and not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def test_score_overwrites_its_own_file(tiny, tmp_path):
    out = tmp_path / "scores.safetensors"
    args = [
        "score",
        str(tiny["model"]),
        "--data",
        str(tiny["data"]),
        "--batches",
        "1",
        "--batch-size",
        "8",
        "--out",
        str(out),
    ]
    assert runner.invoke(app, args).exit_code == 0
    assert "--overwrite" in _one_line(runner.invoke(app, args))
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


# --------------------------------------------------------------------------- issue 29: trust, second pass


def _score_args(tiny, out, *extra):
    return ["score", str(tiny["model"]), "--data", str(tiny["data"]), "--batches", "1", "--batch-size", "8"] + (
        ["--out", str(out), *extra] if out is not None else []
    )


def test_29_1_score_never_replaces_its_inputs_or_what_it_did_not_write(tiny, tmp_path):
    copy = {"model": tmp_path / "model", "data": tmp_path / "reviews.csv"}  # a regression must not spoil the fixture
    shutil.copytree(tiny["model"], copy["model"])
    shutil.copy(tiny["data"], copy["data"])
    tiny = copy
    weights = tiny["model"] / "model.safetensors"
    before = weights.read_bytes()
    for target in (weights, tiny["model"] / "config.json", tiny["data"]):
        line = _one_line(runner.invoke(app, _score_args(tiny, target, "--overwrite")))
        assert "reads" in line, line
    mine = tmp_path / "mine.safetensors"
    shutil.copy(weights, mine)  # a safetensors file awncompress did not write
    assert "not a file awncompress wrote" in _one_line(runner.invoke(app, _score_args(tiny, mine, "--overwrite")))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert "FIFO" in _one_line(runner.invoke(app, _score_args(tiny, fifo, "--overwrite")))
    link = tmp_path / "link.safetensors"
    link.symlink_to(mine)
    assert "symbolic link" in _one_line(runner.invoke(app, _score_args(tiny, link, "--overwrite")))
    assert weights.read_bytes() == before and mine.read_bytes() == before and fifo.is_fifo()


def test_29_2_the_run_lock_cannot_be_planted_and_is_removed(tmp_path, monkeypatch):
    import tempfile

    from awncompress.errors import AwnError
    from awncompress.files.lock import lock_path, run_lock

    out, victim = tmp_path / "out", tmp_path / "victim"
    lock = lock_path(out)
    lock.symlink_to(victim)  # a link at the lock's name is not followed
    with pytest.raises(AwnError, match="symbolic link"):
        with run_lock(out):
            pass
    assert not victim.exists()
    lock.unlink()
    with run_lock(out):
        assert lock.is_file() and not lock.is_symlink()
        with pytest.raises(AwnError, match="another awncompress"):
            with run_lock(out):
                pass
    assert not lock.exists()  # removed when the run ends
    info = lock.parent.lstat()
    assert info.st_uid == os.geteuid() and info.st_mode & 0o077 == 0
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    planted = shared / f"awncompress-{os.geteuid()}"
    for plant in (lambda: planted.symlink_to(victim), lambda: planted.write_text("x")):
        plant()
        with pytest.raises(AwnError, match="lock folder"):
            with run_lock(out):
                pass
        planted.unlink()
    assert not victim.exists()


def test_29_3_overwrite_keeps_user_files_inside_an_outputs_subfolders(tiny, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _kill_after_dense(tiny, out, monkeypatch)
    step = next((out / "checkpoints" / "dense").glob("step-*"))
    mine = [out / "dense" / "important.db", step / "my_notes.txt"]
    for path in mine:
        path.write_text("mine")
    result = _convert(tiny, out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert "kept 2 file(s)" in result.output and "important.db" in result.output
    assert all(path.read_text() == "mine" for path in mine)
    assert (out / "width-0.5" / "awncompress.json").exists() and not (step / "model.safetensors").exists()
    mine += [out / "notes.txt", out / "width-0.5" / "important.db"]
    for path in mine[2:]:
        path.write_text("mine")
    result = _convert(tiny, out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert "kept 4 file(s)" in result.output and all(path.read_text() == "mine" for path in mine)


def test_29_3_a_record_never_names_files_outside_its_folder(tmp_path):
    from awncompress.files.manifest import remove_written

    victim, outside, folder = tmp_path / "victim.txt", tmp_path / "outside", tmp_path / "out"
    victim.write_text("v")
    outside.mkdir()
    (outside / "f").write_text("v")
    folder.mkdir()
    (folder / "link").symlink_to(outside)
    names = [str(victim), "../victim.txt", "link/f", "link"]
    (folder / MANIFEST).write_text(json.dumps({"written_by": "awncompress", "files": names}))
    remove_written(folder)
    assert victim.read_text() == "v" and (outside / "f").read_text() == "v" and not (folder / "link").exists()


def test_29_4_export_never_replaces_its_own_source(tmp_path):
    source = write_nested(tmp_path / "v" / "n30" / "width-0.5")
    card = (source / "awncompress.json").read_text()
    args = ["export", str(source), "--widths", "0.5", "--out", str(tmp_path / "v" / "n30"), "--overwrite"]
    assert "reads" in _one_line(runner.invoke(app, args))
    assert (source / "awncompress.json").read_text() == card and read_provenance(source)["format"] == "nested"
    inside = ["export", str(source), "--widths", "0.25", "--out", str(source)]
    assert "reads" in _one_line(runner.invoke(app, inside))


def test_29_5_a_fifo_in_an_export_is_refused_not_waited_on(tmp_path):
    import subprocess
    import sys

    folder = write_nested(tmp_path / "nested")
    (folder / "model.safetensors").unlink()
    os.mkfifo(folder / "model.safetensors")
    code = f"from awncompress import load_pretrained\nload_pretrained({str(folder)!r})"
    # In a child process: a reader blocked on a FIFO holds the interpreter, and no signal frees it.
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "NotAnExportError" in child.stderr and "FIFO" in child.stderr
    line = _one_line(runner.invoke(app, ["export", str(folder), "--widths", "0.5", "--out", str(tmp_path / "x")]))
    assert "FIFO" in line and not (tmp_path / "x").exists()


def test_29_6_resume_checks_the_checkpoint_against_the_recipe(tiny, tmp_path, monkeypatch):
    out = tmp_path / "out"
    _kill_after_dense(tiny, out, monkeypatch)
    step = next((out / "checkpoints" / "dense").glob("step-*"))
    state_file = step / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "step": 99999}))
    assert "99999" in _one_line(_convert(tiny, out, "--resume"))
    state_file.write_text(json.dumps(state))
    optimizer = (step / "optimizer.safetensors").read_bytes()
    from safetensors.torch import save_file

    save_file({}, str(step / "optimizer.safetensors"))
    assert "optimizer state" in _one_line(_convert(tiny, out, "--resume"))
    (step / "optimizer.safetensors").write_bytes(optimizer)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(step), elsewhere)
    step.symlink_to(elsewhere)
    assert "outside" in _one_line(_convert(tiny, out, "--resume"))
    assert not (out / "width-0.5").exists()


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_29_7_deeply_nested_yaml_and_json_are_one_line(tiny, tmp_path):
    recipe = tmp_path / "deep.yaml"
    recipe.write_text(f"model: {tiny['model']}\ndata: {_deep(5000)}\n")
    assert "deeper" in _one_line(runner.invoke(app, ["convert", str(recipe), "--out", str(tmp_path / "o")]))
    (tmp_path / "report.json").write_text(_deep(100000))
    assert "deeper" in _one_line(runner.invoke(app, ["report", str(tmp_path)]))
    folder = write_nested(tmp_path / "nested")
    (folder / "awncompress.json").write_text('{"format": ' + _deep(100000) + "}")
    assert "deeper" in _one_line(runner.invoke(app, ["inspect", str(folder)]))
    (folder / "awncompress.json").unlink()
    out = tmp_path / "out"
    out.mkdir()
    shutil.copytree(write_nested(tmp_path / "n2"), out / "nested")
    (out / "recipe.yaml").write_text("model: m\nderived: " + _deep(5000) + "\n")
    assert "deeper" in _one_line(runner.invoke(app, ["evaluate", str(out)]))


def test_29_8_a_seed_beyond_64_bits_is_one_line(tiny, tmp_path):
    line = _one_line(_convert(tiny, tmp_path / "o", "--seed", str(2**64)))
    assert "seed" in line and not (tmp_path / "o").exists()


def test_29_9_huge_labels_are_refused_without_building_a_range(tiny, tmp_path):
    import pandas as pd

    data = tmp_path / "huge.csv"
    pd.DataFrame({"text": ["good film", "bad film"] * 10, "label": [0, 10**12] * 10}).to_csv(data, index=False)
    line = _one_line(
        runner.invoke(app, ["convert", str(tiny["model"]), "--data", str(data), "--out", str(tmp_path / "o"), *FAST])
    )
    assert "0..n-1" in line and "1000000000000" in line


def test_29_10_an_untrained_head_with_no_dense_stage_is_one_line(tiny, tmp_path):
    line = _one_line(_convert(tiny, tmp_path / "o", "--set", "dense.steps=0"))
    assert "untrained" in line and "dense.steps" in line and not (tmp_path / "o").exists()


def test_29_11_a_symlink_loop_in_the_output_path_is_one_line(tiny, tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    line = _one_line(_convert(tiny, loop / "out"))
    assert "symbolic links" in line and "loop" in line


def test_29_12_the_dry_pass_temp_folder_is_per_run_and_a_killed_ones_is_removed(tiny, tmp_path, monkeypatch):
    import tempfile

    from awncompress.files.lock import lock_folder

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # no other run's folders in sight
    stale = lock_folder() / "dry-99999999-killed"
    (stale / "out").mkdir(parents=True)
    (stale / "out" / "model.safetensors").write_text("a copy of the model")
    result = runner.invoke(
        app, ["convert", str(tiny["model"]), "--data", str(tiny["data"]), "--out", str(tmp_path / "o"), "--plan"]
    )
    assert result.exit_code == 0, result.output
    assert not stale.exists() and not list(lock_folder().glob("dry-*")) and not (tmp_path / "o").exists()


def test_29_weak_messages_are_mended(tiny, tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    from awncompress.files.lock import run_lock
    from awncompress.report.files import write_report

    broken = tmp_path / "nan-model"
    shutil.copytree(tiny["model"], broken)
    tensors = load_file(str(broken / "model.safetensors"))
    name = next(k for k in tensors if k.endswith("weight"))
    tensors[name][0] = float("nan")
    save_file(tensors, str(broken / "model.safetensors"), metadata={"format": "pt"})
    line = _one_line(runner.invoke(app, ["convert", str(broken), "--data", str(tiny["data"]), *FAST]))
    assert "NaN" in line and "learning rate" not in line
    mismatched = tmp_path / "mismatched"
    shutil.copytree(tiny["model"], mismatched)
    config = json.loads((mismatched / "config.json").read_text())
    (mismatched / "config.json").write_text(json.dumps({**config, "intermediate_size": 48}))
    line = _one_line(runner.invoke(app, ["convert", str(mismatched), "--data", str(tiny["data"]), *FAST]))
    assert "[64]" in line and "[48]" in line and "above report" not in line
    fifo = tmp_path / "data.csv"
    os.mkfifo(fifo)
    assert "FIFO" in _one_line(runner.invoke(app, ["convert", str(tiny["model"]), "--data", str(fifo), *FAST]))
    record = synthetic_record()
    record["rows"][0]["method"] = "<img src=x>|awn"
    write_report(record, tmp_path / "r")
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "\\<img src=x\\>\\|awn" in markdown and "<img" not in markdown.replace("\\<img", "")
    folder = write_nested(tmp_path / "nested")
    with run_lock(tmp_path / "x"):
        args = ["export", str(folder), "--widths", "0.5", "--out", str(tmp_path / "x")]
        assert "another awncompress" in _one_line(runner.invoke(app, args))
    with run_lock(tmp_path / "r"):
        assert "another awncompress" in _one_line(runner.invoke(app, ["evaluate", str(tmp_path / "r")]))
    import awncompress.run.plan as plan

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plan, "run_stages", interrupted)
    line = _one_line(_convert(tiny, tmp_path / "o"), code=130)
    assert "--resume" not in line and "not touched" in line and not (tmp_path / "o").exists()
