"""Issue 30: what a training forward of an AWN model keeps for its backward, against the plan's
activation term (``memory.activation_bytes``: 16 × hidden + 4 × d_ff floats a token and layer).

    python bench/activation_bytes.py [--models minilm smollm2 gemma3 mpnet] [--batch 4] [--seq 64]

Each builtin model is wrapped (``convert_``, magnitude order: the order does not change the shapes)
and run forward once in training mode on random tokens with its own loss. Every tensor autograd saves
is recorded (``torch.autograd.graph.saved_tensors_hooks``), counted once per storage and not at all
when it is a parameter. For a causal LM one vocabulary-sized copy is the loss's log-softmax, which the
plan counts in its logits term; it is taken out before dividing by tokens × layers.
"""

from __future__ import annotations

import torch
from harness import make_parser

from awncompress import AWNConfig, convert_
from awncompress.data import assets
from awncompress.model.families import find_ffns
from awncompress.run.memory import activation_bytes, hidden_size

PATHS = {
    "minilm": assets.minilm_path,
    "smollm2": assets.smollm2_path,
    "gemma3": assets.gemma3_path,
    "mpnet": assets.mpnet_path,
}
LMS = ("smollm2", "gemma3")


def saved_bytes(model: torch.nn.Module, batch: dict) -> int:
    """Bytes of the distinct non-parameter storages one forward saves for its backward."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(**batch)
    return sum(seen.values())


def measure(name: str, b: int, seq: int) -> str:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    lm = name in LMS
    path = PATHS[name]()
    model = (
        AutoModelForCausalLM.from_pretrained(path)
        if lm
        else AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    )
    convert_(model, AWNConfig(scorer="magnitude"))
    model.train()
    ids = torch.randint(5, 1000, (b, seq), generator=torch.Generator().manual_seed(0))
    labels = ids if lm else torch.zeros(b, dtype=torch.long)
    blocks = find_ffns(model)
    h, d_ff, layers, tokens = hidden_size(model.config), blocks[0].base_width, len(blocks), b * seq
    total = saved_bytes(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    logits = tokens * model.config.vocab_size * 4 if lm else 0
    per = (total - logits) / (tokens * layers * 4)
    planned = activation_bytes(layers, h, d_ff, tokens, 4) / (tokens * layers * 4)
    return (
        f"| {name} | {h} | {d_ff} | {layers} | {b} × {seq} | {total / 2**20:.0f} | {per:,.0f} | "
        f"{per / h:.1f} h | {planned:,.0f} | {planned / per:.2f} |"
    )


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--models", nargs="+", default=["minilm", "smollm2", "gemma3"], choices=sorted(PATHS))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=64)
    args = parser.parse_args()
    columns = ("model", "hidden", "d_ff", "layers", "tokens", "saved MiB", "floats a token-layer", "", "planned")
    print("| " + " | ".join((*columns, "planned / saved")) + " |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        print(measure(name, args.batch, args.seq), flush=True)


if __name__ == "__main__":
    main()
