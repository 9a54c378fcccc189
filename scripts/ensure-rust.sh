#!/usr/bin/env bash
# Sourced by the other scripts: makes sure a Rust toolchain (with clippy and rustfmt) is on PATH,
# installing it with rustup when missing. Nothing else is needed: data comes from ../shared/data
# or the user cache.
set -euo pipefail
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
  else
    echo "installing the Rust toolchain with rustup..." >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
  fi
fi
if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
fi
# the crate needs Rust 1.89 or newer (rust-version in Cargo.toml)
minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "${minor:-0}" -lt 89 ] && command -v rustup >/dev/null 2>&1; then
  echo "updating Rust (found $(rustc --version), need 1.89+)..." >&2
  rustup update stable
fi
