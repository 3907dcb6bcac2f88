"""Turn benchmark reports into markdown tables for BENCHMARKS.md.

    python bench/summarise.py bench/results/minilm            # seed-*/report.json of one benchmark
    python bench/summarise.py bench/results/peers-minilm bench/results/peers-minilm/torch-pruning

Further folders add their methods' rows (and per-example results) to the first one's seeds: a peer
evaluated apart on the same runs (``bench/torch_pruning_peer.py``) is paired like the others.

Per method and width: the metric (mean ± sample sd over the seeds that ran it), FLOPs ratio and
measured latency ratio; the cost of each method for the whole curve; and, for accuracy, whether a
gap to the strongest baseline exceeds two standard errors (binomial SE on the test set, combined
with the seed spread where there are seeds).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path


def _reports(folder: Path, *extra: Path) -> dict[int, dict]:
    found = {int(p.parent.name.split("-")[1]): json.loads(p.read_text()) for p in folder.glob("seed-*/report.json")}
    if not found:
        sys.exit(f"no seed-*/report.json under {folder}")
    for more in extra:
        for seed, report in _reports(more).items():
            if seed in found:
                _merge(found[seed], report)
    return dict(sorted(found.items()))


def _merge(into: dict, other: dict) -> None:
    """Add ``other``'s method rows, per-example results and costs to ``into`` (same run, same examples)."""
    if into["num_eval_examples"] != other["num_eval_examples"] or into["dense"]["value"] != other["dense"]["value"]:
        sys.exit("the reports to merge were not evaluated on the same dense model and examples")
    known = {r["method"] for r in into["rows"]}
    into["rows"] += [r for r in other["rows"] if r["method"] not in known]
    for name in PER_EXAMPLE:
        if other.get(name):
            into[name] = {**other[name], **(into.get(name) or {})}
    for method, cost in other["costs"].items():
        into["costs"].setdefault(method, cost)


def _cell(values: list[float], percent: bool) -> str:
    scale = 100 if percent else 1
    if len(values) == 1:
        return f"{values[0] * scale:.2f}"
    return f"{statistics.mean(values) * scale:.2f} ± {statistics.stdev(values) * scale:.2f}"


def summarise(folder: Path, *extra: Path) -> str:
    reports = _reports(folder, *extra)
    first = reports[min(reports)]
    percent = first["metric"]["higher_is_better"] and first["metric"]["name"] != "spearmanr"
    n = first["num_eval_examples"]
    values: dict[tuple[str, float], list[float]] = {}
    rows: dict[tuple[str, float], dict] = {}
    for report in reports.values():
        for r in report["rows"]:
            if r.get("flops_target") is not None:
                continue  # FFN+heads points: their own section
            values.setdefault((r["method"], r["width_fraction"]), []).append(r["value"])
            rows.setdefault((r["method"], r["width_fraction"]), r)
    methods = list(dict.fromkeys(m for m, _ in values))
    widths = sorted({w for _, w in values})
    dense = first["dense"]["value"]
    unit = " (%)" if percent else ""
    threads = f" ({first['device']['threads']} threads)" if first["device"].get("threads") else ""  # none on a GPU
    lines = [
        f"Model `{first['model']}`, task {first['task']}, {n} eval examples, seeds {sorted(reports)}, "
        f"device {first['device']['name']}{threads}. Dense {first['metric']['name']}: "
        f"{dense * (100 if percent else 1):.2f}.",
        "",
    ]
    lines.append("| method | " + " | ".join(f"{w:g}" for w in widths) + " |")
    lines.append("|---|" + "---|" * len(widths))
    for m in methods:
        cells = [(_cell(values[(m, w)], percent) if (m, w) in values else "—") for w in widths]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"{first['metric']['name']}{unit} by FFN width fraction; mean ± sd over seeds where a method ran on several.",
        "",
    ]
    lines.append("| width | FLOPs ratio | latency ratio (awn) | latency ratio (wina static) |")
    lines.append("|---|---|---|---|")
    for w in widths:
        awn, wina = rows.get(("awn", w), {}), rows.get(("wina", w), {})

        def fmt(x):
            return f"{x:.3f}" if isinstance(x, (int, float)) else "—"

        lines.append(
            f"| {w:g} | {fmt(awn.get('flops_ratio'))} | {fmt(awn.get('latency_ratio'))} "
            f"| {fmt(wina.get('latency_ratio'))} |"
        )
    lines += ["", "Cost of the whole curve (wall seconds, seed 0):", ""]
    for method, cost in first["costs"].items():
        lines.append(
            f"- {method}: " + ", ".join(f"{k} {v:.0f}" for k, v in cost.items() if isinstance(v, (int, float)))
        )
    if percent:
        lines += ["", _significance(reports, values, methods, widths, n)]
    elif any(r.get("per_example_nll") for r in reports.values()):
        lines += ["", _gap_table(reports, widths, NLL_UNIT)]
        peers = [m for m in methods if m not in ("awn", "awn-per-layer", "wina-dynamic")]
        lines += ["", _peer_table(reports, widths, peers, NLL_UNIT)]
    else:
        lines += ["", _seed_spread(values, widths)]
    lines += _flops_section(reports, percent)
    return "\n".join(lines) + "\n"


