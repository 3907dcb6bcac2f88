"""Write the evaluation record (see evaluate/matrix.py) as report.json, report.csv, report.md and curve.png.

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
import re
from pathlib import Path
from typing import Optional, Union

from pydantic import Field

from ..checkpoint.layout import REPORT_FILES
from ..errors import NotAnExportError
from ..files.atomic import atomic_write, check_file_writable
from ..files.readers import load_json
from ..files.schema import FileRecord, NonBlank, NonNegativeInt, Number, PositiveInt, Width
from . import record as R
from .markdown import markdown_text
from .plot import curve_png

__all__ = ["REPORT_FILES", "write_report", "load_report", "render_report", "headline", "CSV_COLUMNS"]

CSV_COLUMNS = (
    "method",
    "width_fraction",
    "intermediate_size",
    "metric",
    "value",
    "flops",
    "flops_ratio",
    "ffn_flops",
    "ffn_share",
    "params",
    "params_ratio",
    "weight_bytes",
    "checkpoint_bytes",
    "latency_ms",
    "latency_p10_ms",
    "latency_p90_ms",
    "latency_ratio",
    "theoretical",
    "export",
    "flops_target",
    "heads",
)


# --------------------------------------------------------------------------------------------- headline


def headline(record: dict) -> dict:
    """Per method: the smallest width within tolerance of dense (None if no width is), plus a sentence.

    Returns {"rule", "per_method": {method: {"width_fraction", "value", "flops_ratio", "latency_ratio",
    "theoretical"} or None}, "text"}.
    """
    rule = "metric >= dense - 0.01 (1 point)" if R.higher(record) else "metric <= dense × 1.01 (1 % relative)"
    per_method: dict[str, Optional[dict]] = {}
    points = [(m, R.widths(record), R.row) for m in R.width_methods(record)]
    points += [(m, R.targets(record), R.target_row) for m in R.flop_methods(record)]
    for method, xs, find in points:
        best = None
        for x in xs:
            r = find(record, method, x)
            if r is not None and R.within(record, r["value"]):
                best = {
                    "width_fraction": r["width_fraction"],
                    "value": r["value"],
                    "flops_ratio": r.get("flops_ratio"),
                    "latency_ratio": r.get("latency_ratio"),
                    "theoretical": bool(r.get("theoretical")),
                    **({"heads": r["heads"]} if R.on_flops_axis(r) else {}),
                }
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
        value = R.fmt_value(record, hit["value"])
        return f"{method}: {R.pct(hit['width_fraction'])} FFN width{heads} ({value}{unit}{extra}){flag}"

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


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#!])")


def _md_escape(name: str) -> str:
    """A name read from report.json as literal Markdown text: no table breaks, links, HTML or emphasis."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(name).split()))


def _escaped_markdown(record: dict) -> str:
    """report.md with every method name escaped (report.json may come from anyone)."""
    escaped = dict(record)
    escaped["rows"] = [{**row, "method": _md_escape(row["method"])} for row in record["rows"]]
    if record.get("costs"):
        escaped["costs"] = {_md_escape(k): v for k, v in record["costs"].items()}
    return markdown_text(escaped, headline(escaped))


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
        "report.md": _escaped_markdown(record),
        "curve.png": curve_png(record),
    }
    paths = []
    for name in REPORT_FILES:  # a link, FIFO or folder under a report's name is never replaced
        check_file_writable(out_dir / name, overwrite=True)
    for name in REPORT_FILES:
        path = out_dir / name
        atomic_write(path, contents[name], record=True)
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
    grown_widths: list[PositiveInt] = Field(default_factory=list)


class _Latency(FileRecord):
    batch_size: PositiveInt
    seq_len: PositiveInt
    repeats: NonNegativeInt
    warmup: NonNegativeInt


class _Perplexity(FileRecord):
    text: NonBlank
    window_tokens: PositiveInt
    windows: NonNegativeInt


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
    perplexity: Optional[_Perplexity] = None


def load_report(out_dir: Union[str, Path]) -> dict:
    """The record in ``out_dir``/report.json (or a path to the file itself), its keys checked."""
    path = Path(out_dir)
    if path.is_dir():
        path = path / "report.json"
    if not path.exists():
        raise NotAnExportError(f"no report.json in {path.parent}; run `awncompress evaluate` first")
    try:
        record = load_json(path, "report", NotAnExportError)
    except OSError as exc:
        raise NotAnExportError(f"{path} is not an awncompress report: {exc.strerror or exc}") from None
    if not isinstance(record, dict):
        raise NotAnExportError(f"{path} is not an awncompress report: it holds {type(record).__name__}, not an object")
    try:
        _Record(**record)
    except NotAnExportError as exc:
        raise NotAnExportError(f"{path} is not an awncompress report: {exc}") from None
    return record


def render_report(out_dir: Union[str, Path], dest: Optional[Union[str, Path]] = None) -> list[Path]:
    """Re-render report.csv / .md / curve.png (and the JSON) from an existing report.json."""
    return write_report(
        load_report(out_dir), dest or (Path(out_dir) if Path(out_dir).is_dir() else Path(out_dir).parent)
    )
