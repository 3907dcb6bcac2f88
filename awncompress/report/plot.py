"""The report's picture, curve.png: metric vs FLOPs (left) and latency vs width (right), per method;
with FFN+heads rows, latency vs FLOPs (heads cut FLOPs that no FFN width describes); with served
exports timed in their engines, a third panel of their time against the FLOP / weight-byte ratio."""

from __future__ import annotations

import io

from ..evaluate.methods import method_style
from . import record as R

_EXTRA_COLORS = ("C1", "C5", "C6", "C8", "C9")


def _style(method: str, i_extra: int) -> dict:
    """The registered method's style; "<base>+suffix" rows (e.g. wina+finetune) take their base's colour."""
    style = {"linewidth": 1.6, "zorder": 3, "markersize": 6}
    own = method_style(method)
    if own is not None:
        style.update(own)
        return style
    base = method_style(method.split("+", 1)[0]) if "+" in method else None
    color = base["color"] if base and "color" in base else _EXTRA_COLORS[i_extra % len(_EXTRA_COLORS)]
    style.update(color=color, marker="P", linestyle="-.", zorder=4)
    return style


def _metric_axis(ax, record: dict, scale: float) -> None:
    dense = record["dense"]
    ax.axhline(
        dense["value"] * scale,
        color="black",
        linestyle=":",
        linewidth=1.2,
        label=f"dense ({R.fmt_value(record, dense['value'])})",
    )
    if dense["value"] is not None:  # the headline's tolerance band
        lo, hi = (
            (dense["value"] - R.ABS_TOLERANCE, dense["value"])
            if R.higher(record)
            else (dense["value"], dense["value"] * (1 + R.REL_TOLERANCE))
        )
        ax.axhspan(
            lo * scale,
            hi * scale,
            color="0.5",
            alpha=0.15,
            linewidth=0,
            label="within 1 point of dense" if R.higher(record) else "within 1 % of dense",
        )
    ax.plot([1.0], [dense["value"] * scale], marker="*", color="black", markersize=11, linestyle="none")
    ax.set_xlabel("FLOPs per example / dense FLOPs")
    ax.set_ylabel(R.metric_label(record) + (" (lower is better)" if not R.higher(record) else ""))
    ax.set_title(f"{R.metric_name(record)} vs FLOPs")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")


def _latency_axis(ax, record: dict, by_flops: bool) -> None:
    dense = record["dense"]
    widths = R.widths(record)
    if by_flops:  # FFN+heads points have no single width: latency over FLOPs, beside the y = x line
        ax.plot([0, 1], [0, dense.get("latency_ms") or 0], color="0.6", linewidth=1, label="latency ∝ FLOPs")
    else:
        ax.set_xticks([100 * w for w in widths] + [100])
        ax.set_xticklabels([R.pct(w) for w in widths] + ["100%"], fontsize=8)
    if dense.get("latency_ms") is not None:
        ax.axhline(
            dense["latency_ms"],
            color="black",
            linestyle=":",
            linewidth=1.2,
            label=f"dense ({dense['latency_ms']:.2f} ms)",
        )
        ax.plot(
            [1.0 if by_flops else 100],
            [dense["latency_ms"]],
            marker="*",
            color="black",
            markersize=11,
            linestyle="none",
        )
        lat_cfg = record.get("latency_config") or {}
        device = record.get("device") or {}
        ax.set_title(
            f"forward latency, batch {lat_cfg.get('batch_size', '?')} × {lat_cfg.get('seq_len', '?')} "
            f"tokens\n{device.get('name', '')}",
            fontsize=10,
        )
        ax.legend(fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, "latency not measured", ha="center", va="center", transform=ax.transAxes)
        ax.set_title("forward latency")
    ax.set_xlabel("FLOPs per example / dense FLOPs" if by_flops else "FFN width (% of d_ff)")
    ax.set_ylabel("median latency (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)


def _served_axis(ax, served: dict) -> None:
    """Served exports: time per unit of work against the full-width file, over the FLOP ratio (latency,
    prompt) or the weight-byte ratio (generation); on the y = x line speed follows the ratio."""
    lines: dict[str, list[tuple[float, float]]] = {}
    for r in served["rows"]:
        ratio = r.get("bytes_ratio") if r["measure"].startswith("generate") else r.get("flops_ratio")
        if r.get("speedup") and ratio and isinstance(r["intermediate_size"], int):
            name = f"{r['runtime']}{' ' + r['quant'] if r.get('quant') else ''}: {r['measure']}"
            lines.setdefault(name, []).append((ratio, 1 / r["speedup"]))
    ax.plot([0, 1], [0, 1], color="0.6", linewidth=1, label="in proportion")
    for i, (name, pts) in enumerate(lines.items()):
        ax.plot(*zip(*sorted(pts)), marker="o", color=f"C{i}", linewidth=1.4, label=name)
    ax.set_xlim(0, 1.05)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("FLOPs ratio (latency, prompt) · weight-bytes ratio (generation)")
    ax.set_ylabel("time / full-width time")
    ax.set_title("served: onnxruntime, llama.cpp", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def curve_png(record: dict) -> bytes:
    """curve.png of a report record, as PNG bytes."""
    # No pyplot: no global state and no GUI backend, the Agg canvas renders the PNG.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    served = record.get("served")
    fig = Figure(figsize=(18 if served else 12, 4.8), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2, *ax3 = fig.subplots(1, 3 if served else 2)
    scale = 100.0 if R.percent(record) else 1.0
    n_extra = 0
    by_flops = bool(R.flop_methods(record))
    for m in R.methods(record):
        rows = sorted(
            (r for r in record["rows"] if r["method"] == m), key=lambda r: r.get("flops_ratio") or r["width_fraction"]
        )
        theoretical = any(r.get("theoretical") for r in rows)
        style = _style(m, n_extra)
        n_extra += method_style(m) is None
        if theoretical:
            style.setdefault("linestyle", "--")
        name = m + (" (theoretical FLOPs)" if theoretical else "")
        pts = [
            (r["flops_ratio"], r["value"] * scale)
            for r in rows
            if r.get("flops_ratio") is not None and r["value"] is not None
        ]
        if pts:
            ax1.plot(*zip(*pts), label=name, **style)
        lat = [
            (r["flops_ratio"] if by_flops else r["width_fraction"] * 100, r["latency_ms"])
            for r in rows
            if r.get("latency_ms") is not None and (r.get("flops_ratio") is not None or not by_flops)
        ]
        if lat:
            ax2.plot(*zip(*lat), label=name, **style)
    _metric_axis(ax1, record, scale)
    _latency_axis(ax2, record, by_flops)
    if served:
        _served_axis(ax3[0], served)
    fig.suptitle(f"{R.short_model(record.get('model'))} — {record.get('task')}", fontsize=13)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
