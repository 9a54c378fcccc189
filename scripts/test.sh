#!/usr/bin/env bash
# The test command (CI runs exactly this): formatting, clippy lints (no unwrap/expect/panic in
# library code), every unit and integration test on real MNIST slices, then every notebook
# executed headless on the Rust kernel.
# - The cluster tests need Slurm, munge and sshd: installed with apt-get when missing (they run
#   on loopback only).
# - The notebook kernel (evcxr_jupyter, a .venv with nbconvert) is set up in the background
#   while the Rust tests build and run; the first time that is a ~13 min cargo install.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-rust.sh
mkdir -p target
bash scripts/setup-notebooks.sh > target/setup-notebooks.log 2>&1 &
setup_pid=$!
cargo fmt --all -- --check
cargo clippy --locked --workspace --lib --bins -- -D warnings
bash tests/cluster/testbed.sh install ||
  echo "warning: could not install the cluster testbed packages; the cluster end-to-end test will fail" >&2
cargo test --locked --workspace

if ! wait "$setup_pid"; then
  cat target/setup-notebooks.log >&2
  echo "error: the notebook kernel set-up failed (log above)" >&2
  exit 1
fi
tail -1 target/setup-notebooks.log
# notebook 04 submits to the test cluster: start it for the notebooks, stop it after
testbed=$(mktemp -d)
trap 'bash tests/cluster/testbed.sh stop "$testbed" >/dev/null 2>&1 || true' EXIT
bash tests/cluster/testbed.sh start "$testbed" >/dev/null
bin="$(realpath "${CARGO_TARGET_DIR:-target}/debug/autoresearch")"
AUTORESEARCH_BIN="$bin" AUTORESEARCH_TESTBED="$testbed" "$bin" notebooks run --opt-level 1
