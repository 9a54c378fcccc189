#!/usr/bin/env bash
# Builds the CUDA binary (release, cargo feature `cuda`) on a machine with the CUDA toolkit:
#   scripts/build-cuda.sh              # on a GPU node: the compute capability is read from nvidia-smi
#   CUDA_COMPUTE_CAP=70 scripts/build-cuda.sh   # on a login node without a GPU (70: V100, 80: A100, 90: H100)
# Needs nvcc (a CUDA toolkit 11.8 or newer, e.g. `module load` one on a cluster) and a C++
# compiler; candle compiles its CUDA kernels with them. The binary lands in
# target/release/autoresearch, and `autoresearch --version` ends in "(cuda build)".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-rust.sh
if ! command -v nvcc >/dev/null 2>&1; then
  echo "error: nvcc not found: load a CUDA toolkit first (on CHPC: \`module avail chpc/cuda\`, then \`module load\` one), or add its bin/ to PATH" >&2
  exit 1
fi
if [ -z "${CUDA_COMPUTE_CAP:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 &&
    cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .') &&
    [ -n "$cap" ]; then
    export CUDA_COMPUTE_CAP="$cap"
  else
    echo "error: no GPU visible to nvidia-smi here; set CUDA_COMPUTE_CAP to the GPUs' compute capability (70: V100, 80: A100, 90: H100)" >&2
    exit 1
  fi
fi
echo "nvcc: $(nvcc --version | tail -1); compute capability $CUDA_COMPUTE_CAP" >&2
cargo build --release --locked --features cuda
bin=target/release/autoresearch
version=$("$bin" --version 2>&1 || true)
case "$version" in
  *"(cuda build)"*) echo "built $bin: $version" ;;
  *) echo "error: $bin does not report a CUDA build (--version: $version)" >&2; exit 1 ;;
esac
