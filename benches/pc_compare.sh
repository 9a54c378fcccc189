#!/usr/bin/env bash
# PC-FFNN v3 and PC-CNN v2, ours against the PyTorch twin, alternating in ROUNDS rounds on an idle
# machine; writes each side's output under OUT (default target/pc_compare). Ours: training
# samples/s = training images / `epoch_time_s` of history.csv (validation included); the twin
# prints its own. Needs PYTHON with torch (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/pc_compare}; ROUNDS=${ROUNDS:-2}; PYTHON=${PYTHON:-python3}
BIN=${AUTORESEARCH_BIN:-target/debug/autoresearch}
DATA=${DATA:-../shared/data/mnist}
mkdir -p "$OUT"
for round in $(seq 1 "$ROUNDS"); do
  "$BIN" train experiment=mnist_pc_ffnn_v3 epochs=2 runs_dir="$OUT/r$round" --quiet --force > /dev/null
  "$PYTHON" benches/torch_reference.py --model pc_ffnn_v3 --seeds 0 --epochs 2 --train-limit 13500 --data "$DATA" > "$OUT/twin_ffnn_r$round.txt"
  "$BIN" train experiment=mnist_pc_cnn_v2 epochs=2 data.limit=7000 runs_dir="$OUT/r$round" --quiet --force > /dev/null
  "$PYTHON" benches/torch_reference.py --model pc_cnn_v2 --seeds 0 --epochs 2 --train-limit 6300 --data "$DATA" > "$OUT/twin_cnn_r$round.txt"
done
for f in "$OUT"/r*/*/*/seed_0/history.csv; do echo "$f"; cut -d, -f1,5,7 "$f"; done
cat "$OUT"/twin_*.txt
