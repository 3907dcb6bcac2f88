"""SmolLM2-135M with attention heads cut as well as FFN neurons, no training (issue 14's SmolLM2 check).

    python bench/smollm2_heads_static.py --out bench/results/smollm2_heads.json [--windows 40]

The `smollm2` recipe's data (Jane Austen, 64-token BOS-led windows, its evaluation split). The
model's neurons and KV groups are ordered by their WINA scores on calibration windows; then, for
each FLOP target, the uniform (FFN width, heads) pair ``pick_for_flops`` gives is exported with
``export_uniform(..., heads=)``, loaded back with plain ``AutoModelForCausalLM.from_pretrained`` and
scored, beside the FFN-only cut (all heads) with the same FLOPs. Static cuts: this checks the export
path and the trade-off an order alone gives on a GQA model, not what a fine-tune reaches.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import torch
import transformers as tf
from harness import make_parser, parse

from awncompress.checkpoint.export import export_uniform
from awncompress.config import load_recipe
from awncompress.config.settings import read_settings
from awncompress.data.tokenized import ExampleDataset, load_task_data
from awncompress.evaluate.measure import evaluate_model
from awncompress.model.flop_targets import pick_for_flops
from awncompress.model.flops import count_flops
from awncompress.model.head_cuts import order_heads_
from awncompress.model.heads import layer_heads
from awncompress.model.surgery import layer_widths, order_, truncate_
from awncompress.run.bundle import calibration_batches, load_model

TARGETS = (0.5, 0.6, 0.7, 0.8)


def _ffn_only_width(model: torch.nn.Module, target: float, seq_len: int) -> int:
    """The widest uniform FFN (all heads) within ``target`` of the dense FLOPs."""
    n, dense = len(layer_widths(model)), count_flops(model, seq_len).total
    lo, hi = 1, max(layer_widths(model))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (
            (mid, hi) if count_flops(model, seq_len, ffn_widths=[mid] * n).total <= target * dense else (lo, mid - 1)
        )
    return lo


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--windows", type=int, default=40, help="evaluation windows scored")
    args = parse(parser)
    recipe = load_recipe("smollm2")
    model, tokenizer, _ = load_model(recipe.model, recipe.task)
    data = load_task_data(read_settings(recipe).data, tokenizer)
    evals = ExampleDataset([data.eval[i] for i in range(min(args.windows, len(data.eval)))])
    seq_len = recipe.data.max_length
    score = lambda m: evaluate_model(m.eval(), evals, data.collate, "causal-lm", batch_size=8)  # noqa: E731
    batches = calibration_batches(data, 4, 8)
    order_(model, "wina", batches)
    order_heads_(model, "wina", batches)
    results = {"model": recipe.model, "windows": len(evals), "seq_len": seq_len, "dense": score(model), "points": []}
    print(f"dense perplexity {results['dense']:.2f}", flush=True)
    for target in TARGETS:
        pick = pick_for_flops(model, target, seq_len)
        with tempfile.TemporaryDirectory() as tmp:
            folder = export_uniform(model, Path(tmp) / "cut", pick.width, heads=pick.heads, tokenizer=tokenizer)
            vanilla = tf.AutoModelForCausalLM.from_pretrained(folder)  # plain transformers, no awncompress loader
            heads_ppl = score(vanilla)
            config = json.loads((folder / "config.json").read_text())
        ffn_only = copy.deepcopy(model)
        width = _ffn_only_width(model, target, seq_len)
        truncate_(ffn_only, width)
        point = {
            "target": target,
            "heads": {
                "width": pick.width,
                "heads": layer_heads(vanilla)[0],
                "flops_ratio": round(pick.flops_ratio, 4),
                "config_heads": [config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]],
                "perplexity": heads_ppl,
            },
            "ffn_only": {
                "width": width,
                "flops_ratio": round(count_flops(ffn_only, seq_len).total / count_flops(model, seq_len).total, 4),
                "perplexity": score(ffn_only),
            },
        }
        results["points"].append(point)
        print(json.dumps(point), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
