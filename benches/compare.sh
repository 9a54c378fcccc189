#!/usr/bin/env bash
# Measures `autoresearch bench` against ../shared/bench/snntorch_baseline.py on this machine,
# alternating the two programs (run it on an idle machine). Writes torch_*.json and ours_*.json
# (with ratios) into OUT_DIR.
# Usage: benches/compare.sh OUT_DIR [PYTHON]   (PYTHON: a python with torch + snntorch,
#        default /tmp/torchenv/bin/python, set up as ../shared/bench/README.md says)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: benches/compare.sh OUT_DIR [PYTHON]}
PY=${2:-/tmp/torchenv/bin/python}
SCRIPT=../shared/bench/snntorch_baseline.py
DATA=../shared/data/mnist
mkdir -p "$OUT"
cargo build --release --locked --bin autoresearch
BIN=./target/release/autoresearch
"$PY" "$SCRIPT" --data "$DATA" --train a,b,c --infer a,b,c --json "$OUT/torch_abc.json"
"$BIN" bench --data "$DATA" --train a,b,c --infer a,b,c --baseline "$OUT/torch_abc.json" --json "$OUT/ours_abc.json"
# SNN-CNN is slow in the reference: fewer batches per timing
"$PY" "$SCRIPT" --data "$DATA" --train d --infer d --iters 20 --warmup 3 --json "$OUT/torch_d.json"
"$BIN" bench --data "$DATA" --train d --infer d --iters 20 --warmup 3 --baseline "$OUT/torch_d.json" --json "$OUT/ours_d.json"
