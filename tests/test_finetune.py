"""The brief fine-tune: it learns, moves λ, resumes exactly, and runs on 2 processes (gloo)."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import collate, free_port, make_batches, toy_data
from safetensors.torch import load_file
from zoo import make_model

from awncompress import AWNConfig, adaptive_modules, convert_
from awncompress.train.finetune import (
    PriorConfig,
    TrainConfig,
    TrainingError,
    distillation_loss,
    finetune,
    latest_checkpoint,
)

PRIOR = PriorConfig(rate_prior_mean=4.6, rate_prior_std=1.0, weight_prior_std=1.0)


def _converted():
    model = make_model("bert")
    convert_(model, AWNConfig(), calibration=make_batches())
    return model


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=6, batch_size=8, lr=1e-3, rate_lr=0.1, checkpoint_every=0)
    base.update(kw)
    return TrainConfig(**base)


def test_stochastic_finetune_learns_and_moves_rates():
    model = _converted()
    data = toy_data()
    rates = [float(w.normalised_rate().detach()) for w in adaptive_modules(model)]
    result = finetune(model, data, collate, _cfg(steps=20), num_examples=len(data), prior=PRIOR, quiet=True)
    assert result.steps == 20 and len(result.losses) == 20
    assert sum(result.losses[-5:]) < sum(result.losses[:5])
    moved = [abs(float(w.normalised_rate().detach()) - r) for w, r in zip(adaptive_modules(model), rates)]
    assert min(moved) > 0.05  # the normalised rate travels within a brief fine-tune
    assert all(w.truncate_to is None for w in adaptive_modules(model))


def test_kd_from_a_teacher_pulls_the_student_towards_it():
    teacher = make_model("bert", seed=1)
    data = toy_data()
    student = _converted()

    def gap():
        return sum(
            distillation_loss(
                student(**collate(data[i : i + 8])).logits, teacher(**collate(data[i : i + 8])).logits, 2.0
            )
            for i in range(0, 48, 8)
        )

    with torch.no_grad():
        before = gap()
    finetune(
        student, data, collate, _cfg(steps=15, kd_weight=1.0), num_examples=48, prior=PRIOR, teacher=teacher, quiet=True
    )
    with torch.no_grad():
        assert gap() < before


def test_resume_gives_the_uninterrupted_result(tmp_path, monkeypatch):
    data = toy_data()
    straight = _converted()
    finetune(straight, data, collate, _cfg(), num_examples=48, prior=PRIOR, quiet=True)

    import awncompress.train.finetune as ft

    real_save = ft.save_checkpoint

    def save_then_die(folder, model, optimizer, state):
        real_save(folder, model, optimizer, state)
        raise KeyboardInterrupt  # killed right after the step-3 checkpoint landed

    monkeypatch.setattr(ft, "save_checkpoint", save_then_die)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        finetune(
            _converted(),
            data,
            collate,
            _cfg(checkpoint_every=3),
            num_examples=48,
            prior=PRIOR,
            checkpoint_dir=ckpt,
            quiet=True,
        )
    monkeypatch.setattr(ft, "save_checkpoint", real_save)
    assert latest_checkpoint(ckpt).name == "step-3"
    assert sorted(p.name for p in ckpt.iterdir()) == ["step-3"]  # no half-written checkpoint folder

    resumed = _converted()
    result = finetune(
        resumed,
        data,
        collate,
        _cfg(checkpoint_every=3),
        num_examples=48,
        prior=PRIOR,
        checkpoint_dir=ckpt,
        resume=True,
        quiet=True,
    )
    assert result.steps == 6 and latest_checkpoint(ckpt).name == "step-6"
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_deterministic_mode_and_time_budget():
    model = _converted()
    result = finetune(
        model,
        toy_data(),
        collate,
        _cfg(mode="deterministic", steps=1000, max_seconds=0.5),
        num_examples=48,
        prior=PRIOR,
        quiet=True,
    )
    assert result.stopped_early and 0 < result.steps < 1000


def test_batch_must_split_over_accumulation():
    with pytest.raises(TrainingError, match="multiple of grad_accum"):
        finetune(
            _converted(),
            toy_data(),
            collate,
            _cfg(batch_size=6, grad_accum=4),
            num_examples=48,
            prior=PRIOR,
            quiet=True,
        )


def test_two_cpu_processes_with_gloo(tmp_path):
    tests = Path(__file__).parent
    env = dict(os.environ, PYTHONPATH=f"{tests}{os.pathsep}{tests.parent}", OMP_NUM_THREADS="1")
    # `accelerate launch --cpu` always starts one process; torchrun is what starts several on CPU.
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        str(tests / "ddp_finetune_script.py"),
        str(tmp_path),
        str(tests),
    ]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rank0, rank1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    assert all(torch.allclose(rank0[k], rank1[k]) for k in rank0)  # gradients were averaged across ranks
    fresh = _converted().state_dict()
    assert any(not torch.allclose(rank0[k], fresh[k]) for k in rank0)  # and training changed the weights


def test_extra_widths_are_trained_every_step():
    model = _converted()
    seen: list = []
    wrapper = adaptive_modules(model)[0]
    wrapper.register_forward_pre_hook(
        lambda m, args: seen.append(m.truncate_to) if m.training else None
    )  # not the narrowing check
    finetune(model, toy_data(), collate, _cfg(steps=3, extra_widths=[0.25]), num_examples=48, prior=PRIOR, quiet=True)
    # per step: the full width, one width sampled from the profile, then the sandwich width (16 of 64)
    assert len(seen) == 9 and seen[0::3] == [None] * 3 and seen[2::3] == [16] * 3
    assert all(1 <= w <= 64 for w in seen[1::3])


def test_a_diverging_fine_tune_stops_with_one_line(monkeypatch):
    import awncompress.train.finetune as ft

    monkeypatch.setattr(ft, "distillation_loss", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    teacher = make_model("bert")
    with pytest.raises(TrainingError, match="diverged"):
        finetune(
            _converted(), toy_data(), collate, _cfg(steps=3), num_examples=48, prior=PRIOR, teacher=teacher, quiet=True
        )


def test_sampled_widths_can_come_from_the_export_widths():
    model = _converted()
    seen: list = []
    adaptive_modules(model)[0].register_forward_pre_hook(
        lambda m, args: seen.append(m.truncate_to) if m.training else None
    )  # not the narrowing check
    finetune(
        model,
        toy_data(),
        collate,
        _cfg(steps=6, full_width_pass=False, sample_from=[0.25, 0.5]),
        num_examples=48,
        prior=PRIOR,
        quiet=True,
    )
    assert set(seen) == {16, 32} and len(seen) == 6


def test_layer_wise_distillation_uses_a_live_teacher_and_pulls_hidden_states_together():
    from awncompress.train.losses import hidden_loss
    from awncompress.train.teacher import distillation_teacher

    teacher = make_model("bert")
    model = copy.deepcopy(teacher)
    batch = make_batches()[0]
    with torch.no_grad():
        t = teacher(**batch, output_hidden_states=True).hidden_states
        s = model(**batch, output_hidden_states=True).hidden_states
    assert float(hidden_loss(s, t, batch["attention_mask"])) == 0.0
    # Every hidden state shifted by 0.1: |h_s − h_t|² = 0.01 × hidden per token, over |h_t|², the
    # embeddings (hidden_states[0]) left out, averaged over the tokens, then over the layers.
    expected = torch.stack([(0.01 * h.shape[-1] / h.pow(2).sum(-1)).mean() for h in t[1:]]).mean()
    assert float(hidden_loss(tuple(x + 0.1 for x in s), t)) == pytest.approx(float(expected), rel=1e-4)
    assert distillation_teacher(teacher, "text-classification", toy_data(), collate, hidden=True) is teacher
    convert_(model, AWNConfig(), calibration=make_batches())
    result = finetune(
        model,
        toy_data(),
        collate,
        _cfg(steps=4, kd_hidden_weight=1.0),
        num_examples=48,
        prior=PRIOR,
        teacher=teacher,
        quiet=True,
    )
    assert result.steps == 4 and all(math.isfinite(x) for x in result.losses)


def test_activation_checkpointing_recomputes_and_trains_the_same_weights():
    plain, checkpointed = _converted(), _converted()
    layer = checkpointed.bert.encoder.layer[0].intermediate
    calls = []
    layer.register_forward_hook(lambda module, *_: calls.append(1) if module.training else None)
    for model, on in ((plain, False), (checkpointed, True)):
        finetune(model, toy_data(), collate, _cfg(steps=3, activation_checkpointing=on), num_examples=48, prior=PRIOR,
                 seed=0, quiet=True)  # fmt: skip
    # Every training forward of the layer ran twice (the recompute in the backward), the weights are the same.
    passes = 3 * 2  # steps × width passes (the sampled width and the full width)
    assert len(calls) == 2 * passes
    for (name, a), b in zip(plain.state_dict().items(), checkpointed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert not checkpointed.is_gradient_checkpointing  # off again for evaluation and export


def test_a_model_without_activation_checkpointing_is_refused_in_one_line():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(TrainingError, match="Sequential does not support activation checkpointing"):
        finetune(model, toy_data(), collate, _cfg(activation_checkpointing=True), num_examples=48, quiet=True)


def _lm_windows(n: int = 24, length: int = 10) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    ids = [torch.randint(2, 64, (length,), generator=g).tolist() for _ in range(n)]
    return [{"input_ids": x, "attention_mask": [1] * length, "labels": list(x)} for x in ids]


@pytest.mark.parametrize("family", ["bert", "llama", "llama-tied"])
def test_frozen_embeddings_stay_put_and_the_ffns_still_train(family):
    model = make_model(family.removesuffix("-tied"))
    if family == "llama-tied":
        model.config.tie_word_embeddings = True
        model.tie_weights()
        assert model.lm_head.weight is model.model.embed_tokens.weight
    convert_(model, AWNConfig(), calibration=make_batches(vocab=64))
    data = toy_data() if family == "bert" else _lm_windows()
    vocab = [model.get_input_embeddings().weight, model.get_output_embeddings()]
    vocab = [p for p in (vocab[0], getattr(vocab[1], "weight", None)) if p is not None]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    finetune(model, data, collate, _cfg(steps=3, freeze_embeddings=True), num_examples=len(data), prior=PRIOR,
             quiet=True)  # fmt: skip
    after = model.state_dict()
    frozen = {n for n, p in model.named_parameters(remove_duplicate=False) if any(p is v for v in vocab)}
    assert len(frozen) == (1 if family == "bert" else 2)
    for name in frozen:
        assert torch.equal(before[name], after[name]), name
    ffn = [k for k in before if "intermediate.dense.weight" in k or "mlp.up_proj.weight" in k]
    assert ffn and not any(torch.equal(before[k], after[k]) for k in ffn)
