"""Write the evaluation record (see evaluation.py) as report.json, report.csv, report.md and curve.png.

Every file is written atomically: to a hidden temp file beside the target, then renamed over it.

Headline rule: the smallest width whose metric is "within 1 point" of dense. For metrics where
higher is better (accuracy, F1, ... reported as fractions in [0, 1]) that is at most 0.01 below
dense (one percentage point); for lower-is-better metrics (perplexity, losses) it is at most 1 %
above dense (relative), since perplexity has no fixed scale.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Optional, Union

from .atomic import atomic_write
from .errors import NotAnExportError

__all__ = ["REPORT_FILES", "write_report", "load_report", "render_report", "headline", "CSV_COLUMNS",
           "ABS_TOLERANCE", "REL_TOLERANCE"]

REPORT_FILES = ("report.json", "report.csv", "report.md", "curve.png")
ABS_TOLERANCE = 0.01  # one point on a [0, 1] metric, for higher-is-better metrics
REL_TOLERANCE = 0.01  # one per cent, relative, for lower-is-better metrics (perplexity)
CSV_COLUMNS = (
    "method", "width_fraction", "intermediate_size", "metric", "value", "flops", "flops_ratio", "ffn_flops",
    "ffn_share", "params", "params_ratio", "weight_bytes", "checkpoint_bytes", "latency_ms", "latency_p10_ms",
    "latency_p90_ms", "latency_ratio", "theoretical", "export",
)
_PERCENT_METRICS = frozenset({"accuracy", "f1", "precision", "recall", "matthews_correlation", "spearmanr", "exact_match"})


# --------------------------------------------------------------------------------------------- helpers


def _metric_name(record: dict) -> str:
    return record["metric"]["name"]


def _higher(record: dict) -> bool:
    return bool(record["metric"].get("higher_is_better", True))


def _percent(record: dict) -> bool:
    return _higher(record) and _metric_name(record).lower() in _PERCENT_METRICS


def _fmt_value(record: dict, value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * value:.1f}" if _percent(record) else f"{value:.4g}"


def _metric_label(record: dict) -> str:
    return f"{_metric_name(record)} (%)" if _percent(record) else _metric_name(record)


def _fmt_ratio(x: Optional[float]) -> str:
    return "—" if x is None else f"{x:.3f}"


def _fmt_ms(x: Optional[float]) -> str:
    return "—" if x is None else f"{x:.2f}"


def _short_model(name: Any) -> str:
    """A local absolute path shows as its last folder name; Hub ids ("org/name") stay as they are."""
    text = str(name)
    return Path(text).name or text if Path(text).is_absolute() else text


def _pct(w: float) -> str:
    """A width fraction as a percentage: 0.125 -> "12.5%", 0.5 -> "50%"."""
    return f"{100 * float(w):.4g}%"


def _fmt_width(w: Any) -> str:
    if isinstance(w, list):
        return f"{min(w)}–{max(w)} (per layer)" if len(set(w)) > 1 else str(w[0])
    return str(w)


def _methods(record: dict) -> list[str]:
    seen: list[str] = []
    for row in record["rows"]:
        if row["method"] not in seen:
            seen.append(row["method"])
    return seen


def _widths(record: dict) -> list[float]:
    return sorted({float(r["width_fraction"]) for r in record["rows"]})


def _row(record: dict, method: str, width: float) -> Optional[dict]:
    for r in record["rows"]:
        if r["method"] == method and math.isclose(float(r["width_fraction"]), width):
            return r
    return None


# --------------------------------------------------------------------------------------------- headline


def _within(record: dict, value: Optional[float]) -> bool:
    dense = record["dense"]["value"]
    if value is None or dense is None:
        return False
    if _higher(record):
        return value >= dense - ABS_TOLERANCE - 1e-12
    return value <= dense * (1 + REL_TOLERANCE) + 1e-12


def headline(record: dict) -> dict:
    """Per method: the smallest width within tolerance of dense (None if no width is), plus a sentence.

    Returns {"rule", "per_method": {method: {"width_fraction", "value", "flops_ratio", "latency_ratio",
    "theoretical"} or None}, "text"}.
    """
    rule = ("metric >= dense - 0.01 (1 point)" if _higher(record)
            else "metric <= dense × 1.01 (1 % relative)")
    per_method: dict[str, Optional[dict]] = {}
    for method in _methods(record):
        best = None
        for w in _widths(record):
            r = _row(record, method, w)
            if r is not None and _within(record, r["value"]):
                best = {"width_fraction": w, "value": r["value"], "flops_ratio": r.get("flops_ratio"),
                        "latency_ratio": r.get("latency_ratio"), "theoretical": bool(r.get("theoretical"))}
                break
        per_method[method] = best
    return {"rule": rule, "per_method": per_method, "text": _headline_text(record, per_method)}


def _headline_text(record: dict, per_method: dict[str, Optional[dict]]) -> str:
    name = _metric_name(record)
    dense = _fmt_value(record, record["dense"]["value"])
    unit = " %" if _percent(record) else ""
    tol = "1 point" if _higher(record) else "1 %"
    methods = list(per_method)
    if not methods:
        return "No rows were evaluated."
    main = "awn" if "awn" in per_method else methods[0]

    def phrase(method: str) -> str:
        hit = per_method[method]
        if hit is None:
            return f"{method}: no evaluated width stays within {tol} of dense"
        extra = f", FLOPs ×{hit['flops_ratio']:.2f}" if hit.get("flops_ratio") is not None else ""
        if hit.get("latency_ratio") is not None and not hit["theoretical"]:
            extra += f", latency ×{hit['latency_ratio']:.2f}"
        flag = " (theoretical FLOPs)" if hit["theoretical"] else ""
        return (f"{method}: {_pct(hit['width_fraction'])} FFN width ({_fmt_value(record, hit['value'])}{unit}{extra}){flag}")

    hit = per_method[main]
    if hit is None:
        text = f"**{main}** stays within {tol} of dense {name} ({dense}{unit}) at none of the evaluated widths."
    else:
        text = f"Smallest width within {tol} of dense {name} ({dense}{unit}) — {phrase(main)}."
    others = [m for m in methods if m != main]
    if others:
        text += " Others: " + "; ".join(phrase(m) for m in others) + "."
    return text


# --------------------------------------------------------------------------------------------- files


def _json_text(record: dict) -> str:
    return json.dumps(record, indent=2, allow_nan=True) + "\n"


def _csv_text(record: dict) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in record["rows"]:
        out = dict(row)
        if isinstance(out.get("intermediate_size"), list):
            out["intermediate_size"] = ";".join(str(w) for w in out["intermediate_size"])
        out["theoretical"] = str(bool(out.get("theoretical"))).lower()
        writer.writerow({k: ("" if out.get(k) is None else out.get(k)) for k in CSV_COLUMNS})
    return buf.getvalue()


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines + [""]


def _md_text(record: dict, head: dict) -> str:
    name = _metric_name(record)
    label = _metric_label(record)
    methods = _methods(record)
    widths = _widths(record)
    dense = record["dense"]
    device = record.get("device") or {}
    dev = device.get("name", "?") + (f", {device['threads']} threads" if device.get("threads") else "")
    lat_cfg = record.get("latency_config")
    lines = [f"# awncompress report — {record.get('model')} on {record.get('task')}", ""]
    lines += [f"**Headline.** {head['text']}", "",
              f"_Rule: {head['rule']}. Higher-is-better metrics are fractions in [0, 1], so 1 point = 0.01; "
              "lower-is-better metrics (perplexity) use 1 % relative._", ""]
    facts = [
        ["model", f"{record.get('model')} ({record.get('architecture', '')})"],
        ["task / metric", f"{record.get('task')} / {name} ({'higher' if _higher(record) else 'lower'} is better)"],
        ["data", str(record.get("data") or "—") + f" ({record.get('num_eval_examples', '?')} eval examples)"],
        ["dense", f"{name} {_fmt_value(record, dense['value'])}{' %' if _percent(record) else ''}, {dense['flops']:,} FLOPs/example "
                  f"(FFN share {dense['ffn_share']:.1%}), {dense['params']:,} parameters"
                  + (f", {_fmt_ms(dense.get('latency_ms'))} ms" if dense.get("latency_ms") is not None else "")],
        ["device", dev + (f"; latency: batch {lat_cfg['batch_size']} × {lat_cfg['seq_len']} tokens, median of "
                          f"{lat_cfg['repeats']} after {lat_cfg['warmup']} warm-up" if lat_cfg else "; latency not measured")],
        ["seed / versions", f"{record.get('seed')} / " + ", ".join(f"{k} {v}" for k, v in (record.get("versions") or {}).items())],
    ]
    lines += _md_table(["", ""], facts)

    lines += [f"## {label} by FFN width", ""]
    header = ["width", "FLOPs ratio"] + methods
    table = []
    for w in widths:
        static = [r for r in (_row(record, m, w) for m in methods) if r is not None and not r.get("theoretical")]
        ratio = static[0].get("flops_ratio") if static else None
        cells = []
        for m in methods:
            r = _row(record, m, w)
            cells.append("—" if r is None else _fmt_value(record, r["value"]) + ("*" if r.get("theoretical") else ""))
        table.append([_pct(w), _fmt_ratio(ratio)] + cells)
    table.append(["dense", "1.000"] + [_fmt_value(record, dense["value"])] * len(methods))
    lines += _md_table(header, table)
    if any(r.get("theoretical") for r in record["rows"]):
        lines += ["\\* theoretical: a masked dense model (per-token top-k); FLOPs count active neurons only and no "
                  "kernel skips the masked ones, so its measured latency is the dense model's plus the masking.", ""]

    lines += ["## All rows", ""]
    header = ["method", "width", "FFN size", label, "FLOPs/example", "FLOPs ratio", "FFN share", "params",
              "latency ms (p10–p90)", "latency ratio", "checkpoint MB"]
    table = []
    for r in record["rows"]:
        lat = "—" if r.get("latency_ms") is None else (
            f"{_fmt_ms(r['latency_ms'])} ({_fmt_ms(r.get('latency_p10_ms'))}–{_fmt_ms(r.get('latency_p90_ms'))})")
        mb = "—" if r.get("checkpoint_bytes") is None else f"{r['checkpoint_bytes'] / 1e6:.1f}"
        table.append([r["method"] + (" *" if r.get("theoretical") else ""), _pct(r["width_fraction"]),
                      _fmt_width(r["intermediate_size"]), _fmt_value(record, r["value"]), f"{r['flops']:,}",
                      _fmt_ratio(r.get("flops_ratio")), f"{r['ffn_share']:.1%}", f"{r['params']:,}", lat,
                      _fmt_ratio(r.get("latency_ratio")), mb])
    lines += _md_table(header, table)

    profile = record.get("profile")
    if profile:
        lines += ["## Learned profile (awn)", "",
                  f"Per-layer active width = the k-quantile (k = {profile.get('k')}) of each layer's learned "
                  f"profile; λ·d_ff is the normalised rate (d_ff = {profile.get('d_ff')}). Load these widths with "
                  "`awncompress.load_pretrained(nested, width=\"learned\")`.", ""]
        rates = profile.get("normalised_rates") or []
        table = []
        for i, w in enumerate(profile["active_widths"]):
            rate = f"{rates[i]:.3f}" if i < len(rates) else "—"
            frac = profile["active_fractions"][i] if profile.get("active_fractions") else None
            table.append([str(i), str(w), "—" if frac is None else f"{frac:.1%}", rate])
        mean = sum(profile["active_widths"]) / max(1, len(profile["active_widths"]))
        table.append(["mean", f"{mean:.0f}", f"{mean / profile['d_ff']:.1%}" if profile.get("d_ff") else "—",
                      f"{sum(rates) / len(rates):.3f}" if rates else "—"])
        lines += _md_table(["layer", "active width", "fraction of d_ff", "λ·d_ff"], table)

    costs = record.get("costs") or {}
    if costs:
        keys = sorted({k for c in costs.values() for k in c})
        lines += ["## Costs (wall seconds)", ""]
        lines += _md_table(["method"] + keys, [[m] + [f"{c[k]:.1f}" if k in c else "—" for k in keys] for m, c in costs.items()])
    lines += ["![metric vs FLOPs and latency vs width](curve.png)", ""]
    return "\n".join(lines)


_STYLE = {
    "awn": dict(color="C3", marker="o", linewidth=2.6, zorder=6),
    "wina": dict(color="C0", marker="s"),
    "activation": dict(color="C2", marker="^"),
    "magnitude": dict(color="C4", marker="v"),
    "random": dict(color="C7", marker="x"),
    "wina-dynamic": dict(color="C0", marker="D", linestyle="--", markerfacecolor="white"),
}
_EXTRA_COLORS = ("C1", "C5", "C6", "C8", "C9")


def _style(method: str, i_extra: int) -> dict:
    style = {"linewidth": 1.6, "zorder": 3, "markersize": 6}
    if method in _STYLE:
        style.update(_STYLE[method])
    else:  # e.g. "wina+finetune": the score's colour if it is a built-in, solid, a distinct marker
        base = method.split("+", 1)[0]
        color = _STYLE[base]["color"] if base in _STYLE and base != method else _EXTRA_COLORS[i_extra % len(_EXTRA_COLORS)]
        style.update(color=color, marker="P", linestyle="-.", zorder=4)
    return style


def _plot_png(record: dict) -> bytes:
    # No pyplot: no global state and no GUI backend, the Agg canvas renders the PNG.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.8), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    methods = _methods(record)
    label = _metric_label(record)
    scale = 100.0 if _percent(record) else 1.0
    dense = record["dense"]
    n_extra = 0
    for m in methods:
        rows = sorted((r for r in record["rows"] if r["method"] == m), key=lambda r: r["width_fraction"])
        theoretical = any(r.get("theoretical") for r in rows)
        style = _style(m, n_extra)
        n_extra += m not in _STYLE
        if theoretical:
            style.setdefault("linestyle", "--")
        name = m + (" (theoretical FLOPs)" if theoretical else "")
        pts = [(r["flops_ratio"], r["value"] * scale) for r in rows if r.get("flops_ratio") is not None and r["value"] is not None]
        if pts:
            ax1.plot(*zip(*pts), label=name, **style)
        lat = [(r["width_fraction"] * 100, r["latency_ms"]) for r in rows if r.get("latency_ms") is not None]
        if lat:
            ax2.plot(*zip(*lat), label=name, **style)
    ax1.axhline(dense["value"] * scale, color="black", linestyle=":", linewidth=1.2,
                label=f"dense ({_fmt_value(record, dense['value'])})")
    if dense["value"] is not None:  # the headline's tolerance band
        lo, hi = ((dense["value"] - ABS_TOLERANCE, dense["value"]) if _higher(record)
                  else (dense["value"], dense["value"] * (1 + REL_TOLERANCE)))
        ax1.axhspan(lo * scale, hi * scale, color="0.5", alpha=0.15, linewidth=0,
                    label="within 1 point of dense" if _higher(record) else "within 1 % of dense")
    ax1.plot([1.0], [dense["value"] * scale], marker="*", color="black", markersize=11, linestyle="none")
    ax1.set_xlabel("FLOPs per example / dense FLOPs")
    ax1.set_ylabel(label + (" (lower is better)" if not _higher(record) else ""))
    ax1.set_title(f"{_metric_name(record)} vs FLOPs")
    ax1.grid(True, alpha=0.3)
    ax1.legend(fontsize=8, loc="best")
    widths = _widths(record)
    ax2.set_xticks([100 * w for w in widths] + [100])
    ax2.set_xticklabels([_pct(w) for w in widths] + ["100%"], fontsize=8)
    if dense.get("latency_ms") is not None:
        ax2.axhline(dense["latency_ms"], color="black", linestyle=":", linewidth=1.2,
                    label=f"dense ({dense['latency_ms']:.2f} ms)")
        ax2.plot([100], [dense["latency_ms"]], marker="*", color="black", markersize=11, linestyle="none")
        lat_cfg = record.get("latency_config") or {}
        device = record.get("device") or {}
        ax2.set_title(f"forward latency, batch {lat_cfg.get('batch_size', '?')} × {lat_cfg.get('seq_len', '?')} "
                      f"tokens\n{device.get('name', '')}", fontsize=10)
        ax2.legend(fontsize=8, loc="best")
    else:
        ax2.text(0.5, 0.5, "latency not measured", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_title("forward latency")
    ax2.set_xlabel("FFN width (% of d_ff)")
    ax2.set_ylabel("median latency (ms)")
    ax2.set_ylim(bottom=0)
    ax2.grid(True, alpha=0.3)
    fig.suptitle(f"{_short_model(record.get('model'))} — {record.get('task')}", fontsize=13)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_report(record: dict, out_dir: Union[str, Path]) -> list[Path]:
    """Write report.json / report.csv / report.md / curve.png into ``out_dir``; returns their paths.

    The headline (see :func:`headline`) is added to the JSON under "headline".
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = dict(record)
    head = headline(record)
    record["headline"] = head
    contents = {
        "report.json": _json_text(record),
        "report.csv": _csv_text(record),
        "report.md": _md_text(record, head),
        "curve.png": _plot_png(record),
    }
    paths = []
    for name in REPORT_FILES:
        path = out_dir / name
        atomic_write(path, contents[name])
        paths.append(path)
    return paths


def load_report(out_dir: Union[str, Path]) -> dict:
    """The record in ``out_dir``/report.json (or a path to the file itself)."""
    path = Path(out_dir)
    if path.is_dir():
        path = path / "report.json"
    if not path.exists():
        raise NotAnExportError(f"no report.json in {path.parent}; run `awncompress evaluate` first")
    try:
        record = json.loads(path.read_text())
        record["rows"], record["dense"], record["metric"]["name"]
    except (ValueError, KeyError, TypeError) as exc:
        raise NotAnExportError(f"{path} is not an awncompress report: {exc}") from None
    return record


def render_report(out_dir: Union[str, Path], dest: Optional[Union[str, Path]] = None) -> list[Path]:
    """Re-render report.csv / .md / curve.png (and the JSON) from an existing report.json."""
    return write_report(load_report(out_dir), dest or (Path(out_dir) if Path(out_dir).is_dir() else Path(out_dir).parent))
