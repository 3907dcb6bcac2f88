"""bench/summarise.py: a peer evaluated apart (torch-pruning) joins the run's seeds and is paired with awn."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import summarise  # noqa: E402


def _report(methods: dict[str, str], dense: float = 0.8) -> dict:
    """A report with one row per method at width 0.5 and its per-example correctness bits."""
    rows = [
        {"method": m, "width_fraction": 0.5, "value": bits.count("1") / len(bits), "flops_ratio": 0.7}
        for m, bits in methods.items()
    ]
    return {
        "model": "m",
        "task": "text-classification",
        "num_eval_examples": 8,
        "device": {"name": "cpu", "threads": 2},
        "metric": {"name": "accuracy", "higher_is_better": True},
        "dense": {"value": dense},
        "rows": rows,
        "costs": {m: {"evaluate_s": 1.0} for m in methods},
        "per_example_correct": {f"{m}@0.5": bits for m, bits in methods.items()},
    }


def _write(folder: Path, seed: int, report: dict) -> None:
    (folder / f"seed-{seed}").mkdir(parents=True)
    (folder / f"seed-{seed}" / "report.json").write_text(json.dumps(report))


def test_a_peer_from_another_folder_is_paired_with_awn(tmp_path):
    run, extra = tmp_path / "run", tmp_path / "tp"
    _write(run, 0, _report({"awn": "11111110", "wina": "11110000", "taylor": "11100000"}))
    _write(extra, 0, _report({"torch-pruning": "11000000"}))
    text = summarise.summarise(run, extra)
    assert "| torch-pruning | 25.00 |" in text
    table = text.split("awn − each method")[1]
    header = next(line for line in table.splitlines() if line.startswith("| width"))
    assert header.split("|")[2:-1] == [" wina ", " taylor ", " torch-pruning "]
    row = next(line for line in table.splitlines() if line.startswith("| 0.5"))
    assert row.split("|")[4].strip().startswith("+62.50")  # 7/8 − 2/8, paired


def test_reports_of_another_run_are_refused(tmp_path):
    run, extra = tmp_path / "run", tmp_path / "tp"
    _write(run, 0, _report({"awn": "11111110", "wina": "11110000"}))
    _write(extra, 0, _report({"torch-pruning": "11000000"}, dense=0.7))
    with pytest.raises(SystemExit, match="same dense model"):
        summarise.summarise(run, extra)


def test_perplexity_gaps_are_paired_over_windows(tmp_path):
    run = tmp_path / "run"
    nll = {"awn": [2.00, 3.00, 4.00, 5.00], "wina+finetune": [2.02, 3.03, 4.01, 5.02], "flap+finetune": [1.9] * 4}
    report = _report({m: "1111" for m in nll})
    report["metric"] = {"name": "perplexity", "higher_is_better": False}
    report["per_example_correct"] = None
    report["per_example_nll"] = {f"{m}@0.5": v for m, v in nll.items()}
    _write(run, 0, report)
    text = summarise.summarise(run)
    assert "% of perplexity" in text
    row = next(line for line in text.split("awn − each method")[1].splitlines() if line.startswith("| 0.5"))
    # awn − wina+finetune: per-window differences −0.02, −0.03, −0.01, −0.02: mean −2.00 %, sd 0.816 %, SE 0.408 %
    assert row.split("|")[2].strip() == "-2.00 ± 0.82*"


def test_compare_runs_pairs_two_settings_by_window_for_a_causal_lm(tmp_path):
    """bench/compare_runs.py: two runs of awn (two settings, one seed) paired over the same windows."""
    import subprocess

    folders = []
    for name, awn in (("new", [1.98, 2.97, 3.99, 4.98]), ("old", [2.00, 3.00, 4.00, 5.00])):
        report = _report({"awn": "1111"})
        report["per_example_correct"] = None
        report["per_example_nll"] = {"dense": [1.0, 1.0, 1.0, 1.0], "awn@0.5": awn}
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps(report))
        folders.append(tmp_path / name)
    argv = [sys.executable, str(BENCH / "compare_runs.py"), "--a", str(folders[0]), "--b", str(folders[1])]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    # differences −0.02, −0.03, −0.01, −0.02: mean −2.00 %, SE 0.408 %
    assert out.strip() == "0.5: -2.00 ± 0.82*"
    # Another method's rows of --a against --b's awn rows (two cuts of one run).
    cut = json.loads((folders[0] / "report.json").read_text())
    cut["per_example_nll"] = {"dense": [1.0] * 4, "awn-flap@0.5": cut["per_example_nll"]["awn@0.5"]}
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "report.json").write_text(json.dumps(cut))
    both = [*argv[:3], str(tmp_path / "cut"), "--method", "awn-flap", "--b", str(folders[1]), "--method-b", "awn"]
    assert subprocess.run(both, capture_output=True, text=True, check=True).stdout.strip() == "0.5: -2.00 ± 0.82*"
    assert subprocess.run(both[:-2], capture_output=True, text=True, check=True).stdout.strip() == ""
    report = json.loads((folders[1] / "report.json").read_text())
    report["per_example_nll"]["dense"] = [1.0, 1.0, 1.0, 2.0]  # another seed's windows
    (folders[1] / "report.json").write_text(json.dumps(report))
    refused = subprocess.run(argv, capture_output=True, text=True)
    assert refused.returncode != 0 and "scored different evaluation examples" in refused.stderr
