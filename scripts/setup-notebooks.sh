#!/usr/bin/env bash
# Installs what the notebooks need, each part only when missing (re-running takes seconds):
#   - evcxr_jupyter (the Rust Jupyter kernel) with `cargo install --locked` (about 13 min on
#     2 cores the first time; without --locked 0.22 does not build);
#   - Jupyter's execution tools (nbconvert, ipykernel, jupyter_client, nbformat) in a
#     project-local venv, .venv/;
#   - the kernel spec (`evcxr_jupyter --install`, kernel name `rust`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-rust.sh

EVCXR_VERSION=0.22.0
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

if ! cargo install --list | grep -q "^evcxr_jupyter v$EVCXR_VERSION:"; then
  echo "installing evcxr_jupyter $EVCXR_VERSION (cargo install --locked)..." >&2
  # opt-level 1: the kernel mostly waits for cargo, and it builds in a good part less time
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
    cargo install evcxr_jupyter --locked --version "$EVCXR_VERSION" --quiet
fi

if [ ! -x .venv/bin/jupyter-nbconvert ]; then
  if ! python3 -m venv .venv 2>/dev/null; then
    # Debian's python3 lacks ensurepip until python3-venv is installed
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo -n"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv .venv
  fi
  .venv/bin/pip install --quiet --disable-pip-version-check nbconvert ipykernel jupyter_client nbformat
fi

if ! .venv/bin/jupyter kernelspec list 2>/dev/null | grep -q '^ *rust '; then
  evcxr_jupyter --install >/dev/null
fi
echo "notebooks ready: evcxr_jupyter $EVCXR_VERSION, nbconvert $(.venv/bin/jupyter nbconvert --version), kernel 'rust'"
