#!/usr/bin/env bash
# Installs what is needed, builds, and trains the main job: mnist_ffnn_adam for 2 epochs on
# MNIST (54k train / 6k validation / 10k test). Extra arguments are passed on as overrides.
# The notebook kernel (scripts/setup-notebooks.sh) is set up alongside the build, and its builds
# are warmed (scripts/warm-notebooks.sh) so the first notebook cell compiles only the library.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-rust.sh
mkdir -p target
{ bash scripts/setup-notebooks.sh && bash scripts/warm-notebooks.sh; } > target/setup-notebooks.log 2>&1 &
setup_pid=$!
cargo build --locked
"${CARGO_TARGET_DIR:-target}/debug/autoresearch" train experiment=mnist_ffnn_adam seed=0 epochs=2 "$@"
echo "waiting for the notebook kernel set-up and warm-up (log: target/setup-notebooks.log)..." >&2
if ! wait "$setup_pid"; then
  cat target/setup-notebooks.log >&2
  exit 1
fi
tail -2 target/setup-notebooks.log