def _flops_section(reports: dict[int, dict], percent: bool) -> list[str]:
    """FFN+heads rows (``--heads``): per FLOP target, each method's metric, the shape it ran at, its
    measured FLOPs and latency ratios, and the paired gaps of awn-heads to its baselines."""
    values: dict[tuple[str, float], list[float]] = {}
    rows: dict[tuple[str, float], dict] = {}
    for report in reports.values():
        for r in report["rows"]:
            if r.get("flops_target") is not None:
                values.setdefault((r["method"], r["flops_target"]), []).append(r["value"])
                rows.setdefault((r["method"], r["flops_target"]), r)
    if not values:
        return []
    methods = list(dict.fromkeys(m for m, _ in values))
    targets = sorted({t for _, t in values})
    lines = [
        "",
        "FFN + heads, by FLOP target (mean ± sd over seeds):",
        "",
        "| target | FFN width, heads | FLOPs ratio | latency ratio | " + " | ".join(methods) + " |",
        "|---|---|---|---|" + "---|" * len(methods),
    ]
    for t in targets:
        r = rows.get(("awn-heads", t)) or next(v for (m, x), v in rows.items() if x == t)
        shape = f"{r['width_fraction']:.3f}, {r['heads']}"
        lat = r.get("latency_ratio")
        cells = [(_cell(values[(m, t)], percent) if (m, t) in values else "—") for m in methods]
        lines.append(
            f"| {t:g} | {shape} | {r['flops_ratio']:.3f} | {lat if lat is None else f'{lat:.3f}'} | "
            + " | ".join(cells)
            + " |"
        )
    if percent:
        claims = [("awn-heads", m) for m in methods if m != "awn-heads"]  # awn-heads against every other point
        lines += [
            "",
            "Paired gaps in points (± 2 SE; * beyond 2 SE):",
            "",
            "| target | " + " | ".join(f"{a} − {b}" for a, b in claims) + " |",
            "|---|" + "---|" * len(claims),
        ]
        for t in targets:
            cells = [_gap_cell(reports, f"{a}@{t:g}", f"{b}@{t:g}") for a, b in claims]
            lines.append(f"| {t:g} | " + " | ".join(cells) + " |")
    return lines


# Per-example results of a report, "method@width" → values: 1/0 per example (classification), or
# each window's mean next-token NLL in nats (causal LM).
PER_EXAMPLE = ("per_example_correct", "per_example_nll")


def _paired(reports: dict[int, dict], a: str, b: str) -> tuple[float, float] | None:
    """Mean paired difference a − b and its SE, pooling seeds that ran both: in points of accuracy,
    or for a causal LM in percent of perplexity (100 × the NLL gap, log-perplexity ≈ relative change).

    Per seed: d_i = correct_a(i) − correct_b(i) (or nll_a(i) − nll_b(i)) over the same test examples,
    SE = sd(d)/√n; across seeds the gaps are averaged and the SE adds the spread of the per-seed gaps.
    """
    gaps, ses = [], []
    for report in reports.values():
        for name in PER_EXAMPLE:
            values = report.get(name) or {}
            if a in values and b in values:
                d = [float(x) - float(y) for x, y in zip(values[a], values[b])]
                gaps.append(statistics.mean(d) * 100)
                ses.append(statistics.stdev(d) / math.sqrt(len(d)) * 100)
    if not gaps:
        return None
    var = statistics.mean(se**2 for se in ses) / len(gaps) + (
        statistics.variance(gaps) / len(gaps) if len(gaps) > 1 else 0.0
    )
    return statistics.mean(gaps), math.sqrt(var)


def _gap_cell(reports: dict[int, dict], a: str, b: str) -> str:
    """One table cell: the paired gap a − b in points ± 2 SE, * beyond 2 SE, — where no seed ran both."""
    paired = _paired(reports, a, b)
    if paired is None:
        return "—"
    gap, se = paired
    return f"{gap:+.2f} ± {2 * se:.2f}" + ("*" if abs(gap) > 2 * se else "")


