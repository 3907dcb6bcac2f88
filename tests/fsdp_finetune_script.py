"""Run by tests/test_sharding.py: the AWN fine-tune of a tiny Llama on windows of one length, alone
or on 2 CPU processes under torchrun with FSDP2 asked for the way `accelerate launch` asks."""

import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import collate, make_batches  # noqa: E402
from zoo import make_model  # noqa: E402

from awncompress import AWNConfig, convert_  # noqa: E402
from awncompress.train.finetune import PriorConfig, TrainConfig, finetune  # noqa: E402

CONFIG = TrainConfig(steps=4, batch_size=8, lr=1e-3, rate_lr=0.1, kd_weight=0.5, checkpoint_every=0)


def windows(n: int = 48, length: int = 10) -> list[dict]:
    """Causal-LM windows of one length, as the recipes cut text (every process then weighs tokens alike)."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        ids = torch.randint(2, 64, (length,), generator=g).tolist()
        out.append({"input_ids": ids, "attention_mask": [1] * length, "labels": list(ids)})
    return out


def train(out: str, tag: str, precision: str = "no", checkpoints: str = "") -> None:
    """Fine-tune the converted tiny Llama (``precision``: train.mixed_precision); write its state and
    losses as OUT/<tag>.*. ``checkpoints`` "stop": checkpoint every 2 steps into OUT/ckpt and stop
    (every process) once step 2's has landed; "resume": resume from there."""
    model = make_model("llama")
    teacher = make_model("llama", seed=1)  # a live KD teacher (sharded too under FSDP2)
    convert_(model, AWNConfig(), calibration=make_batches(vocab=64))
    data = windows()
    prior = PriorConfig(4.6, 1.0, 1.0)
    cfg = CONFIG.model_copy(update={"mixed_precision": precision, "checkpoint_every": 2 if checkpoints else 0})
    if checkpoints == "stop":
        import awncompress.train.finetune as ft

        real = ft.save_sharded

        def save_then_stop(*args, **kwargs):
            real(*args, **kwargs)
            os._exit(0)  # killed right after the step-2 checkpoint landed on every process

        ft.save_sharded = save_then_stop
    result = finetune(
        model,
        data,
        collate,
        cfg,
        num_examples=len(data),
        prior=prior,
        teacher=teacher,
        quiet=True,
        checkpoint_dir=Path(out) / "ckpt" if checkpoints else None,
        resume=checkpoints == "resume",
    )
    assert all(type(p) is torch.nn.Parameter for p in model.parameters())  # the caller's model, whole again
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, f"{tag}.safetensors"))
    with open(os.path.join(out, f"{tag}.json"), "w") as f:
        json.dump(result.losses, f)


if __name__ == "__main__":
    mode = sys.argv[3] if len(sys.argv) > 3 else ""
    train(sys.argv[1], f"rank{os.environ['RANK']}{mode}", sys.argv[2] if len(sys.argv) > 2 else "no", mode)
