"""`awncompress inspect`, `export` and `score`: look into, cut and score checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import AwnError
from .app import app
from .common import friendly_errors, llama_cpp_option, parse_widths, quant_option, quiet_libraries


@app.command(no_args_is_help=True)
def inspect(path: Path = typer.Argument(..., help="An export folder (nested, uniform or per-layer).")) -> None:
    """Show an export's widths and, for nested exports, the learned per-layer profile.

    Example:

      awncompress inspect awn-demo/nested
    """
    with friendly_errors():
        from ..checkpoint.provenance import read_provenance

        record = read_provenance(path)
    typer.echo(
        f"{path}: {record['format']} export of {record.get('source_model')} ({record.get('model_type', '?')}), "
        f"d_ff {record['d_ff']}"
    )
    typer.echo(f"layer widths: {record['layer_widths']}")
    if record.get("layer_heads"):
        typer.echo(
            f"attention heads: {record['layer_heads']} of {record['full_heads']} "
            f"(loads with {record.get('loads_with', 'awncompress')})"
            + (f"; FLOP target {record['flops_target']:g}" if record.get("flops_target") else "")
        )
    profile = record.get("profile")
    if profile and profile.get("active_widths"):
        typer.echo(f"learned profile (k = {profile.get('k', '?')}):")
        typer.echo("  layer  rate·d_ff  active width")
        rates = profile.get("normalised_rates") or [float("nan")] * len(profile["active_widths"])
        for i, (rate, width) in enumerate(zip(rates, profile["active_widths"])):
            typer.echo(f"  {i:5d}  {rate:9.3f}  {width:6d} ({width / record['d_ff']:.0%})")
    if record.get("width_table"):
        typer.echo("width table: " + json.dumps(record["width_table"]))


@app.command("export", no_args_is_help=True)
def export_cmd(
    nested: Path = typer.Argument(..., help="A nested export folder."),
    widths: Optional[str] = typer.Option(None, help="Width fractions to materialise, e.g. 0.3,0.6."),
    learned: bool = typer.Option(False, help="Also write the learned per-layer widths as a per-layer export."),
    multiple: Optional[int] = typer.Option(
        None, min=1, max=1 << 20, help="Round widths to a multiple of this (e.g. 64)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write width-<w>/ (and per-layer/) into."),
    fmt: str = typer.Option(
        "hf",
        "--format",
        "-f",
        help="hf (transformers), onnx (onnxruntime), gguf (llama.cpp) or vllm (--learned only).",
    ),
    quant: Optional[str] = quant_option("GGUF only: f16 (default), f32, q8_0 or q4_k_m."),
    llama_cpp: Optional[Path] = llama_cpp_option(
        "GGUF only: a llama.cpp source tree (convert_hf_to_gguf.py, conversion/, gguf-py/) whose converter runs."
    ),
    overwrite: bool = typer.Option(False, help="Replace existing width folders."),
) -> None:
    """Materialise uniform (and per-layer) exports from a nested checkpoint, for transformers, onnxruntime
    or llama.cpp. ONNX and GGUF files are run in their engine and compared with the transformers export
    before they are written.

    Examples:

      awncompress export awn-demo/nested --widths 0.3,0.6 --out more-widths

      awncompress export awn-demo/nested --learned --out learned

      awncompress export awn-demo/nested --widths 0.5 --format onnx --out served     # served/width-0.5-onnx/

      export AWNCOMPRESS_LLAMA_CPP=llama_cpp_python-0.3.36/vendor/llama.cpp   # see README, "Serve it"

      awncompress export smol/nested --widths 0.5 --format gguf --quant q4_k_m --multiple 256 --out served

      awncompress export smol/nested --learned --format vllm --multiple 256 --out served
      # vllm serve served/per-layer-vllm --trust-remote-code
    """
    parsed = parse_widths(widths) or []
    if not parsed and not learned:
        raise typer.BadParameter("give --widths and/or --learned")
    quiet_libraries(True)
    with friendly_errors():
        from ..files.lock import run_lock
        from ..serve.formats import check_quant, parse_formats

        (fmt,) = parse_formats([fmt])
        quant = check_quant(quant, fmt)
        with run_lock(out):
            written = _export(nested, parsed, learned, multiple, out, overwrite, fmt, quant, llama_cpp)
    typer.echo("wrote " + ", ".join(str(p) for p in written))


def _export(
    nested: Path,
    widths: list,
    learned: bool,
    multiple: Optional[int],
    out: Path,
    overwrite: bool,
    fmt: str = "hf",
    quant: Optional[str] = None,
    llama_cpp: Optional[Path] = None,
) -> list:
    """The exports `awncompress export` writes; none of them may replace or lie inside ``nested``."""
    from ..checkpoint.export import export_per_layer, export_uniform, is_export
    from ..checkpoint.layout import width_dir, width_key
    from ..checkpoint.load import load_pretrained
    from ..checkpoint.provenance import layer_caps, read_provenance
    from ..files.atomic import check_writable
    from ..files.paths import check_apart
    from ..serve.formats import check_applies, require_for, served_dir

    record = read_provenance(nested)
    if record["format"] != "nested":
        raise AwnError(f"{nested} is a {record['format']} export; `export` needs a nested one")
    check_applies(fmt, record.get("model_type"), record.get("architecture"))
    require_for(fmt)
    widths_learned = (record.get("profile") or {}).get("active_widths")
    if learned and not widths_learned:
        raise AwnError(f"{nested} records no learned per-layer widths")
    per_layer = served_dir(out, "", fmt, quant, prefix="per-layer") if learned else None
    targets = [served_dir(out, width_key(w), fmt, quant) for w in widths] + ([per_layer] if learned else [])
    for target in targets:  # every target checked before the first is written
        check_apart(target, [nested], "the export")
        check_writable(target, overwrite, is_export)
    tokenizer = _tokenizer_or_none(nested)
    if fmt != "hf":
        learned_to = (per_layer, rounded(widths_learned, multiple, layer_caps(record))) if learned else None
        return _export_served(
            nested, record, widths, learned_to, multiple, out, overwrite, fmt, quant, llama_cpp, tokenizer
        )
    model = load_pretrained(nested)
    source = record.get("source_model")
    written = [
        export_uniform(
            model, width_dir(out, w), w, tokenizer=tokenizer, source=source, multiple=multiple, overwrite=overwrite
        )
        for w in widths
    ]
    if learned:
        written.append(
            export_per_layer(
                model, out / "per-layer", widths_learned, tokenizer=tokenizer, source=source, overwrite=overwrite
            )
        )
    return written


def rounded(widths: list, multiple: Optional[int], caps: list[int]) -> list:
    """Learned per-layer widths rounded to ``multiple`` (never below one multiple, never above each
    layer's width ``caps``)."""
    from ..model.surgery import round_width

    return [round_width(w, cap, multiple) if multiple else int(w) for w, cap in zip(widths, caps)]


def _export_served(
    nested: Path,
    record: dict,
    widths: list,
    learned_to: Optional[tuple],
    multiple: Optional[int],
    out: Path,
    overwrite: bool,
    fmt: str,
    quant: Optional[str],
    llama_cpp: Optional[Path],
    tokenizer,
) -> list:
    """ONNX or GGUF exports, one per width (and ``learned_to``: (folder, per-layer widths)), each checked
    in its engine before it is renamed into place."""
    import transformers

    from ..checkpoint.load import load_pretrained
    from ..serve.deci import DECI_ARCHITECTURE, check_deci, check_deci_tokenizer
    from ..serve.export import export_served

    if fmt == "gguf":
        from ..serve.llama_cpp import check_tree_for

        if widths:
            llama_cpp = check_tree_for(llama_cpp, record.get("architecture"), tokenizer is not None)
        if learned_to:  # a per-layer GGUF is llama.cpp's DECI architecture: its limits, before anything is loaded
            config = transformers.AutoConfig.from_pretrained(nested)
            check_deci(config, learned_to[1])
            check_deci_tokenizer(tokenizer, int(config.vocab_size))
            llama_cpp = check_tree_for(llama_cpp, DECI_ARCHITECTURE, tokenizer is not None)
    model = load_pretrained(nested)
    source = record.get("source_model")
    kwargs = dict(quant=quant, tokenizer=tokenizer, source=source, multiple=multiple, overwrite=overwrite)
    written = [export_served(model, out, w, fmt, llama_cpp=llama_cpp, **kwargs) for w in tqdm_widths(widths, fmt)]
    if learned_to:
        folder, per_layer = learned_to
        written.append(export_served(model, out, per_layer, fmt, llama_cpp=llama_cpp, folder=folder, **kwargs))
    return written


def tqdm_widths(widths: list, fmt: str):
    from tqdm.auto import tqdm

    return tqdm(widths, desc=f"{fmt} exports (export, run, compare)", unit="width", disable=None)


def _tokenizer_or_none(folder: Path):
    import transformers

    try:
        return transformers.AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError):
        return None