def _significance(reports: dict[int, dict], values: dict, methods: list[str], widths: list[float], n: int) -> str:
    out = [
        "Gap of awn to the strongest other non-theoretical method per width. Paired test: every model is "
        f"scored on the same {n} examples, so the SE is that of the per-example difference (McNemar-style), "
        "plus the spread of the per-seed gaps; a gap beyond 2 SE is called significant:",
        "",
    ]
    for w in widths:
        if ("awn", w) not in values:
            continue
        others = [
            (statistics.mean(values[(m, w)]), m)
            for m in methods
            if m not in ("awn", "awn-per-layer", "wina-dynamic") and (m, w) in values
        ]
        if not others:
            continue
        _, name = max(others)
        paired = _paired(reports, f"awn@{w:g}", f"{name}@{w:g}")
        if paired is None:  # no per-example results: unpaired binomial SEs
            a, best = statistics.mean(values[("awn", w)]), statistics.mean(values[(name, w)])
            paired = ((a - best) * 100, math.sqrt(sum(p * (1 - p) / n for p in (a, best))) * 100)
        gap, se = paired
        verdict = "significant" if abs(gap) > 2 * se else "within noise"
        out.append(f"- {w:g}: awn − {name} = {gap:+.2f} points (2 SE = {2 * se:.2f}): {verdict}")
    out += ["", _gap_table(reports, widths)]
    peers = [m for m in methods if m not in ("awn", "awn-per-layer", "wina-dynamic")]
    if set(peers) - {b for a, b in CLAIMS if a == "awn"}:  # methods the claims table leaves out
        out += ["", _peer_table(reports, widths, peers)]
    return "\n".join(out)


def _seed_spread(values: dict, widths: list[float]) -> str:
    """For a metric without per-example results (perplexity): awn − wina+finetune per width against
    the seed spread; a gap is called beyond the spread when it exceeds the two sds added."""
    lines = [
        "awn − wina+finetune by width (mean over seeds; beyond the spread when |gap| > sd(awn) + sd(wina+finetune)):",
        "",
    ]
    for w in widths:
        a, b = values.get(("awn", w)), values.get(("wina+finetune", w))
        if not a or not b:
            continue
        spread = sum(statistics.stdev(v) if len(v) > 1 else 0.0 for v in (a, b))
        gap = statistics.mean(a) - statistics.mean(b)
        verdict = "beyond the seed spread" if abs(gap) > spread else "within the seed spread"
        lines.append(f"- {w:g}: {gap:+.2f} (sd sum {spread:.2f}): {verdict}")
    return "\n".join(lines)


# The comparisons the product's claims rest on: the per-width fine-tune, static WINA (the baseline
# every curve is drawn against) and per-layer vs uniform widths at equal FLOPs (benchmark 3).
CLAIMS = (("awn", "wina+finetune"), ("awn", "wina"), ("awn-per-layer", "awn"))


POINTS = "points"
NLL_UNIT = "% of perplexity (100 × the paired gap in NLL per token; negative: the first is better)"


def _gap_table(reports: dict[int, dict], widths: list[float], unit: str = POINTS) -> str:
    """Paired gaps (± 2 SE) of each claim's pair at every width; * marks a significant gap."""
    lines = [
        f"Paired gaps in {unit} (± 2 SE, pooled over the seeds that ran both; * beyond 2 SE):",
        "",
        "| width | " + " | ".join(f"{a} − {b}" for a, b in CLAIMS) + " |",
        "|---|" + "---|" * len(CLAIMS),
    ]
    for w in widths:
        cells = [_gap_cell(reports, f"{a}@{w:g}", f"{b}@{w:g}") for a, b in CLAIMS]
        lines.append(f"| {w:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _peer_table(reports: dict[int, dict], widths: list[float], peers: list[str], unit: str = POINTS) -> str:
    """awn − each other method at every width (± 2 SE, * beyond 2 SE): one column per method."""
    lines = [
        f"awn − each method, paired ({unit}, ± 2 SE, pooled over the seeds that ran both; * beyond 2 SE):",
        "",
        "| width | " + " | ".join(peers) + " |",
        "|---|" + "---|" * len(peers),
    ]
    for w in widths:
        cells = [_gap_cell(reports, f"awn@{w:g}", f"{m}@{w:g}") for m in peers]
        lines.append(f"| {w:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(summarise(*(Path(a) for a in sys.argv[1:])))
