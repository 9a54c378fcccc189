#!/bin/bash
#PBS -N snn_ffnn_rate
#PBS -q serial
#PBS -P CSCI1234
#PBS -l select=1:ncpus=10:mem=40gb
#PBS -l walltime=05:24:00
#PBS -j oe
#PBS -o /mnt/lustre/users/jdoe/autoresearch/logs/snn_ffnn_rate.out
#PBS -m a
#PBS -M jdoe@example.org
# written by autoresearch 0.1.0: 3 run(s), walltime 05:24:00 (3 x 01:30:00 x 1.2, queue max 48:00:00)
set -euo pipefail
module load chpc/cuda/12.1
export OMP_NUM_THREADS=10
# tensor threads: the cores asked for, not every core of a shared node (env above may say otherwise)
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-10}"
cd "/mnt/lustre/users/jdoe/autoresearch"
commands=(
  '/mnt/lustre/users/jdoe/autoresearch/bin/autoresearch train --quiet experiment=mnist_snn_ffnn_rate seed=0 runs_dir=runs'
  '/mnt/lustre/users/jdoe/autoresearch/bin/autoresearch train --quiet experiment=mnist_snn_ffnn_rate seed=1 runs_dir=runs'
  '/mnt/lustre/users/jdoe/autoresearch/bin/autoresearch train --quiet experiment=mnist_snn_ffnn_rate seed=2 runs_dir=runs'
)
for c in "${commands[@]}"; do eval "$c"; done