@app.command(no_args_is_help=True)
def score(
    model: str = typer.Argument(..., help="A local model folder, a Hub id or builtin:NAME."),
    data: str = typer.Option(..., help="Calibration data (same forms as convert --data)."),
    task: str = typer.Option("text-classification", help="text-classification or causal-lm."),
    scorer: List[str] = typer.Option(["wina"], help="wina, activation, magnitude or random (repeatable)."),
    text_column: str = typer.Option("text", help="Column with the text."),
    batches: int = typer.Option(8, min=1, max=100000, help="Calibration batches."),
    batch_size: int = typer.Option(32, min=1, max=65536, help="Calibration batch size."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Write the scores as safetensors (layer.<i>.<scorer>)."
    ),
    overwrite: bool = typer.Option(False, help="Replace --out if it exists."),
) -> None:
    """Score every FFN neuron of a model and show how concentrated importance is per layer.

    For each layer: the share of the total score held by the top 12.5 / 25 / 50 % of neurons
    (higher = truncation by this score loses less).

    Examples:

      awncompress score ./my-model --data train.csv

      awncompress score builtin:minilm --data builtin:rotten-tomatoes --scorer wina --scorer magnitude \\
          --out scores.safetensors
    """
    quiet_libraries(True)
    with friendly_errors():
        from ..files.lock import run_lock

        if out is None:
            _score(model, data, task, scorer, text_column, batches, batch_size, None)
            return
        _check_score_out(out, overwrite, model, data)
        with run_lock(out):
            _check_score_out(out, overwrite, model, data)  # again, now that no other command writes it
            _score(model, data, task, scorer, text_column, batches, batch_size, out)
        typer.echo(f"wrote {out}")


