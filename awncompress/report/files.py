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
from pathlib import Path
from typing import Optional, Union

from . import record as R
from ..files.atomic import atomic_write
from pydantic import Field

from ..files.schema import FileRecord, NonBlank, NonNegativeInt, Number, PositiveInt, Width
from ..errors import NotAnExportError
from ..checkpoint.layout import REPORT_FILES
from .plot import curve_png

__all__ = ["REPORT_FILES", "write_report", "load_report", "render_report", "headline", "CSV_COLUMNS"]

CSV_COLUMNS = (
    "method", "width_fraction", "intermediate_size", "metric", "value", "flops", "flops_ratio", "ffn_flops",
    "ffn_share", "params", "params_ratio", "weight_bytes", "checkpoint_bytes", "latency_ms", "latency_p10_ms",
    "latency_p90_ms", "latency_ratio", "theoretical", "export", "flops_target", "heads",
)


# --------------------------------------------------------------------------------------------- headline


def headline(record: dict) -> dict:
    """Per method: the smallest width within tolerance of dense (None if no width is), plus a sentence.

    Returns {"rule", "per_method": {method: {"width_fraction", "value", "flops_ratio", "latency_ratio",
    "theoretical"} or None}, "text"}.
    """
    rule = ("metric >= dense - 0.01 (1 point)" if R.higher(record)
            else "metric <= dense × 1.01 (1 % relative)")
    per_method: dict[str, Optional[dict]] = {}
    points = [(m, R.widths(record), R.row) for m in R.width_methods(record)]
    points += [(m, R.targets(record), R.target_row) for m in R.flop_methods(record)]
    for method, xs, find in points:
        best = None
        for x in xs:
            r = find(record, method, x)
            if r is not None and R.within(record, r["value"]):
                best = {"width_fraction": r["width_fraction"], "value": r["value"], "flops_ratio": r.get("flops_ratio"),
                        "latency_ratio": r.get("latency_ratio"), "theoretical": bool(r.get("theoretical")),
                        **({"heads": r["heads"]} if R.on_flops_axis(r) else {})}
                break
        per_method[method] = best
    return {"rule": rule, "per_method": per_method, "text": _headline_text(record, per_method)}


def _headline_text(record: dict, per_method: dict[str, Optional[dict]]) -> str:
    name = R.metric_name(record)
    dense = R.fmt_value(record, record["dense"]["value"])
    unit = " %" if R.percent(record) else ""
    tol = "1 point" if R.higher(record) else "1 %"
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
        heads = f" and {R.fmt_width(hit['heads'])} heads" if "heads" in hit else ""
        return (f"{method}: {R.pct(hit['width_fraction'])} FFN width{heads} ({R.fmt_value(record, hit['value'])}{unit}{extra}){flag}")

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
        for key in ("intermediate_size", "heads"):
            if isinstance(out.get(key), list):
                out[key] = ";".join(str(w) for w in out[key])
        out["theoretical"] = str(bool(out.get("theoretical"))).lower()
        writer.writerow({k: ("" if out.get(k) is None else out.get(k)) for k in CSV_COLUMNS})
    return buf.getvalue()


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
    how = (f"median of {lat['repeats']} passes timed round-robin over the {shapes} distinct model shapes (rows of one "
           f"shape share a timing)" if lat.get("schedule") == "round-robin" else f"median of {lat['repeats']} passes")
    return dev + f"; latency: batch {lat['batch_size']} × {lat['seq_len']} tokens, {how}, after {lat['warmup']} warm-up"


def _md_head(record: dict, head: dict) -> list[str]:
    name, dense = R.metric_name(record), record["dense"]
    lines = [f"# awncompress report — {record.get('model')} on {record.get('task')}", "",
             f"**Headline.** {head['text']}", "",
             f"_Rule: {head['rule']}. Higher-is-better metrics are fractions in [0, 1], so 1 point = 0.01; "
             "lower-is-better metrics (perplexity) use 1 % relative._", ""]
    flops = "" if record.get("flops_source", "formula") == "formula" else " (counted with torch's FlopCounterMode: no formula for this family)"
    facts = [
        ["model", f"{record.get('model')} ({record.get('architecture', '')})"],
        ["task / metric", f"{record.get('task')} / {name} ({'higher' if R.higher(record) else 'lower'} is better)"],
        ["data", str(record.get("data") or "—") + f" ({record.get('num_eval_examples', '?')} eval examples)"],
        ["dense", f"{name} {R.fmt_value(record, dense['value'])}{' %' if R.percent(record) else ''}, {dense['flops']:,} FLOPs/example"
                  f"{flops} (FFN share {dense['ffn_share']:.1%}), {dense['params']:,} parameters"
                  + (f", {R.fmt_ms(dense.get('latency_ms'))} ms" if dense.get("latency_ms") is not None else "")],
        ["device", _latency_fact(record)],
        ["seed / versions", f"{record.get('seed')} / " + ", ".join(f"{k} {v}" for k, v in (record.get("versions") or {}).items())],
    ]
    if record.get("budget"):
        b = record["budget"]
        facts.append(["budget", f"{b['minutes']:g} min: fine-tunes scaled to {b['train_steps']} steps (dense stage {b['dense_steps']})"])
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
        table.append([R.fmt_ratio(t), R.fmt_ratio(shape.get("flops_ratio") if shape else None), where]
                     + ["—" if r is None else R.fmt_value(record, r["value"]) for r in rows])
    table.append(["dense", "1.000", "full"] + [R.fmt_value(record, dense["value"])] * len(methods))
    return [f"## {R.metric_label(record)} by FLOP target (FFN width and attention heads)", ""] + _md_table(
        ["FLOP target", "FLOPs ratio", "FFN width, heads"] + methods, table)


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
        lines += ["\\* theoretical: a masked dense model (per-token top-k); FLOPs count active neurons only and no "
                  "kernel skips the masked ones, so it is not timed (a masked dense model runs at dense speed).", ""]
    return lines


