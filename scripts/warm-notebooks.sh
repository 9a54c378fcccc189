#!/usr/bin/env bash
# Warms the notebook kernel's builds, so a newcomer's first cell of notebooks/01_quickstart.ipynb
# does not compile polars, candle and plotters for ten minutes. It runs that notebook's first
# cell (`:cache 4096` and `:dep autoresearch = ...`, with the path made absolute) and the
# prelude import headless on the installed `rust` kernel, with evcxr's default settings (those
# a Jupyter session gets). Two things stay warm:
#   - evcxr's build cache (~/.cache/evcxr, or $XDG_CACHE_HOME/evcxr): every dependency, keyed on
#     the compiler arguments, so any later kernel reuses it. The library itself is compiled
#     incrementally and never cached there, so edits to it are always picked up;
#   - the build folder the notebooks share ($EVCXR_TMPDIR, default <tmp>/autoresearch-evcxr-$USER,
#     as `autoresearch notebooks run` uses): a Jupyter started with that EVCXR_TMPDIR finds the
#     library built too.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)
work="$repo/target/warm-notebooks"
mkdir -p "$work"
export EVCXR_TMPDIR="${EVCXR_TMPDIR:-${TMPDIR:-/tmp}/autoresearch-evcxr-${USER:-user}}"
mkdir -p "$EVCXR_TMPDIR"
.venv/bin/python -W ignore - "$repo" "$work/warm.ipynb" <<'PY'
import sys, nbformat
repo, out = sys.argv[1], sys.argv[2]
source = nbformat.read(f"{repo}/notebooks/01_quickstart.ipynb", as_version=4)
first = next(c for c in source.cells if c.cell_type == "code")
if 'path = ".."' not in first.source:
    sys.exit(f"the first cell of 01_quickstart has no `path = \"..\"` dependency: {first.source!r}")
nb = nbformat.v4.new_notebook()
nb.cells = [
    nbformat.v4.new_code_cell(first.source.replace('path = ".."', f'path = "{repo}"')),
    nbformat.v4.new_code_cell("use autoresearch::prelude::*;"),
]
nb.metadata["kernelspec"] = source.metadata["kernelspec"]
nbformat.write(nb, out)
PY
start=$(date +%s)
.venv/bin/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.kernel_name=rust \
  --ExecutePreprocessor.timeout=3600 --output-dir "$work" --output warm.out "$work/warm.ipynb" \
  > "$work/nbconvert.log" 2>&1 || { cat "$work/nbconvert.log" >&2; exit 1; }
cache="${XDG_CACHE_HOME:-$HOME/.cache}/evcxr"
echo "notebook builds warm in $(( $(date +%s) - start )) s ($(du -sh "$cache" | cut -f1) in $cache; build folder $EVCXR_TMPDIR)"