SCORES_MARK = {"written_by": "awncompress score"}


def _is_scores_file(path: Path) -> bool:
    """Whether ``path`` is a scores file `awncompress score` wrote (its safetensors header says so)."""
    from ..files.readers import read_bytes

    try:
        head = read_bytes(path, "scores file", limit=1 << 30)[: 1 << 20]
        size = int.from_bytes(head[:8], "little")
        meta = json.loads(head[8 : 8 + size]).get("__metadata__") or {}
    except (AwnError, OSError, ValueError, AttributeError):
        return False
    return meta.get("written_by") == SCORES_MARK["written_by"]


def _check_score_out(out: Path, overwrite: bool, model: str, data: str) -> None:
    """--out may be written: not an input of this command, not a link/FIFO/device/folder, and an
    existing file only with --overwrite when `awncompress score` wrote it."""
    from ..data.sources import classify_source
    from ..errors import DataError
    from ..files.atomic import check_file_writable
    from ..files.paths import check_apart

    inputs = [Path(model).expanduser()] if Path(model).expanduser().exists() else []
    try:
        source = classify_source(data)
        inputs += [Path(source.name)] if source.kind == "file" else []
    except DataError:
        pass
    check_apart(out, inputs, "the scores")
    check_file_writable(out, overwrite, _is_scores_file)


def _score(
    model: str,
    data: str,
    task: str,
    scorer: List[str],
    text_column: str,
    batches: int,
    batch_size: int,
    out: Optional[Path],
) -> None:
    from safetensors.torch import save

    from ..data.tokenized import DataConfig, load_task_data
    from ..files.atomic import atomic_write
    from ..model.families import find_ffns
    from ..model.scorers import get_scorer
    from ..model.scoring import score_neurons
    from ..run.bundle import calibration_batches, load_model

    for name in scorer:
        get_scorer(name)
    loaded, tokenizer, _ = load_model(model, task)
    task_data = load_task_data(DataConfig(task=task, train=data, text_column=text_column), tokenizer)
    calibration = calibration_batches(task_data, batches, batch_size)
    blocks = find_ffns(loaded)
    tensors = {}
    for name in scorer:
        scores = score_neurons(loaded, blocks, name, calibration)
        typer.echo(f"{name}: share of the total score in the top 12.5 / 25 / 50 % of neurons")
        for i, s in enumerate(scores):
            ranked = s.clamp_min(0).sort(descending=True).values
            total = float(ranked.sum()) or 1.0
            shares = [float(ranked[: max(1, round(f * len(ranked)))].sum()) / total for f in (0.125, 0.25, 0.5)]
            typer.echo(f"  layer {i:2d}: " + " / ".join(f"{x:.0%}" for x in shares))
            tensors[f"layer.{i}.{name}"] = s.contiguous()
    if out is not None:
        atomic_write(out, save(tensors, metadata=SCORES_MARK))