def _md_rows(record: dict) -> list[str]:
    header = ["method", "width", "FFN size", R.metric_label(record), "FLOPs/example", "FLOPs ratio", "FFN share", "params",
              "latency ms (p10–p90)", "latency ratio", "checkpoint MB"]
    table = []
    for r in record["rows"]:
        lat = "—" if r.get("latency_ms") is None else (
            f"{R.fmt_ms(r['latency_ms'])} ({R.fmt_ms(r.get('latency_p10_ms'))}–{R.fmt_ms(r.get('latency_p90_ms'))})")
        mb = "—" if r.get("checkpoint_bytes") is None else f"{r['checkpoint_bytes'] / 1e6:.1f}"
        size = R.fmt_width(r["intermediate_size"]) + (f", {R.fmt_width(r['heads'])} heads" if R.on_flops_axis(r) else "")
        table.append([r["method"] + (" *" if r.get("theoretical") else ""), R.pct(r["width_fraction"]), size, R.fmt_value(record, r["value"]), f"{r['flops']:,}",
                      R.fmt_ratio(r.get("flops_ratio")), f"{r['ffn_share']:.1%}", f"{r['params']:,}", lat,
                      R.fmt_ratio(r.get("latency_ratio")), mb])
    return ["## All rows", ""] + _md_table(header, table)


def _md_profile(profile: Optional[dict]) -> list[str]:
    if not profile:
        return []
    lines = ["## Learned profile (awn)", "",
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
    return lines + _md_table(["layer", "active width", "fraction of d_ff", "λ·d_ff"], table)


def _md_text(record: dict, head: dict) -> str:
    lines = (_md_head(record, head) + _md_by_width(record) + _md_by_flops(record) + _md_rows(record)
             + _md_profile(record.get("profile")))
    costs = record.get("costs") or {}
    if costs:
        keys = sorted({k for c in costs.values() for k in c})
        lines += ["## Costs (wall seconds)", ""]
        lines += _md_table(["method"] + keys, [[m] + [f"{c[k]:.1f}" if k in c else "—" for k in keys] for m, c in costs.items()])
    lines += ["![metric vs FLOPs and latency vs width](curve.png)", ""]
    return "\n".join(lines)


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
        "curve.png": curve_png(record),
    }
    paths = []
    for name in REPORT_FILES:
        path = out_dir / name
        atomic_write(path, contents[name])
        paths.append(path)
    return paths


class _Metric(FileRecord):
    name: NonBlank
    higher_is_better: bool = True


class _Dense(FileRecord):
    value: Optional[Number]
    flops: NonNegativeInt
    ffn_share: Number
    params: NonNegativeInt
    latency_ms: Optional[Number] = None
    latency_p10_ms: Optional[Number] = None
    latency_p90_ms: Optional[Number] = None


class _Row(_Dense):
    method: NonBlank
    width_fraction: Width
    intermediate_size: Union[PositiveInt, list[PositiveInt]]
    flops_ratio: Optional[Number] = None
    params_ratio: Optional[Number] = None
    latency_ratio: Optional[Number] = None
    checkpoint_bytes: Optional[NonNegativeInt] = None
    theoretical: bool = False


class _Profile(FileRecord):
    active_widths: list[PositiveInt]
    normalised_rates: list[Number] = Field(default_factory=list)
    active_fractions: list[Number] = Field(default_factory=list)
    d_ff: Optional[PositiveInt] = None


class _Latency(FileRecord):
    batch_size: PositiveInt
    seq_len: PositiveInt
    repeats: NonNegativeInt
    warmup: NonNegativeInt


class _Record(FileRecord):
    metric: _Metric
    dense: _Dense
    rows: list[_Row]
    profile: Optional[_Profile] = None
    latency_config: Optional[_Latency] = None
    device: Optional[dict[str, Optional[Union[str, int]]]] = None
    versions: Optional[dict[str, str]] = None
    costs: Optional[dict[str, dict[str, Number]]] = None
    derived: Optional[dict[str, str]] = None


def load_report(out_dir: Union[str, Path]) -> dict:
    """The record in ``out_dir``/report.json (or a path to the file itself), its keys checked."""
    path = Path(out_dir)
    if path.is_dir():
        path = path / "report.json"
    if not path.exists():
        raise NotAnExportError(f"no report.json in {path.parent}; run `awncompress evaluate` first")
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise NotAnExportError(f"{path} is not an awncompress report: {exc}") from None
    if not isinstance(record, dict):
        raise NotAnExportError(f"{path} is not an awncompress report: it holds {type(record).__name__}, not an object")
    try:
        _Record(**record)
    except NotAnExportError as exc:
        raise NotAnExportError(f"{path} is not an awncompress report: {exc}") from None
    return record


def render_report(out_dir: Union[str, Path], dest: Optional[Union[str, Path]] = None) -> list[Path]:
    """Re-render report.csv / .md / curve.png (and the JSON) from an existing report.json."""
    return write_report(load_report(out_dir), dest or (Path(out_dir) if Path(out_dir).is_dir() else Path(out_dir).parent))
