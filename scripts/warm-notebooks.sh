#!/usr/bin/env bash
# Fills the notebook kernel's build cache (evcxr's `:cache`, in ~/.cache/evcxr) with every
# dependency the notebooks compile, so a newcomer's first cell of notebooks/01_quickstart.ipynb
# reuses them instead of compiling polars, candle and plotters for ten minutes.
#
# It runs, headless on the installed `rust` kernel with its default settings (the ones a
# Jupyter session gets), the first cell every notebook starts with: `:cache 4096` and
# `:dep autoresearch = { path = ... }`, then `use autoresearch::prelude::*;`. evcxr keys its
# cache on the compiler arguments, not on the session's build folder, so later sessions hit it.
# The crate itself is compiled incrementally by each session and never cached (evcxr skips
# incremental crates), so edits to the library are always picked up.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)
work="$repo/target/warm-notebooks"
mkdir -p "$work"
.venv/bin/python - "$repo" "$work/warm.ipynb" <<'PY'
import sys, nbformat
repo, out = sys.argv[1], sys.argv[2]
nb = nbformat.v4.new_notebook()
nb.cells = [
    nbformat.v4.new_code_cell(':cache 4096\n:dep autoresearch = { path = "%s" }' % repo),
    nbformat.v4.new_code_cell('use autoresearch::prelude::*;'),
]
nb.metadata["kernelspec"] = {"name": "rust", "display_name": "Rust", "language": "rust"}
nbformat.write(nb, out)
PY
start=$(date +%s)
.venv/bin/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.kernel_name=rust \
  --ExecutePreprocessor.timeout=3600 --output-dir "$work" --output warm.out "$work/warm.ipynb" \
  > "$work/nbconvert.log" 2>&1 || { cat "$work/nbconvert.log" >&2; exit 1; }
echo "notebook build cache warm ($(( $(date +%s) - start )) s; $(du -sh "${XDG_CACHE_HOME:-$HOME/.cache}/evcxr" | cut -f1) in ${XDG_CACHE_HOME:-$HOME/.cache}/evcxr)"
