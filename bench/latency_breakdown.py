"""Where the CPU forward time goes at each FFN width, and whether rounding widths helps.

    python bench/latency_breakdown.py OUT/nested [--widths 0.125 0.25 0.5 0.75 1.0] [--batch 8 --seq 64]

For each width (and the same width rounded to a multiple of 64) it loads the width from the nested
checkpoint and times the forward pass. Timings on a shared machine drift by tens of per cent over
seconds, so the widths are timed round-robin (awncompress.evaluate.latency.time_round_robin, as reports are:
--repeats passes each, one per round) and each width's latency is the median of its passes. With torch.profiler it then
splits CPU self time into FFN matmuls, other matmuls (attention projections, classifier),
attention (softmax / SDPA), norms + activations, embeddings and the rest. The FLOPs ratio is
analytic (awncompress.model.flops) at the same sequence length.
"""

from __future__ import annotations

from pathlib import Path

import torch
from harness import make_parser, parse
from torch.profiler import ProfilerActivity, profile, record_function

from awncompress import find_ffns, load_pretrained
from awncompress.evaluate.latency import LatencyConfig, time_round_robin
from awncompress.model.flops import count_flops
from awncompress.model.surgery import width_from_fraction

CATEGORIES = ("ffn matmul", "other matmul", "attention", "norm+activation", "embedding", "other")


def _ffn_hooks(model):
    """Mark FFN up/gate/down calls so their matmuls can be told from the others."""
    handles = []
    for block in find_ffns(model):
        for module in (block.up, block.gate, block.down):
            if module is None:
                continue
            ctx = {}
            handles.append(
                module.register_forward_pre_hook(
                    lambda m, a, ctx=ctx: ctx.__setitem__("r", record_function("FFN").__enter__())
                )
            )
            handles.append(
                module.register_forward_hook(lambda m, a, o, ctx=ctx: ctx.pop("r").__exit__(None, None, None))
            )
    return handles


def _breakdown(model, inputs) -> dict[str, float]:
    handles = _ffn_hooks(model)
    try:
        with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(5):
                model(**inputs)
    finally:
        for h in handles:
            h.remove()
    totals = dict.fromkeys(CATEGORIES, 0.0)
    ffn_us = sum(e.cpu_time_total for e in prof.key_averages() if e.key == "FFN")
    matmul_us = sum(
        e.self_cpu_time_total
        for e in prof.key_averages()
        if e.key in ("aten::addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::linear")
    )
    totals["ffn matmul"] = min(ffn_us, matmul_us)  # FFN modules are a linear (+ bias) each
    totals["other matmul"] = matmul_us - totals["ffn matmul"]
    for e in prof.key_averages():
        k = e.key
        if k in (
            "aten::_scaled_dot_product_flash_attention_for_cpu",
            "aten::softmax",
            "aten::_softmax",
            "aten::baddbmm",
        ):
            totals["attention"] += e.self_cpu_time_total
        elif k in (
            "aten::layer_norm",
            "aten::native_layer_norm",
            "aten::gelu",
            "aten::silu",
            "aten::tanh",
            "aten::mul",
            "aten::add",
            "aten::rsqrt",
            "aten::pow",
            "aten::mean",
        ):
            totals["norm+activation"] += e.self_cpu_time_total
        elif k in ("aten::embedding", "aten::index_select"):
            totals["embedding"] += e.self_cpu_time_total
    total = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key not in ("FFN",))
    totals["other"] = max(0.0, total - sum(totals.values()))
    return {k: v / total for k, v in totals.items()}


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("nested", type=Path)
    parser.add_argument("--widths", type=float, nargs="+", default=[0.125, 0.25, 0.375, 0.5, 0.75, 1.0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=100)
    args = parse(parser)
    torch.manual_seed(0)
    dense = load_pretrained(args.nested)
    d_ff = max(b.width for b in find_ffns(dense))
    inputs = {
        "input_ids": torch.randint(1000, 2000, (args.batch, args.seq)),
        "attention_mask": torch.ones(args.batch, args.seq, dtype=torch.long),
    }
    variants = []
    for w in args.widths:
        for multiple in (None, 64):
            neurons = width_from_fraction(w, d_ff, multiple)
            if multiple and neurons == width_from_fraction(w, d_ff):
                continue  # already a multiple of 64
            variants.append(
                (f"{w:g}{' (×64)' if multiple else ''}", neurons, load_pretrained(args.nested, width=neurons))
            )
    models = {"dense": dense, **{label: model for label, _, model in variants}}
    timed = time_round_robin(
        models, LatencyConfig(batch_size=args.batch, seq_len=args.seq, warmup=3, repeats=args.repeats)
    )
    dense_ms, dense_flops = timed["dense"]["median_ms"], count_flops(dense, args.seq)
    print(
        f"dense: {dense_ms:.1f} ms (batch {args.batch} × {args.seq} tokens), "
        f"FFN share of FLOPs {dense_flops.ffn_share:.1%}"
    )
    print("| width | neurons | FLOPs ratio | latency ratio | " + " | ".join(CATEGORIES) + " |")
    print("|---|---|---|---|" + "---|" * len(CATEGORIES))
    for label, neurons, model in variants:
        ms = timed[label]["median_ms"]
        shares = _breakdown(model, inputs)
        ratio = count_flops(model, args.seq).total / dense_flops.total
        print(
            f"| {label} | {neurons} | {ratio:.3f} | {ms / dense_ms:.3f} | "
            + " | ".join(f"{shares[c]:.0%}" for c in CATEGORIES)
            + " |"
        )


if __name__ == "__main__":
    main()
