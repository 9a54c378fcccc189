#!/usr/bin/env bash
# Installs what is needed, builds, and trains the main job: mnist_ffnn_adam for 2 epochs on
# MNIST (54k train / 6k validation / 10k test). Extra arguments are passed on as overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-rust.sh
cargo build --locked
./target/debug/autoresearch train experiment=mnist_ffnn_adam seed=0 epochs=2 "$@"
