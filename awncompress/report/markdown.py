"""report.md: the headline, the dense row, the tables by width and by FLOP target, and the learned profile."""

from __future__ import annotations

from typing import Optional

from . import record as R


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines + [""]


def _latency_fact(record: dict) -> str:
    device = record.get("device") or {}
    dev = device.get("name", "?") + (f", {device['threads']} threads" if device.get("threads") else "")
    lat = record.get("latency_config")
    if not lat:
        return dev + "; latency not measured"
    shapes = lat.get("shapes")
    how = (
        f"median of {lat['repeats']} passes timed round-robin over the {shapes} distinct model shapes (rows of one "
        f"shape share a timing)"
        if lat.get("schedule") == "round-robin"
        else f"median of {lat['repeats']} passes"
    )
    return dev + f"; latency: batch {lat['batch_size']} × {lat['seq_len']} tokens, {how}, after {lat['warmup']} warm-up"


def _md_head(record: dict, head: dict) -> list[str]:
    name, dense = R.metric_name(record), record["dense"]
    lines = [
        f"# awncompress report — {record.get('model')} on {record.get('task')}",
        "",
        f"**Headline.** {head['text']}",
        "",
        f"_Rule: {head['rule']}. Higher-is-better metrics are fractions in [0, 1], so 1 point = 0.01; "
        "lower-is-better metrics (perplexity) use 1 % relative._",
        "",
    ]
    flops = (
        ""
        if record.get("flops_source", "formula") == "formula"
        else " (counted with torch's FlopCounterMode: no formula for this family)"
    )
    facts = [
        ["model", f"{record.get('model')} ({record.get('architecture', '')})"],
        ["task / metric", f"{record.get('task')} / {name} ({'higher' if R.higher(record) else 'lower'} is better)"],
        ["data", str(record.get("data") or "—") + f" ({record.get('num_eval_examples', '?')} eval examples)"],
        [
            "dense",
            f"{name} {R.fmt_value(record, dense['value'])}{' %' if R.percent(record) else ''}, "
            f"{dense['flops']:,} FLOPs/example"
            f"{flops} (FFN share {dense['ffn_share']:.1%}), {dense['params']:,} parameters"
            + (f", {R.fmt_ms(dense.get('latency_ms'))} ms" if dense.get("latency_ms") is not None else ""),
        ],
        ["device", _latency_fact(record)],
        [
            "seed / versions",
            f"{record.get('seed')} / " + ", ".join(f"{k} {v}" for k, v in (record.get("versions") or {}).items()),
        ],
    ]
    if record.get("budget"):
        b = record["budget"]
        facts.append(
            [
                "budget",
                f"{b['minutes']:g} min: fine-tunes scaled to {b['train_steps']} steps (dense stage {b['dense_steps']})",
            ]
        )
    if record.get("perplexity"):
        p = record["perplexity"]
        facts.append(
            [
                "perplexity over",
                f"{p['windows']:,} non-overlapping windows of {p['window_tokens']} tokens of {p['text']}",
            ]
        )
    facts += [[f"derived {key}", why] for key, why in (record.get("derived") or {}).items() if key != "inputs"]
    return lines + _md_table(["", ""], facts)


def _md_by_flops(record: dict) -> list[str]:
    """FFN+heads points: one row per FLOP target, each method's value and the (FFN width, heads) it ran at."""
    methods, dense = R.flop_methods(record), record["dense"]
    if not methods:
        return []
    table = []
    for t in R.targets(record):
        rows = [R.target_row(record, m, t) for m in methods]
        shape = next((r for r in rows if r is not None), None)
        where = "—" if shape is None else f"{R.pct(shape['width_fraction'])} FFN, {R.fmt_width(shape['heads'])} heads"
        table.append(
            [R.fmt_ratio(t), R.fmt_ratio(shape.get("flops_ratio") if shape else None), where]
            + ["—" if r is None else R.fmt_value(record, r["value"]) for r in rows]
        )
    table.append(["dense", "1.000", "full"] + [R.fmt_value(record, dense["value"])] * len(methods))
    return [f"## {R.metric_label(record)} by FLOP target (FFN width and attention heads)", ""] + _md_table(
        ["FLOP target", "FLOPs ratio", "FFN width, heads"] + methods, table
    )


def _md_by_width(record: dict) -> list[str]:
    methods, dense = R.width_methods(record), record["dense"]
    lines = [f"## {R.metric_label(record)} by FFN width", ""]
    table = []
    for w in R.widths(record):
        static = [r for r in (R.row(record, m, w) for m in methods) if r is not None and not r.get("theoretical")]
        cells = []
        for m in methods:
            r = R.row(record, m, w)
            cells.append("—" if r is None else R.fmt_value(record, r["value"]) + ("*" if r.get("theoretical") else ""))
        table.append([R.pct(w), R.fmt_ratio(static[0].get("flops_ratio") if static else None)] + cells)
    table.append(["dense", "1.000"] + [R.fmt_value(record, dense["value"])] * len(methods))
    lines += _md_table(["width", "FLOPs ratio"] + methods, table)
    if any(r.get("theoretical") for r in record["rows"]):
        lines += [
            "\\* theoretical: a masked dense model (per-token top-k); FLOPs count active neurons only and no "
            "kernel skips the masked ones, so it is not timed (a masked dense model runs at dense speed).",
            "",
        ]
    return lines


