"""FSDP2: the AWN fine-tune of a tiny Llama on 2 CPU processes (gloo), sharded per layer, takes the
steps one process takes (the same losses and weights, within float error) and hands back a whole
model; `awncompress convert` under torchrun writes its output once, the exports those of one
process; the shardings awncompress does not run are refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import free_port, make_batches, save_tiny_llama
from fsdp_finetune_script import train
from safetensors.torch import load_file
from zoo import make_model

from awncompress import AWNConfig, convert_
from awncompress.errors import TrainingError
from awncompress.files.lock import lock_folder
from awncompress.train.sharding import sharding_requested

TESTS = Path(__file__).parent
FSDP2 = {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}


def _launcher() -> list[str]:
    """torchrun with 2 processes (`accelerate launch --cpu` always starts one)."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]


def _torchrun(script: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    cmd = _launcher()
    full = dict(os.environ, PYTHONPATH=f"{TESTS}{os.pathsep}{TESTS.parent}", OMP_NUM_THREADS="1", **env)
    return subprocess.run([*cmd, str(script), *args], env=full, capture_output=True, text=True, timeout=300)


def test_two_processes_under_fsdp2_take_the_steps_one_process_takes(tmp_path, keep_torch_threads):
    run = _torchrun(TESTS / "fsdp_finetune_script.py", str(tmp_path), env=FSDP2)
    assert run.returncode == 0, run.stderr[-3000:]
    torch.set_num_threads(1)  # the processes' thread count: the same float order of operations
    train(str(tmp_path), "alone")
    alone = load_file(str(tmp_path / "alone.safetensors"))
    losses = json.loads((tmp_path / "alone.json").read_text())
    for rank in (0, 1):
        sharded = load_file(str(tmp_path / f"rank{rank}.safetensors"))
        assert sharded.keys() == alone.keys()
        for key in alone:
            torch.testing.assert_close(sharded[key], alone[key], rtol=1e-4, atol=1e-4, msg=key)
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == pytest.approx(losses, rel=1e-5)
    initial = make_model("llama")
    convert_(initial, AWNConfig(), calibration=make_batches(vocab=64))
    start = initial.state_dict()
    rates = [k for k in alone if k.endswith("raw_rate")]
    sharded = load_file(str(tmp_path / "rank0.safetensors"))
    assert rates and all(abs(float(sharded[k]) - float(start[k])) > 1e-4 for k in rates)  # the rates trained


def test_a_sharded_checkpoint_resumes_to_the_uninterrupted_result(tmp_path, keep_torch_threads):
    straight = _torchrun(TESTS / "fsdp_finetune_script.py", str(tmp_path), env=FSDP2)
    assert straight.returncode == 0, straight.stderr[-3000:]
    stopped = _torchrun(TESTS / "fsdp_finetune_script.py", str(tmp_path), "no", "stop", env=FSDP2)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    ckpt = tmp_path / "ckpt"
    assert sorted(p.name for p in ckpt.iterdir()) == ["step-2"]  # no half-written checkpoint folder
    files = sorted(p.name for p in (ckpt / "step-2").iterdir())
    assert [f for f in files if f.endswith(".safetensors")] and not [f for f in files if "metadata" in f]
    with open(next((ckpt / "step-2").glob("*.safetensors")), "rb") as fh:  # safetensors: JSON header, no pickle
        header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
    assert any(k.startswith("model.") for k in header) and any(k.startswith("optim.state.") for k in header)
    resumed = _torchrun(TESTS / "fsdp_finetune_script.py", str(tmp_path), "no", "resume", env=FSDP2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(p.name for p in ckpt.iterdir()) == ["step-4"]
    for rank in (0, 1):
        whole = load_file(str(tmp_path / f"rank{rank}.safetensors"))
        again = load_file(str(tmp_path / f"rank{rank}resume.safetensors"))
        for key in whole:
            torch.testing.assert_close(again[key], whole[key], rtol=1e-6, atol=1e-6, msg=key)
        # The resumed run's losses are the straight run's: the first two from the checkpoint, then its own.
        losses = json.loads((tmp_path / f"rank{rank}resume.json").read_text())
        assert losses == pytest.approx(json.loads((tmp_path / f"rank{rank}.json").read_text()), rel=1e-6)


def test_fsdp2_in_bf16_trains_float32_weights_near_the_float32_ones(tmp_path, keep_torch_threads):
    run = _torchrun(TESTS / "fsdp_finetune_script.py", str(tmp_path), "bf16", env=FSDP2)
    assert run.returncode == 0, run.stderr[-3000:]
    torch.set_num_threads(1)
    train(str(tmp_path), "float32")
    full, half = (load_file(str(tmp_path / f"{tag}.safetensors")) for tag in ("float32", "rank0"))
    assert all(t.dtype == torch.float32 for t in half.values())  # master weights stay float32
    gaps = [float((half[k] - full[k]).abs().max()) for k in full]
    # float32 under FSDP2 lands within 1e-5 of one process (above): a larger gap is bf16's rounding; Adam
    # moves a weight about lr a step at most, so 4 steps of 1e-3 each way bound it
    assert 1e-4 < max(gaps) < 8e-3


@pytest.mark.parametrize(
    "env,message",
    [
        ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "1"}, "FSDP version 1 is not supported"),
        ({"ACCELERATE_USE_FSDP": "true"}, "FSDP version 1 is not supported"),
        ({"ACCELERATE_USE_DEEPSPEED": "true"}, "DeepSpeed is not supported"),
    ],
)
def test_shardings_it_does_not_run_are_refused_in_one_line(monkeypatch, env, message):
    for key in ("ACCELERATE_USE_FSDP", "FSDP_VERSION", "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(TrainingError, match=message) as info:
        sharding_requested()
    assert "\n" not in str(info.value)


def test_no_launcher_asks_for_no_sharding(monkeypatch):
    for key in ("ACCELERATE_USE_FSDP", "FSDP_VERSION", "ACCELERATE_USE_DEEPSPEED"):
        monkeypatch.delenv(key, raising=False)
    assert not sharding_requested()
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")
    monkeypatch.setenv("FSDP_VERSION", "2")
    assert not sharding_requested()


def _convert(
    model: Path, text: Path, out: Path, launcher: list[str], env: dict, *extra: str
) -> subprocess.CompletedProcess:
    args = ["convert", str(model), "--task", "causal-lm", "--data", str(text), "--widths", "0.5", "--out", str(out)]
    args += ["--steps", "4", "--set", "evaluate.methods=awn,wina,finetune", "--set", "evaluate.latency_repeats=2"]
    full = dict(os.environ, OMP_NUM_THREADS="1", **env)
    module = [] if launcher[-1].endswith(".py") else ["-m", "awncompress"]
    return subprocess.run([*launcher, *module, *args, *extra, "--quiet"], env=full, capture_output=True, text=True)


def test_convert_under_torchrun_with_fsdp2_writes_once_what_one_process_writes(tmp_path):
    model = save_tiny_llama(tmp_path / "llama")
    text = tmp_path / "text.txt"
    text.write_text(" ".join(["great film bad plot"] * 400))  # windows of one length (see the test above)
    private = lock_folder()
    before = set(private.glob("rank1-*"))
    two = _convert(model, text, tmp_path / "two", _launcher(), FSDP2)
    assert two.returncode == 0, two.stderr[-3000:]
    one = _convert(model, text, tmp_path / "one", [sys.executable], {})
    assert one.returncode == 0, one.stderr[-3000:]
    assert set(private.glob("rank1-*")) == before  # the second process's private folder is gone
    names = lambda out: sorted(p.name for p in out.iterdir())  # noqa: E731
    assert names(tmp_path / "two") == names(tmp_path / "one")
    for export in ("width-0.5", "nested"):
        ours, theirs = (load_file(str(tmp_path / run / export / "model.safetensors")) for run in ("two", "one"))
        assert ours.keys() == theirs.keys()
        for key in ours:
            torch.testing.assert_close(ours[key], theirs[key], rtol=1e-4, atol=1e-4, msg=key)
    rows = lambda out: {r["method"]: r["value"] for r in json.loads((out / "report.json").read_text())["rows"]}  # noqa: E731
    assert rows(tmp_path / "two") == pytest.approx(rows(tmp_path / "one"), rel=1e-3)
    assert set(rows(tmp_path / "two")) == {"awn", "wina", "fluctuation+finetune"}  # baseline trained on main


@pytest.mark.parametrize("sharding", ["fsdp2", "ddp"])
def test_convert_killed_after_a_checkpoint_resumes_to_the_uninterrupted_exports(tmp_path, sharding):
    env = FSDP2 if sharding == "fsdp2" else {}
    model = save_tiny_llama(tmp_path / "llama")
    text = tmp_path / "text.txt"
    text.write_text(" ".join(["great film bad plot"] * 400))
    every = ["--set", "train.checkpoint_every=2", "--set", "evaluate.methods=awn"]
    straight = _convert(model, text, tmp_path / "straight", _launcher(), env, *every)
    assert straight.returncode == 0, straight.stderr[-3000:]
    stopper = [*_launcher(), str(TESTS / "convert_stop_script.py")]
    stopped = _convert(model, text, tmp_path / "run", stopper, env, *every)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    shards = tmp_path / "run" / "checkpoints" / "awn" / "step-2"
    assert shards.is_dir() and not (tmp_path / "run" / "width-0.5").exists()  # in OUT, from every process
    state = json.loads((shards / "trainer_state.json").read_text())
    assert state["step"] == 2
    (shards / "trainer_state.json").write_text(json.dumps({**state, "seconds": 9999.0}))  # seen only if read
    resumed = _convert(model, text, tmp_path / "run", _launcher(), env, *every, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not (tmp_path / "run" / "checkpoints").exists()  # the exports hold everything now
    assert json.loads((tmp_path / "run" / "report.json").read_text())["costs"]["awn"]["finetune_s"] > 9999
    for export in ("width-0.5", "nested"):
        ours, theirs = (load_file(str(tmp_path / run / export / "model.safetensors")) for run in ("run", "straight"))
        for key in ours:
            torch.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-5, msg=key)


def test_plan_under_torchrun_prints_one_plan_and_writes_nothing(tmp_path):
    model = save_tiny_llama(tmp_path / "llama")
    text = tmp_path / "text.txt"
    text.write_text(" ".join(["great film bad plot"] * 400))
    args = ["-m", "awncompress", "convert", str(model), "--task", "causal-lm", "--data", str(text), "--plan"]
    args += ["--widths", "0.5", "--steps", "2", "--out", str(tmp_path / "out"), "--set", "evaluate.methods=awn,wina"]
    run = subprocess.run(
        [*_launcher(), *args], env=dict(os.environ, OMP_NUM_THREADS="1", **FSDP2), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("plan (from a") == 1 and "awn fine-tune" in run.stdout
    assert not (tmp_path / "out").exists()


def test_a_resume_the_main_process_refuses_stops_every_process_at_once(tmp_path):
    model = save_tiny_llama(tmp_path / "llama")
    text = tmp_path / "text.txt"
    text.write_text(" ".join(["great film bad plot"] * 400))
    run = _convert(model, text, tmp_path / "nothing", _launcher(), FSDP2, "--resume")
    # before, the second process waited in the recipe's broadcast, deaf to SIGTERM, until torchrun killed it
    assert "Unable to shutdown process" not in run.stderr
    assert run.returncode != 0 and not (tmp_path / "nothing").exists()
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: nothing to resume in {tmp_path / 'nothing'}: it has no checkpoints/ folder"]
