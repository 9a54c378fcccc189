#!/usr/bin/env bash
# Measures the recurrent rows e-i of `autoresearch bench` against ../shared/bench/snntorch_baseline.py
# on this machine, alternating the two programs for ROUNDS rounds (run it on an idle machine).
# Writes torch_rN.json and ours_rN.json (with ratios) into OUT_DIR, then prints each row's
# median ratio and range over the rounds.
# Usage: benches/compare_rnn.sh OUT_DIR [PYTHON] [ROUNDS]   (PYTHON: torch + snntorch,
#        default /tmp/torchenv/bin/python; ROUNDS default 4)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: benches/compare_rnn.sh OUT_DIR [PYTHON] [ROUNDS]}
PY=${2:-/tmp/torchenv/bin/python}
ROUNDS=${3:-4}
SCRIPT=../shared/bench/snntorch_baseline.py
DATA=../shared/data/mnist
ROWS=e,f,g,h,i
mkdir -p "$OUT"
cargo build --release --locked --bin autoresearch
BIN=./target/release/autoresearch
for r in $(seq 1 "$ROUNDS"); do
  "$PY" "$SCRIPT" --data "$DATA" --train $ROWS --infer $ROWS --iters 20 --warmup 3 --json "$OUT/torch_r$r.json"
  "$BIN" bench --data "$DATA" --train $ROWS --infer $ROWS --iters 20 --warmup 3 \
    --baseline "$OUT/torch_r$r.json" --json "$OUT/ours_r$r.json"
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
runs = [json.load(open(f"{out}/ours_r{r}.json")) for r in range(1, rounds + 1)]
for mode in ("train", "infer"):
    for key in sorted(runs[0]["ratios"].get(mode, {})):
        v = [run["ratios"][mode][key] for run in runs]
        print(f"{mode} {key}: median {statistics.median(v):.2f}x (range {min(v):.2f}-{max(v):.2f}) over {len(v)} rounds")
PY
