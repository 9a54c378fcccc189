#!/usr/bin/env python3
"""End-to-end speed of the reference rows against `autoresearch bench`, on an idle machine.

Times the bench rows a-i, then one full-data epoch of every reference row through `train` (the
batching, encoding, validation and probes a real run does), and writes a table of training
samples/s: the run's training set over its epoch time, beside the bench's samples/s for the same
network (reference/chpc_autoresearch.yaml names each row's bench row).

    python3 benches/e2e_speed.py [OUT_DIR]    # default benches/results/<today>/e2e

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


def run_epoch(experiment, runs):
    """One full-data epoch of `experiment`; returns (train samples, epoch seconds)."""
    subprocess.run(
        [str(BIN), "train", "-q", "--force", f"experiment={experiment}", "epochs=1",
         f"runs_dir={runs}"],
        check=True, cwd=ROOT)
    run = runs / experiment / "epochs=1" / "seed_0"
    log = (run / "log.txt").read_text()
    samples = int(re.search(r"\((\d+) train,", log).group(1))
    header, first = (run / "history.csv").read_text().splitlines()[:2]
    epoch_s = float(first.split(",")[header.split(",").index("epoch_time_s")])
    return samples, epoch_s


def main():
    today = datetime.date.today().isoformat()
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "benches" / "results" / today / "e2e"
    out = out.resolve()
    (out / "runs").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(BIN), "bench", "--train", "a,b,c,d,e,f,g,h,i", "--infer", "a", "--warmup", "3",
         "--iters", "20", "--repeats", "3", "--json", str(out / "bench.json")],
        check=True, cwd=ROOT)
    bench = json.loads((out / "bench.json").read_text())["train"]
    rows = []
    for experiment, key in reference_rows():
        samples, epoch_s = run_epoch(experiment, out / "runs")
        train = samples / epoch_s
        ref = bench.get(key, {}).get("median") if key else None
        rows.append({"experiment": experiment, "epoch_s": epoch_s, "train_samples": samples,
                     "train_samples_s": train, "bench_row": key, "bench_samples_s": ref,
                     "ratio": train / ref if ref else None})
    (out / "e2e.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [f"# End-to-end speed of the reference rows, {today}", "",
             "One full-data epoch of each row through `train` (first epoch; validation included)",
             "against `autoresearch bench` training samples/s for the same network (bench rows b and d",
             "time the snnTorch script's smaller CNNs, so their ratio understates the runs).", "",
             "| Row | Epoch (s) | Train (samples/s) | Bench row | Bench (samples/s) | Train / bench |",
             "|---|---:|---:|---|---:|---:|"]
    for r in rows:
        ref = f"{r['bench_samples_s']:.0f}" if r["bench_samples_s"] else "—"
        ratio = f"{100 * r['ratio']:.0f}%" if r["ratio"] else "—"
        lines.append(f"| `{r['experiment']}` | {r['epoch_s']:.1f} | {r['train_samples_s']:.0f} | "
                     f"{r['bench_row'] or '—'} | {ref} | {ratio} |")
    (out / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
