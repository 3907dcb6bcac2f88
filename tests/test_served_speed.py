"""Speed where exports are served: round-robin timing, the rows (speed-up, FLOP and byte ratios) of
ONNX files in onnxruntime and GGUF files in llama.cpp, and a convert run's report holding them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import zoo
from conftest import save_tiny_bert, write_reviews
from typer.testing import CliRunner

from awncompress.checkpoint.export import export_nested
from awncompress.checkpoint.load import load_pretrained
from awncompress.cli import app
from awncompress.evaluate.latency import round_robin
from awncompress.evaluate.served_speed import ServedSpeedConfig, served_speed
from awncompress.model.flops import count_flops
from awncompress.report.markdown import speed_table
from awncompress.report.plot import curve_png
from awncompress.serve.export import export_served

runner = CliRunner()


def test_round_robin_runs_each_pass_warmup_plus_repeats_times_in_rotating_order():
    calls = []
    passes = {k: (lambda k=k: calls.append(k)) for k in "abc"}
    times = round_robin(passes, warmup=2, repeats=3)
    assert calls[:6] == list("aabbcc")  # warm-ups first, each pass's together
    assert calls[6:] == list("abc") + list("bca") + list("cab")  # then rounds, the start rotating
    assert all(len(ts) == 3 and ts == sorted(ts) for ts in times.values())


def _bert(tmp_path):
    nested = export_nested(zoo.make_model("bert"), tmp_path / "nested", widths=[0.5])
    model = load_pretrained(nested)
    folders = {
        "dense": export_served(model, tmp_path / "s", 1.0, "onnx"),
        "half": export_served(model, tmp_path / "s", 0.5, "onnx"),
    }
    return model, folders


def test_onnx_rows_hold_speedup_flops_and_bytes_ratios_against_the_full_width_file(tmp_path):
    model, folders = _bert(tmp_path)
    cfg = ServedSpeedConfig(repeats=3, batches=(1, 4), seq_len=16)
    served = served_speed(model, folders, cfg)
    rows = {(r["export"], r["measure"]): r for r in served["rows"]}
    assert set(rows) == {(e, f"batch {b} × 16 tokens") for e in ("dense", "half") for b in (1, 4)}
    dense, half = rows[("dense", "batch 4 × 16 tokens")], rows[("half", "batch 4 × 16 tokens")]
    assert dense["speedup"] == 1.0 and dense["flops_ratio"] == 1.0 and dense["bytes_ratio"] == 1.0
    d_ff = model.config.intermediate_size
    want = count_flops(model, 16, [d_ff // 2] * 2).total / count_flops(model, 16, [d_ff] * 2).total
    assert half["flops_ratio"] == pytest.approx(want, abs=1e-4) and half["intermediate_size"] == d_ff // 2
    sizes = {k: (f / "model.onnx").stat().st_size for k, f in folders.items()}
    assert half["bytes_ratio"] == pytest.approx(sizes["half"] / sizes["dense"], abs=1e-4) and half["bytes_ratio"] < 1
    assert half["speedup"] == pytest.approx(dense["median_ms"] / half["median_ms"], rel=1e-3)
    assert half["p10_ms"] <= half["median_ms"] == half["value"] <= half["p90_ms"] and half["unit"] == "ms"
    assert served["config"]["runtimes"]["onnxruntime"] and served["config"]["repeats"] == 3
    table = "\n".join(speed_table(served))
    assert "Speed where it is served" in table and table.count("| onnxruntime |") == 4


def test_without_a_full_width_file_rows_have_no_speedup(tmp_path):
    model, folders = _bert(tmp_path)
    served = served_speed(model, {"half": folders["half"]}, ServedSpeedConfig(repeats=1, batches=(1,), seq_len=8))
    (row,) = served["rows"]
    assert "speedup" not in row and row["value"] > 0
    assert "| — |" in "\n".join(speed_table(served))


def test_gguf_rows_count_the_lm_head_once_per_prompt_and_report_tokens_per_second(tmp_path):
    tree = os.environ.get("AWNCOMPRESS_LLAMA_CPP")
    if not tree:
        pytest.skip("set AWNCOMPRESS_LLAMA_CPP to a llama.cpp source tree (.ci/run does)")
    raw, tokenizer = zoo.llama_with_tokenizer(intermediate_size=512, widen=False)
    model = load_pretrained(export_nested(raw, tmp_path / "nested", widths=[0.5], tokenizer=tokenizer))
    kw = dict(quant="f16", tokenizer=tokenizer, llama_cpp=Path(tree))
    folders = {w: export_served(model, tmp_path / "g", w, "gguf", **kw) for w in (1.0, 0.5)}
    served = served_speed(model, {"dense": folders[1.0], "half": folders[0.5]}, ServedSpeedConfig(repeats=2))
    limit = model.config.max_position_embeddings  # 512 + 128 tokens do not fit: scaled to the positions
    assert served["config"]["prompt_tokens"] == limit * 3 // 4 and served["config"]["runtimes"]["llama.cpp"]
    rows = {(r["export"], r["measure"].split()[0]): r for r in served["rows"]}
    prompt, gen = rows[("half", "prompt")], rows[("half", "generate")]
    n_prompt, n_gen = int(prompt["measure"].split()[1]), int(gen["measure"].split()[1])
    assert n_prompt == limit * 3 // 4 and n_gen == limit - n_prompt
    full, cut = count_flops(model, n_prompt, [512, 512]), count_flops(model, n_prompt, [256, 256])
    head_once = [c.total - c.head + c.head / n_prompt for c in (cut, full)]
    assert prompt["flops_ratio"] == pytest.approx(head_once[0] / head_once[1], abs=1e-4)
    assert prompt["value"] == pytest.approx(n_prompt / (prompt["median_ms"] / 1000), rel=1e-3)
    assert prompt["unit"] == "tokens/s" and gen["bytes_ratio"] < 1 and rows[("dense", "generate")]["speedup"] == 1.0


def test_convert_with_onnx_reports_the_served_speed(tmp_path):
    model = save_tiny_bert(tmp_path / "model", with_head=False)
    data = write_reviews(tmp_path / "reviews.csv", 48)
    out = tmp_path / "out"
    args = ["convert", str(model), "--data", str(data), "--widths", "0.5", "--formats", "hf,onnx", "--quiet"]
    args += [
        "--steps",
        "2",
        "--dense-steps",
        "2",
        "--set",
        "evaluate.methods=awn",
        "--set",
        "evaluate.latency_repeats=2",
    ]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "report.json").read_text())
    rows = record["served"]["rows"]
    assert {(r["export"], r["runtime"]) for r in rows} == {("dense", "onnxruntime"), ("width-0.5-onnx", "onnxruntime")}
    assert record["served"]["config"]["repeats"] == 2 and "served-speed" in record["costs"]
    assert "Speed where it is served" in (out / "report.md").read_text()
    assert not [p.name for p in out.iterdir() if "served-reference" in p.name]  # the full-width file is gone
    assert curve_png(record)[:4] == b"\x89PNG"
