#!/usr/bin/env python3
"""End-to-end speed of the reference rows against `autoresearch bench`, on an idle machine.

Times the bench rows a-i and every reference row's own training step (`bench --experiment NAME`:
its encoder, batch, dropout, clipping and optimizer), then one full-data epoch of every reference
row through `train` (the batching, encoding, validation and probes a real run does), and writes a
table of training samples/s: the run's training set over its epoch time, beside the bench's
samples/s for the row's own step and for the reference script's model of that kind
(reference/chpc_autoresearch.yaml names each row's script row).

    python3 benches/e2e_speed.py [OUT_DIR] [--reuse]    # default benches/results/<today>/e2e

--reuse keeps the one-epoch runs OUT_DIR/runs already holds (completed) and times only the bench.

Writes OUT_DIR/bench.json, OUT_DIR/runs/ (one-epoch run directories), OUT_DIR/e2e.json and
OUT_DIR/README.md. Needs the release binary (cargo build --release --locked).
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


def main():
    today = datetime.date.today().isoformat()
    args = [a for a in sys.argv[1:] if a != "--reuse"]
    reuse = "--reuse" in sys.argv[1:]
    out = pathlib.Path(args[0]) if args else ROOT / "benches" / "results" / today / "e2e"
    out = out.resolve()
    (out / "runs").mkdir(parents=True, exist_ok=True)
    references = reference_rows()
    experiments = ",".join(e for e, _ in references)
    subprocess.run(
        [str(BIN), "bench", "--train", "a,b,c,d,e,f,g,h,i", "--infer", "a", "--warmup", "3",
         "--iters", "20", "--repeats", "3", "--experiment", experiments,
         "--json", str(out / "bench.json")],
        check=True, cwd=ROOT)
    bench = json.loads((out / "bench.json").read_text())["train"]
    pct = lambda v: f"{100 * v:.0f}%" if v else "—"
    num = lambda v: f"{v:.0f}" if v else "—"
    rows = []
    for experiment, key in references:
        samples, epoch_s = run_epoch(experiment, out / "runs", reuse)
        train = samples / epoch_s
        own = bench.get(experiment, {}).get("median")
        ref = bench.get(key, {}).get("median") if key else None
        rows.append({"experiment": experiment, "epoch_s": epoch_s, "train_samples": samples,
                     "train_samples_s": train, "own_samples_s": own,
                     "own_ratio": train / own if own else None, "bench_row": key,
                     "bench_samples_s": ref, "ratio": train / ref if ref else None})
    (out / "e2e.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [f"# End-to-end speed of the reference rows, {today}", "",
             "One full-data epoch of each row through `train` (first epoch; validation included)",
             "against `autoresearch bench` training samples/s of the row's own training step (`bench",
             "--experiment`: its encoder, batch, dropout, clipping and optimizer; Train / own is what",
             "the loop around the step costs) and of the reference script's model of that kind (no",
             "dropout or clipping; rows b and d time the script's smaller CNNs).", "",
             "| Row | Epoch (s) | Train (samples/s) | Own step (samples/s) | Train / own | "
             "Script row | Script (samples/s) | Train / script |",
             "|---|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        lines.append(f"| `{r['experiment']}` | {r['epoch_s']:.1f} | {r['train_samples_s']:.0f} | "
                     f"{num(r['own_samples_s'])} | {pct(r['own_ratio'])} | {r['bench_row'] or '—'} | "
                     f"{num(r['bench_samples_s'])} | {pct(r['ratio'])} |")
    (out / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