def _md_rows(record: dict) -> list[str]:
    header = [
        "method",
        "width",
        "FFN size",
        R.metric_label(record),
        "FLOPs/example",
        "FLOPs ratio",
        "FFN share",
        "params",
        "latency ms (p10–p90)",
        "latency ratio",
        "checkpoint MB",
    ]
    table = []
    for r in record["rows"]:
        lat = (
            "—"
            if r.get("latency_ms") is None
            else (
                f"{R.fmt_ms(r['latency_ms'])} ({R.fmt_ms(r.get('latency_p10_ms'))}–{R.fmt_ms(r.get('latency_p90_ms'))})"
            )
        )
        mb = "—" if r.get("checkpoint_bytes") is None else f"{r['checkpoint_bytes'] / 1e6:.1f}"
        size = R.fmt_width(r["intermediate_size"]) + (
            f", {R.fmt_width(r['heads'])} heads" if R.on_flops_axis(r) else ""
        )
        table.append(
            [
                r["method"] + (" *" if r.get("theoretical") else ""),
                R.pct(r["width_fraction"]),
                size,
                R.fmt_value(record, r["value"]),
                f"{r['flops']:,}",
                R.fmt_ratio(r.get("flops_ratio")),
                f"{r['ffn_share']:.1%}",
                f"{r['params']:,}",
                lat,
                R.fmt_ratio(r.get("latency_ratio")),
                mb,
            ]
        )
    return ["## All rows", ""] + _md_table(header, table)


def _md_profile(profile: Optional[dict]) -> list[str]:
    if not profile:
        return []
    lines = [
        "## Learned profile (awn)",
        "",
        f"Per-layer active width = the k-quantile (k = {profile.get('k')}) of each layer's learned "
        f"profile; λ·d_ff is the normalised rate (d_ff = {profile.get('d_ff')}). Load these widths with "
        '`awncompress.load_pretrained(nested, width="learned")`.',
        "",
    ]
    grown = profile.get("grown_widths") or []
    if grown:
        layers = [f"{i} ({w})" for i, w in enumerate(grown) if w > (profile.get("d_ff") or w)]
        lines += [f"Layers that grew past d_ff (awn.grow), with their neurons: {', '.join(layers)}.", ""]
    rates = profile.get("normalised_rates") or []
    table = []
    for i, w in enumerate(profile["active_widths"]):
        rate = f"{rates[i]:.3f}" if i < len(rates) else "—"
        frac = profile["active_fractions"][i] if profile.get("active_fractions") else None
        table.append([str(i), str(w), "—" if frac is None else f"{frac:.1%}", rate])
    mean = sum(profile["active_widths"]) / max(1, len(profile["active_widths"]))
    table.append(
        [
            "mean",
            f"{mean:.0f}",
            f"{mean / profile['d_ff']:.1%}" if profile.get("d_ff") else "—",
            f"{sum(rates) / len(rates):.3f}" if rates else "—",
        ]
    )
    return lines + _md_table(["layer", "active width", "fraction of d_ff", "λ·d_ff"], table)


def speed_table(served: dict) -> list[str]:
    """The served exports' speed in their engines (a report's ``served`` entry, see
    evaluate/served_speed.py): each file's speed-up beside 1 / FLOP ratio and 1 / weight-byte ratio."""
    cfg = served.get("config") or {}
    engines = ", ".join(f"{k} {v}" for k, v in (cfg.get("runtimes") or {}).items())
    lines = [
        "## Speed where it is served",
        "",
        f"{engines}; {cfg.get('threads')} threads, median of {cfg.get('repeats')} runs after {cfg.get('warmup')} "
        "warm-up, files timed round-robin. Speed-up is against the full-width file of the same format and quant. "
        "`÷ ideal`: speed-up over 1 / FLOP ratio (latency, prompt) or over 1 / weight-byte ratio (generation); "
        "1.00 is a speed-up in proportion.",
        "",
    ]
    table = []
    for r in served["rows"]:
        ratio = r.get("bytes_ratio") if r["measure"].startswith("generate") else r.get("flops_ratio")
        speedup = r.get("speedup")
        table.append(
            [
                r["runtime"] + (f" {r['quant']}" if r.get("quant") else ""),
                r["export"],
                R.fmt_width(r["intermediate_size"]),
                r["measure"],
                f"{r['value']:.2f} {r['unit']}" if r["unit"] == "ms" else f"{r['value']:.1f} {r['unit']}",
                "—" if speedup is None else f"{speedup:.2f}×",
                "—" if not r.get("flops_ratio") else f"{1 / r['flops_ratio']:.2f}",
                "—" if not r.get("bytes_ratio") else f"{1 / r['bytes_ratio']:.2f}",
                "—" if speedup is None or not ratio else f"{speedup * ratio:.2f}",
            ]
        )
    header = ["engine", "export", "FFN size", "measure", "median", "speed-up", "1 / FLOPs", "1 / bytes", "÷ ideal"]
    return lines + _md_table(header, table)


def markdown_text(record: dict, head: dict) -> str:
    lines = (
        _md_head(record, head)
        + _md_by_width(record)
        + _md_by_flops(record)
        + _md_rows(record)
        + _md_profile(record.get("profile"))
        + (speed_table(record["served"]) if record.get("served") else [])
    )
    costs = record.get("costs") or {}
    if costs:
        keys = sorted({k for c in costs.values() for k in c})
        lines += ["## Costs (wall seconds)", ""]
        lines += _md_table(
            ["method"] + keys, [[m] + [f"{c[k]:.1f}" if k in c else "—" for k in keys] for m, c in costs.items()]
        )
    lines += ["![metric vs FLOPs and latency vs width](curve.png)", ""]
    return "\n".join(lines)
