#!/usr/bin/env bash
# The test command (CI runs exactly this): formatting, clippy lints (no unwrap/expect/panic in
# library code), then every unit and integration test on real MNIST slices. The cluster tests
# need Slurm, munge and sshd: installed here with apt-get when missing (they run on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-rust.sh
cargo fmt --all -- --check
cargo clippy --locked --workspace --lib --bins -- -D warnings
bash tests/cluster/testbed.sh install ||
  echo "warning: could not install the cluster testbed packages; the cluster end-to-end test will fail" >&2
cargo test --locked --workspace
