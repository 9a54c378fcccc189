#!/usr/bin/env bash
# The test command (CI runs exactly this): formatting, clippy lints (no unwrap/expect/panic in
# library code), then every unit and integration test on real MNIST slices.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-rust.sh
cargo fmt --all -- --check
cargo clippy --locked --workspace --lib --bins -- -D warnings
cargo test --locked --workspace
