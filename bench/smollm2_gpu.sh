#!/usr/bin/env bash
# Benchmark 2 on a GPU at a realistic budget (issue 13): SmolLM2-135M on Jane Austen, bf16 training,
# 200 steps of 16 × 64-token windows, the same five widths, evaluation windows and methods as the
# CPU run (bench/smollm2_jane_austen.py), and latency at batch 32 × 256 tokens on the GPU.
#
#   bash bench/smollm2_gpu.sh RUNS_DIR SEED [COPY_TO]
#
# For a machine without PyPI (a lent GPU with no network), before the first call:
#   AWNCOMPRESS_CACHE must hold smollm2-135m-instruct/ and janeaustenr/, e.g. built with
#   python -c "from awncompress.data.assets import model_from_gguf; ..." from a copied GGUF file.
# COPY_TO (optional) gets report.json, report.md and curve.png of the seed, prefixed seed<N>-.
set -euo pipefail
runs=$1 seed=$2 copy_to=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
python3 "$here/smollm2_jane_austen.py" --out "$runs" --seeds "$seed" \
  --set train.steps=200 --set train.batch_size=16 --set train.lr=1e-4 --set train.warmup_steps=20 \
  --set train.mixed_precision=bf16 --set train.checkpoint_every=0 --set data.max_train_examples=16000 \
  --set evaluate.latency_batch_size=32 --set evaluate.latency_seq_len=256 --set evaluate.latency_repeats=20 \
  --set train.full_width_pass=true   # what seed 0 of BENCHMARKS.md §2b ran with; later seeds must match
if [ -n "$copy_to" ]; then
  mkdir -p "$copy_to"
  for f in report.json report.md curve.png recipe.yaml; do
    cp "$runs/seed-$seed/$f" "$copy_to/seed$seed-$f"
  done
fi
