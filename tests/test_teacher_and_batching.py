"""Cached teacher logits and length-grouped batches: the two fine-tune speed-ups change no result
they should not change."""

from __future__ import annotations

import pytest
import torch
from conftest import collate, make_batches, toy_data
from zoo import make_model

from awncompress import AWNConfig, convert_
from awncompress.train.batching import IndexStream
from awncompress.train.finetune import PriorConfig, TrainConfig, TrainingError, examples_seen, finetune
from awncompress.train.teacher import CachedTeacher, distillation_teacher

PRIOR = PriorConfig(rate_prior_mean=4.6, rate_prior_std=1.0, weight_prior_std=1.0)


def _lengths(n: int, seed: int = 0) -> list[int]:
    return torch.randint(3, 60, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def test_grouped_epochs_are_permutations_of_short_spread_batches():
    n, batch = 1000, 16
    lengths = _lengths(n)
    grouped, plain = IndexStream(n, 3, lengths, batch), IndexStream(n, 3)
    for epoch in range(2):
        order = [grouped[epoch * n + p] for p in range(n)]
        assert sorted(order) == list(range(n))  # every example once per epoch

    def padded(stream: IndexStream) -> float:
        order = [stream[p] for p in range(n)]
        return sum(max(lengths[i] for i in order[s : s + batch]) * batch for s in range(0, n, batch)) / n

    # plain shuffling pads to near the maximum; grouping keeps batches close to their own lengths
    assert padded(grouped) < 0.6 * padded(plain)
    assert padded(grouped) < 1.1 * sum(lengths) / n
    # the batch order is shuffled, not a long-to-short sweep through each mega-batch
    firsts = [max(lengths[grouped[p]] for p in range(s, s + batch)) for s in range(0, 160, batch)]
    assert firsts != sorted(firsts, reverse=True)


def test_grouping_is_seeded_and_a_no_op_for_equal_lengths():
    n = 200
    a, b, c = (IndexStream(n, s, _lengths(n), 8) for s in (1, 1, 2))
    assert [a[p] for p in range(n)] == [b[p] for p in range(n)]
    assert [a[p] for p in range(n)] != [c[p] for p in range(n)]
    equal, plain = IndexStream(n, 5, [64] * n, 8), IndexStream(n, 5)
    assert [equal[p] for p in range(2 * n)] == [plain[p] for p in range(2 * n)]


def test_cached_teacher_holds_each_examples_logits():
    teacher = make_model("bert", seed=1).eval()
    data = toy_data(40)
    cached = CachedTeacher.compute(teacher, data, collate, batch_size=16, quiet=True)
    assert len(cached) == 40
    picks = [7, 0, 39, 7]
    with torch.no_grad():
        direct = torch.cat(
            [teacher(**{k: v for k, v in collate([data[i]]).items() if k != "labels"}).logits for i in picks]
        )
    torch.testing.assert_close(cached(picks), direct, atol=1e-5, rtol=1e-5)


def test_cached_teacher_trains_like_the_live_teacher():
    teacher = make_model("bert", seed=1).eval()
    data = toy_data()
    cfg = TrainConfig(steps=6, batch_size=8, lr=1e-3, rate_lr=0.1, checkpoint_every=0, kd_weight=0.7)
    runs = []
    for kd in (teacher, CachedTeacher.compute(teacher, data, collate, quiet=True)):
        model = make_model("bert")
        convert_(model, AWNConfig(), calibration=make_batches())

        def flat():
            return torch.cat([p.detach().flatten() for p in model.parameters()])

        start = flat()
        result = finetune(model, data, collate, cfg, num_examples=len(data), prior=PRIOR, teacher=kd, quiet=True)
        runs.append((result.losses, flat()))
    # same losses step by step; the weights moved the same way (Adam magnifies 1e-7 logit noise in
    # near-zero gradients, so the check is on the update as a whole, not element by element)
    assert runs[0][0] == pytest.approx(runs[1][0], abs=1e-5)
    update = runs[0][1] - start
    assert update.norm() > 0.1
    assert (runs[1][1] - runs[0][1]).norm() < 1e-3 * update.norm()


def test_a_table_of_only_the_drawn_examples_trains_like_the_full_one_and_refuses_more_steps():
    teacher = make_model("bert", seed=1).eval()
    data = toy_data()  # 48 examples; 3 steps of 8 draw 24 of them
    cfg = TrainConfig(steps=3, batch_size=8, lr=1e-3, rate_lr=0.1, checkpoint_every=0, kd_weight=0.7)
    seen = examples_seen(data, cfg, seed=4)
    assert (
        len(seen) == 24
        and len(set(seen)) == 24
        and examples_seen(data, cfg.model_copy(update={"steps": 6}), 4) == list(range(48))
    )
    partial = CachedTeacher.compute(teacher, data, collate, quiet=True, examples=seen)
    full = CachedTeacher.compute(teacher, data, collate, quiet=True)
    torch.testing.assert_close(partial(seen), full(seen))
    losses = []
    for kd in (full, partial):
        model = make_model("bert")
        convert_(model, AWNConfig(), calibration=make_batches())
        losses.append(
            finetune(
                model, data, collate, cfg, num_examples=len(data), prior=PRIOR, teacher=kd, seed=4, quiet=True
            ).losses
        )
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    with pytest.raises(
        TrainingError, match="no logits for training examples"
    ):  # a longer run draws examples the table lacks
        finetune(
            make_model("bert"),
            data,
            collate,
            cfg.model_copy(update={"steps": 6}),
            num_examples=len(data),
            teacher=partial,
            seed=4,
            quiet=True,
        )


def test_cached_teacher_of_another_training_set_is_refused():
    teacher = make_model("bert", seed=1)
    cached = CachedTeacher.compute(teacher, toy_data(20), collate, quiet=True)
    model = make_model("bert")
    with pytest.raises(TrainingError, match="cached teacher holds 20 examples but the training set has 48"):
        finetune(
            model,
            toy_data(),
            collate,
            TrainConfig(steps=1, batch_size=8, checkpoint_every=0),
            num_examples=48,
            teacher=cached,
            quiet=True,
        )


def test_language_model_teachers_stay_models():
    teacher = make_model("gpt2")
    assert distillation_teacher(teacher, "causal-lm", toy_data(8), collate, quiet=True) is teacher
    classifier, data = make_model("bert"), toy_data(8)
    cached = distillation_teacher(classifier, "text-classification", data, collate, quiet=True)
    assert isinstance(cached, CachedTeacher) and len(cached) == 8  # a classifier becomes its logit table
    with torch.no_grad():
        direct = classifier(**{k: v for k, v in collate([data[5]]).items() if k != "labels"}).logits
    torch.testing.assert_close(cached([5]), direct, atol=1e-5, rtol=1e-5)


def test_batch_per_width_gives_each_width_pass_its_own_batch_and_the_table_covers_them():
    data = toy_data()  # 48 examples
    cfg = TrainConfig(
        steps=2,
        batch_size=8,
        lr=1e-3,
        rate_lr=0.1,
        checkpoint_every=0,
        kd_weight=0.7,
        full_width_pass=False,
        sample_from=[0.5],
        extra_widths=[0.25],
    )
    passes = {}
    for per_width in (False, True):
        model = make_model("bert")
        convert_(model, AWNConfig(), calibration=make_batches())
        seen: list = []
        model.register_forward_pre_hook(
            lambda m, args, kwargs: seen.append(kwargs["input_ids"].clone()) if m.training else None, with_kwargs=True
        )  # training passes, not the narrowing check
        step_cfg = cfg.model_copy(update={"batch_per_width": per_width})
        table = examples_seen(data, step_cfg, seed=4)
        teacher = CachedTeacher.compute(make_model("bert", seed=1).eval(), data, collate, quiet=True, examples=table)
        finetune(
            model, data, collate, step_cfg, num_examples=len(data), prior=PRIOR, teacher=teacher, seed=4, quiet=True
        )
        assert len(table) == 8 * 2 * (2 if per_width else 1)
        passes[per_width] = seen
    shared, own = passes[False], passes[True]
    assert len(shared) == len(own) == 4  # 2 steps × 2 width passes
    assert torch.equal(shared[0], shared[1]) and torch.equal(shared[2], shared[3])
    assert not torch.equal(own[0], own[1]) and not torch.equal(own[2], own[3])
    assert torch.equal(own[0], shared[0])  # the first pass of step 0 draws what it always drew
