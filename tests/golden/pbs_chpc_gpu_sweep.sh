#!/bin/bash
#PBS -N mnist_snn_ffnn_rate
#PBS -q gpu_1
#PBS -P CSCI1234
#PBS -l select=1:ncpus=4:mem=8gb:ngpus=1
#PBS -l walltime=01:48:00
#PBS -J 0-1
#PBS -j oe
#PBS -o /mnt/lustre/users/jdoe/autoresearch/logs/mnist_snn_ffnn_rate.^array_index^.out
#PBS -m a
#PBS -M jdoe@example.org
# written by autoresearch 0.1.0: 2 run(s), walltime 01:48:00 (1 x 01:30:00 x 1.2, queue max 48:00:00)
set -euo pipefail
module load chpc/cuda/12.1
export OMP_NUM_THREADS=10
# tensor threads: the cores asked for, not every core of a shared node (env above may say otherwise)
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-4}"
cd "/mnt/lustre/users/jdoe/autoresearch"
# a GPU job: stop unless the binary is a CUDA build (a CPU build would hold the GPU and train on the CPU)
ar_binary=/mnt/lustre/users/jdoe/autoresearch/bin/autoresearch
ar_version=$("$ar_binary" --version 2>&1) || true
if ! grep -q '(cuda[ ]build)' <<< "$ar_version"; then
  echo "autoresearch: $ar_binary is not a CUDA build that starts on this node (--version: $ar_version); build it with scripts/build-cuda.sh on a node with the CUDA toolkit and list the toolkit's module in the profile's modules" >&2
  exit 1
fi
commands=(
  '/mnt/lustre/users/jdoe/autoresearch/bin/autoresearch train --quiet experiment=mnist_snn_ffnn_rate seed=0 device=cuda'
  '/mnt/lustre/users/jdoe/autoresearch/bin/autoresearch train --quiet experiment=mnist_snn_ffnn_rate seed=1 device=cuda'
)
eval "${commands[$PBS_ARRAY_INDEX]}"
