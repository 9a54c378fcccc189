#!/bin/bash
#SBATCH --job-name=snn_ffnn_rate
#SBATCH --partition=debug
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --mem=2G
#SBATCH --time=01:48:00
#SBATCH --array=0-1
#SBATCH --output=/home/tester/autoresearch/logs/snn_ffnn_rate_%A_%a.out
# written by autoresearch 0.1.0: 2 run(s), walltime 01:48:00 (1 x 01:30:00 x 1.2, queue max 24:00:00)
set -euo pipefail
# tensor threads: the cores asked for, not every core of a shared node (env above may say otherwise)
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}"
cd "/home/tester/autoresearch"
commands=(
  '/home/tester/autoresearch/bin/autoresearch train --quiet experiment=mnist_snn_ffnn_rate seed=0 runs_dir=runs'
  '/home/tester/autoresearch/bin/autoresearch train --quiet experiment=mnist_snn_ffnn_rate seed=1 runs_dir=runs'
)
eval "${commands[$SLURM_ARRAY_TASK_ID]}"
