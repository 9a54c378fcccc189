#!/usr/bin/env bash
# Reproduce the reference leaderboard (reference/chpc_autoresearch.yaml) through the local executor,
# one row after another, fast rows first. Safe to rerun: each row's ledger (jobs/ledger.yaml) skips
# finished seeds and resumes an interrupted one from its checkpoint.
#
#   scripts/reproduce-reference.sh [RUNS_DIR]    # default reports/runs/2026-12-07/reference
#
# Then: autoresearch fidelity --runs reports/runs --out reports/fidelity
#       autoresearch leaderboard --runs reports/runs --references reference --write README.md
# The SNN-CNN rows run 2 seeds here (about 1.5 h each on 2 cores); their 5-seed sweep is meant for
# the cluster: configs/cluster/ + `autoresearch submit`.
set -euo pipefail
cd "$(dirname "$0")/.."
runs_dir="${1:-reports/runs/2026-12-07/reference}"
bin=target/release/autoresearch
[ -x "$bin" ] || cargo build --release --locked --bin autoresearch

five_seeds=(
  mnist_ffnn_adam mnist_snn_ffnn_rate mnist_snn_ffnn_ttfs mnist_cnn_adam
  mnist_srnn_rate mnist_rnn_seq mnist_hybrid_rnn_rate mnist_hybrid_rnn_ttfs mnist_slstm_rate
  mnist_gru_seq mnist_lstm_seq mnist_hybrid_gru_rate mnist_hybrid_gru_ttfs
  mnist_hybrid_lstm_rate mnist_hybrid_lstm_ttfs
)
for experiment in "${five_seeds[@]}"; do
  "$bin" train -q --multirun --workers 1 "experiment=$experiment" "seed=range(0,5)" "runs_dir=$runs_dir"
done
for experiment in mnist_snn_cnn_rate mnist_snn_cnn_ttfs; do
  "$bin" train -q --multirun --workers 1 "experiment=$experiment" "seed=range(0,2)" "runs_dir=$runs_dir"
done
