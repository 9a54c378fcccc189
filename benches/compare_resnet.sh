#!/usr/bin/env bash
# ResNet-18-CIFAR training and inference images/s, ours against PyTorch on this machine's CPU,
# alternating the two programs for ROUNDS rounds (run it on an idle machine). Writes
# torch_r<W>_<i>.json and ours_r<W>_<i>.json (with ratios) into OUT_DIR.
# Usage: benches/compare_resnet.sh OUT_DIR [WIDTH [ROUNDS [ITERS [PYTHON]]]]
#        WIDTH 64 is the real network (16: a 16x cheaper one); PYTHON needs torch.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: benches/compare_resnet.sh OUT_DIR [WIDTH [ROUNDS [ITERS [PYTHON]]]]}
WIDTH=${2:-64}
ROUNDS=${3:-2}
ITERS=${4:-5}
PY=${5:-/tmp/torchenv/bin/python}
mkdir -p "$OUT"
cargo build --release --locked --bin autoresearch
BIN=./target/release/autoresearch
for i in $(seq 1 "$ROUNDS"); do
  "$PY" benches/torch_reference.py --model resnet18_cifar --width "$WIDTH" --threads 2 \
    --warmup 2 --iters "$ITERS" --repeats 3 --json "$OUT/torch_r${WIDTH}_$i.json" > /dev/null
  "$BIN" bench --train r --infer r --resnet-width "$WIDTH" --warmup 2 --iters "$ITERS" \
    --repeats 3 --baseline "$OUT/torch_r${WIDTH}_$i.json" --json "$OUT/ours_r${WIDTH}_$i.json"
done
