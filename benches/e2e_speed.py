#!/usr/bin/env python3
"""End-to-end speed of the reference rows against `autoresearch bench`, on an idle machine.

For every reference row: its own training step is timed (`bench --experiment NAME`: its encoder,
batch, dropout, clipping and optimizer), then one full-data epoch runs through `train` (the
batching, encoding, validation and probes a real run does), then the step is timed again; the
row's ratio is the epoch's training samples/s over the mean of the two step timings, so a machine
whose speed drifts (a shared VM: the same bench moves by 20-30% over minutes) skews it less. The
reference script's models (bench rows a-i) are timed once, first, for the Train / script column.

    python3 benches/e2e_speed.py [OUT_DIR] [--reuse]    # default benches/results/<today>/e2e

Writes OUT_DIR/bench.json (rows a-i), OUT_DIR/own/NAME-{before,after}.json and their means in
OUT_DIR/own.json, OUT_DIR/runs/ (one-epoch run directories), OUT_DIR/e2e.json and
OUT_DIR/README.md; `autoresearch fidelity --bench OUT_DIR/bench.json --bench OUT_DIR/own.json`
puts them in the report (a row's own step wins over its script row). --reuse keeps the
one-epoch runs OUT_DIR/runs already holds (completed) and times only the bench. Needs the release
binary (cargo build --release --locked).
"""
import datetime
import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "autoresearch"


def reference_rows():
    """(experiment, bench row or None) for every row of the reference file, in file order."""
    rows, experiment = [], None
    for line in (ROOT / "reference" / "chpc_autoresearch.yaml").read_text().splitlines():
        m = re.match(r"  - experiment: (\S+)$", line)
        if m:
            experiment = m.group(1)
            rows.append([experiment, None])
        m = re.match(r"    bench: (\S+)$", line)
        if m and rows:
            rows[-1][1] = m.group(1)
    return rows


def run_epoch(experiment, runs, reuse):
    """One full-data epoch of `experiment`; returns (train samples, epoch seconds)."""
    run = runs / experiment / "epochs=1" / "seed_0"
    done = run / "metrics.json"
    if not (reuse and done.exists() and json.loads(done.read_text()).get("status") == "completed"):
        subprocess.run(
            [str(BIN), "train", "-q", "--force", f"experiment={experiment}", "epochs=1",
             f"runs_dir={runs}"],
            check=True, cwd=ROOT)
    log = (run / "log.txt").read_text()
    samples = int(re.search(r"\((\d+) train,", log).group(1))
    header, first = (run / "history.csv").read_text().splitlines()[:2]
    epoch_s = float(first.split(",")[header.split(",").index("epoch_time_s")])
    return samples, epoch_s


def bench_own(experiment, path):
    """The median training samples/s of `experiment`'s own step, written to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(BIN), "bench", "--train", "", "--infer", "", "--experiment", experiment,
         "--warmup", "3", "--iters", "20", "--repeats", "3", "--json", str(path)],
        check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads(path.read_text())["train"][experiment]["median"]


def write_own(out, experiments):
    """Every row's own step as one bench file, OUT_DIR/own.json (median: the mean of the timings
    before and after its epoch), for `autoresearch fidelity --bench`."""
    rates = {}
    for experiment in experiments:
        timed = [json.loads((out / "own" / f"{experiment}-{when}.json").read_text())["train"][experiment]
                 for when in ("before", "after")]
        rates[experiment] = {
            "median": sum(t["median"] for t in timed) / 2,
            "min": min(t["min"] for t in timed), "max": max(t["max"] for t in timed),
            "runs": [t["median"] for t in timed],
            "ms_per_batch": sum(t["ms_per_batch"] for t in timed) / 2}
    (out / "own.json").write_text(json.dumps({"train": rates}, indent=2) + "\n")


def main():
    today = datetime.date.today().isoformat()
    args = [a for a in sys.argv[1:] if a != "--reuse"]
    reuse = "--reuse" in sys.argv[1:]
    out = pathlib.Path(args[0]) if args else ROOT / "benches" / "results" / today / "e2e"
    out = out.resolve()
    (out / "runs").mkdir(parents=True, exist_ok=True)
    references = reference_rows()
    subprocess.run(
        [str(BIN), "bench", "--train", "a,b,c,d,e,f,g,h,i", "--infer", "a", "--warmup", "3",
         "--iters", "20", "--repeats", "3", "--json", str(out / "bench.json")],
        check=True, cwd=ROOT)
    bench = json.loads((out / "bench.json").read_text())["train"]
    pct = lambda v: f"{100 * v:.0f}%" if v else "—"
    num = lambda v: f"{v:.0f}" if v else "—"
    rows = []
    for experiment, key in references:
        before = bench_own(experiment, out / "own" / f"{experiment}-before.json")
        samples, epoch_s = run_epoch(experiment, out / "runs", reuse)
        after = bench_own(experiment, out / "own" / f"{experiment}-after.json")
        train = samples / epoch_s
        own = (before + after) / 2
        ref = bench.get(key, {}).get("median") if key else None
        rows.append({"experiment": experiment, "epoch_s": epoch_s, "train_samples": samples,
                     "train_samples_s": train, "own_before": before, "own_after": after,
                     "own_samples_s": own, "own_ratio": train / own, "bench_row": key,
                     "bench_samples_s": ref, "ratio": train / ref if ref else None})
    write_own(out, [r["experiment"] for r in rows])
    (out / "e2e.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [f"# End-to-end speed of the reference rows, {today}", "",
             "One full-data epoch of each row through `train` (first epoch; validation included)",
             "against `autoresearch bench` training samples/s of the row's own training step (`bench",
             "--experiment`: its encoder, batch, dropout, clipping and optimizer), timed just before",
             "and just after the epoch (Train / own, over their mean, is what the loop around the step",
             "costs), and of the reference script's model of that kind, timed once at the start (no",
             "dropout or clipping; rows b and d time the script's smaller CNNs).", "",
             "| Row | Epoch (s) | Train (samples/s) | Own step before / after (samples/s) | Train / own | "
             "Script row | Script (samples/s) | Train / script |",
             "|---|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        lines.append(f"| `{r['experiment']}` | {r['epoch_s']:.1f} | {r['train_samples_s']:.0f} | "
                     f"{num(r['own_before'])} / {num(r['own_after'])} | {pct(r['own_ratio'])} | "
                     f"{r['bench_row'] or '—'} | {num(r['bench_samples_s'])} | {pct(r['ratio'])} |")
    (out / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
