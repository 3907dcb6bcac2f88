"""Issue 30: memory per device and hours of the AWN fine-tune under FSDP2 for Llama-family models on
1, 8 and 64 × 80 GB, from their configs alone (``run/device_plan.py``; estimated, not measured).

    python bench/device_plans.py [--out bench/results/device-plans.md] [--seq 2048 --batch 64 --steps 500]

The configs are written here (the public config.json values of Llama 3.2 1B, Llama 3.1 8B, Qwen2.5 32B
and Llama 3.1 70B), so nothing is downloaded. The recipe: causal LM, bf16, live KD teacher (the
smollm2 recipe's loss), three width passes a step, ``--batch`` sequences of ``--seq`` tokens, ``--steps``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import transformers
from harness import make_parser

from awncompress.config import apply_overrides, load_recipe
from awncompress.errors import AwnError
from awncompress.run.device_plan import (
    ConfigShape,
    Setup,
    device_memory,
    fit_micro,
    meta_model,
    step_seconds,
    with_checkpointing,
)
from awncompress.run.memory import GIB

LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "max_position_embeddings": 131072}
CONFIGS = {
    "Llama-3.2-1B": {**LLAMA, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256,
                     "tie_word_embeddings": True},
    "Llama-3.1-8B": {**LLAMA, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
                     "tie_word_embeddings": False},
    "Qwen2.5-32B": {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 5120,
                    "intermediate_size": 27648, "num_hidden_layers": 64, "num_attention_heads": 40,
                    "num_key_value_heads": 8, "vocab_size": 152064, "max_position_embeddings": 32768,
                    "tie_word_embeddings": False},
    "Llama-3.1-70B": {**LLAMA, "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
                      "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 128256,
                      "tie_word_embeddings": False},
}  # fmt: skip
DEVICES = (1, 8, 64)
DEVICE_BYTES = 80 * 10**9


def row(name: str, shape: ConfigShape, devices: int, seq: int, recipe) -> str:
    setup = Setup(devices, DEVICE_BYTES)
    recipe = with_checkpointing(shape, setup, seq, recipe)
    micro = fit_micro(shape, setup, seq, recipe)
    if micro is None:
        need = device_memory(shape, devices, 1, seq, recipe)
        return f"| {name} | {devices} | {need.total / GIB:.0f} (1 sequence) | does not fit | – | – |"
    mem = device_memory(shape, devices, micro, seq, recipe)
    parts = f"{mem.sharded_state / GIB:.0f} / {mem.gathered / GIB:.1f} / {mem.teacher / GIB:.0f} / "
    parts += f"{mem.activations / GIB:.0f} / {mem.logits / GIB:.0f}"
    step = step_seconds(shape, setup, seq, recipe)
    share = recipe.train.batch_size // devices
    hours = step * recipe.train.steps / 3600
    batch = f"{micro} × {share // micro}" + (" (AC)" if recipe.train.activation_checkpointing else "")
    return f"| {name} | {devices} | {mem.total / GIB:.0f} ({parts}) | {batch} | {step:.1f} | {hours:.1f} |"


def shape_of(tmp: Path, name: str, config: dict) -> ConfigShape:
    folder = tmp / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return ConfigShape.of(meta_model(transformers.AutoConfig.from_pretrained(folder), "causal-lm"))


# torchtitan's measured Llama 3.1 8B runs on 8 H100s (96 GB): pytorch/torchtitan,
# benchmarks/llama3_h100_202412_torchtitan.md, Tables 1 and 2 (bf16 compute, float32 master weights and
# Adam, sharded by FSDP2, no distillation teacher).
TORCHTITAN = [
    ("Table 2: 1 × 32,768 tokens, full AC, compile + Float8", 1, 32768, True, 83.9),
    ("Table 1: 2 × 8,192 tokens, selective AC", 2, 8192, True, 82.4),
]


def published(shape: ConfigShape) -> list[str]:
    """The plan for torchtitan's measured 8B runs, beside their peak memory (GiB per GPU)."""
    lines = [
        "Llama 3.1 8B on 8 × 96 GB, no teacher, bf16: the plan against torchtitan's measured peak "
        "(`benchmarks/llama3_h100_202412_torchtitan.md`)",
        "",
        "| torchtitan run | plan GiB per device (state / gathered / activations / logits) | measured GiB "
        "| plan / measured |",
        "|---|---|---|---|",
    ]
    for what, micro, seq, checkpointed, measured in TORCHTITAN:
        recipe = apply_overrides(
            load_recipe("smollm2"),
            {
                "train.batch_size": str(8 * micro),
                "train.kd_weight": "0",
                "train.mixed_precision": "bf16",
                "train.activation_checkpointing": str(checkpointed).lower(),
            },
        )
        mem = device_memory(shape, 8, micro, seq, recipe)
        terms = (mem.sharded_state, mem.gathered, mem.activations, mem.logits)
        parts = " / ".join(f"{t / GIB:.1f}" for t in terms)
        lines.append(f"| {what} | {mem.total / GIB:.1f} ({parts}) | {measured} | {mem.total / GIB / measured:.2f} |")
    return lines


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--out", type=Path, help="write the table here too")
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    recipe = apply_overrides(
        load_recipe("smollm2"),
        {"train.batch_size": str(args.batch), "train.steps": str(args.steps), "train.mixed_precision": "bf16"},
    )
    lines = [
        f"{args.batch} × {args.seq} tokens a step, {args.steps} steps, bf16, live KD teacher; GiB per device "
        "(sharded state / gathered / teacher / activations / logits); micro-batch × grad_accum; seconds a step "
        "and hours at 400 TFLOP/s achieved per device (estimated)",
        "",
        "| model | devices × 80 GB | GiB per device | micro × accum | s / step | hours |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        shapes = {name: shape_of(Path(tmp), name, config) for name, config in CONFIGS.items()}
    for name, shape in shapes.items():
        lines += [row(f"{name} ({shape.params / 1e9:.1f} B)", shape, d, args.seq, recipe) for d in DEVICES]
    lines += ["", *published(shapes["Llama-3.1-8B"])]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    try:
        main()
    except AwnError as exc:
        raise SystemExit(f"error: {exc}") from None
