#!/usr/bin/env python3
"""PyTorch + snnTorch + Optuna twin of the issue-17 HPO acceptance recipe.

Question it answers: on the `configs/hpo/snn_ffnn_rate.yaml` slice (MNIST `data.limit=5000`,
4500 train / 500 validation, 3 epochs per trial, objective = best validation accuracy over the
epochs), can the best point of a 40-trial TPE search beat the experiment's default config
(`configs/experiment/mnist_snn_ffnn_rate.yaml`) by >= 1 accuracy point at all?

Recipe mirrored from the Rust side
  data     first `--limit` training images (pixels / 255, no normalisation), `val_fraction` 0.1
           held out at random (round(0.1 * 5000) = 500), split seeded by the run seed (0, the
           experiment's seed, for every trial and default run -- see "differences")
  model    SNN-FFNN 784-[hidden]-10: Linear -> snn.Leaky after every layer (reset by subtraction,
           delayed detached reset as in snnTorch and the Rust `integrate`), fast-sigmoid surrogate
           dS/dU = 1 / (1 + k|U - theta|)^2, PyTorch default Linear init (U(+-1/sqrt(fan_in)), as
           src/nn/layers.rs), run layer by layer over all T steps (exact for a feed-forward net)
  input    rate code: each pixel fires with probability min(1, p) at each of T steps, fresh
           Bernoulli draws per training batch, fixed draws per validation batch (seeded)
  loss     cross-entropy on output spike counts summed over T; accuracy = argmax of the counts
  train    Adam (betas 0.9/0.999, eps 1e-8, no weight decay), constant lr, reshuffled each epoch,
           last partial batch kept; validation in batches of 500
  default  lr 1e-3, batch 128, T 25, hidden [512, 256], beta 0.9, threshold 1.0, slope 25
  search   space of configs/hpo/snn_ffnn_rate.yaml; optuna TPESampler(multivariate=True,
           constant_liar=True, n_startup_trials=10, seed=--seed), MedianPruner(n_startup_trials=4,
           n_warmup_steps=0) fed each epoch's validation accuracy (never asked at the last epoch,
           where stopping saves nothing, as the Rust worker); trials run one after another

Usage
  python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch snntorch numpy optuna
  /tmp/torchenv/bin/python benches/hpo_twin.py --data ../shared/data/mnist --seed 0 \
      --json /tmp/twin/twin_seed0.json
  smoke test:  ... --trials 2 --epochs 1 --default-seeds 0 --limit 1000
  --threads defaults to 2 (torch.set_num_threads); on a 2-core machine shared with other work,
  --threads 1 was ~10x faster per batch (OpenMP threads fighting for the cores), and the
  accuracies do not depend on it.

Differences from the Rust recipe (also written into the JSON under "differences")
  * the 500 validation / 4500 training indices come from torch.randperm, not from Rust's StdRng
    shuffle, so the sets have the same sizes but not the same images; Bernoulli spikes, init
    and batch order are likewise drawn from torch generators, not the Rust streams
  * the split is fixed by --run-seed for every run here (all trials and all default seeds see
    the same 500 validation images); in Rust the split seed follows the run seed
  * Optuna's first 10 points are independent random draws, not a 10-point Latin hypercube, and
    its median rule compares with the other COMPLETE trials' values at that epoch (Rust: the
    best-so-far of all trials that reached it); trials run sequentially, not on 2 workers
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import snntorch as snn
from snntorch import surrogate
import optuna

HIDDEN_CHOICES = ["[64, 32]", "[128, 64]", "[256, 128]", "[512, 256]"]
DEFAULT = {"lr": 1e-3, "beta": 0.9, "threshold": 1.0, "hidden": "[512, 256]", "slope": 25.0,
           "steps": 25, "batch_size": 128}
VAL_STREAM = 0x5A11  # seed offset of the fixed validation spikes


# ----------------------------------------------------------------------------- data
def read_idx(path):
    """An unsigned-byte IDX file (optionally gzipped) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find(data_dir, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(data_dir, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{stem}(.gz) not in {data_dir}")


def load_slice(data_dir, limit, val_fraction, split_seed):
    """The first `limit` training images, split into (train, val) like data.limit + val_fraction."""
    x = read_idx(find(data_dir, "train-images-idx3-ubyte"))[:limit]
    y = read_idx(find(data_dir, "train-labels-idx1-ubyte"))[:limit]
    x = torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0)
    y = torch.from_numpy(y.astype(np.int64))
    n_val = int(round(len(x) * val_fraction))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(split_seed))
    val_idx, tr_idx = order[:n_val].sort().values, order[n_val:].sort().values
    return (x[tr_idx], y[tr_idx]), (x[val_idx], y[val_idx])


def rate_code(x, steps, gen):
    """[B, 784] intensities -> [T, B, 784] Bernoulli spikes with probability min(1, p)."""
    p = x.clamp(0.0, 1.0).unsqueeze(0).expand(steps, *x.shape)
    return torch.bernoulli(p, generator=gen)


# ----------------------------------------------------------------------------- model
class SpikingFFNN(nn.Module):
    """Linear -> Leaky for every layer; each layer is run over all T steps before the next."""

    def __init__(self, hidden, beta, threshold, slope):
        super().__init__()
        widths = [784] + list(hidden) + [10]
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        grad = surrogate.fast_sigmoid(slope=slope)
        self.lifs = nn.ModuleList(
            snn.Leaky(beta=beta, threshold=threshold, spike_grad=grad, reset_mechanism="subtract")
            for _ in self.fcs)

    def forward(self, spikes):  # [T, B, 784] -> output spikes [T, B, 10]
        h = spikes
        for fc, lif in zip(self.fcs, self.lifs):
            drive = fc(h)  # one product for all steps
            mem = torch.zeros_like(drive[0])
            out = []
            for t in range(drive.shape[0]):
                s, mem = lif(drive[t], mem)
                out.append(s)
            h = torch.stack(out)
        return h


def evaluate(model, val, steps, seed, eval_batch):
    model.eval()
    x, y = val
    correct = 0
    with torch.no_grad():
        for i, lo in enumerate(range(0, len(x), eval_batch)):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + VAL_STREAM + i)
            counts = model(rate_code(x[lo:lo + eval_batch], steps, gen)).sum(0)
            correct += (counts.argmax(1) == y[lo:lo + eval_batch]).sum().item()
    model.train()
    return correct / len(x)


def train_run(cfg, seed, train, val, epochs, eval_batch, on_epoch=None):
    """Trains one config; returns the validation accuracy after each epoch (fewer if pruned).

    `on_epoch(epoch, acc)` may return True to stop (the pruner)."""
    torch.manual_seed(seed)
    hidden = json.loads(cfg["hidden"])
    model = SpikingFFNN(hidden, cfg["beta"], cfg["threshold"], cfg["slope"])
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8,
                           weight_decay=0.0)
    x, y = train
    bs, steps = int(cfg["batch_size"]), int(cfg["steps"])
    accs = []
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed * 7919 + epoch + 1))
        enc = torch.Generator().manual_seed(seed * 104_729 + epoch + 1)
        for lo in range(0, len(x), bs):
            idx = order[lo:lo + bs]
            counts = model(rate_code(x[idx], steps, enc)).sum(0)
            loss = F.cross_entropy(counts, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        accs.append(evaluate(model, val, steps, seed, eval_batch))
        if on_epoch is not None and on_epoch(epoch + 1, accs[-1]):
            break
    return accs


# ----------------------------------------------------------------------------- search
def suggest(trial):
    return {
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        "beta": trial.suggest_float("beta", 0.5, 0.99),
        "threshold": trial.suggest_float("threshold", 0.25, 2.0),
        "hidden": trial.suggest_categorical("hidden", HIDDEN_CHOICES),
        "slope": trial.suggest_float("slope", 5.0, 50.0, log=True),
        "steps": trial.suggest_int("steps", 8, 25),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist"))
    ap.add_argument("--seed", type=int, default=0, help="the study (sampler) seed")
    ap.add_argument("--run-seed", type=int, default=0, help="trials' own seed and the split seed (the experiment's seed)")
    ap.add_argument("--default-seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--limit", type=int, default=5000)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--eval-batch", type=int, default=500)
    ap.add_argument("--startup", type=int, default=10, help="TPE random startup trials")
    ap.add_argument("--prune-startup", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    train, val = load_slice(a.data, a.limit, a.val_fraction, a.run_seed)
    print(f"slice: {len(train[0])} train / {len(val[0])} val (limit {a.limit}, split seed {a.run_seed})", flush=True)

    res = {"versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                        "snntorch": snn.__version__, "optuna": optuna.__version__, "numpy": np.__version__},
           "args": vars(a), "n_train": len(train[0]), "n_val": len(val[0]),
           "default_config": DEFAULT, "default": {}, "differences": [
               "validation/train indices drawn with torch.randperm (same sizes, not the same images as Rust's StdRng shuffle)",
               "split fixed by --run-seed for all runs (Rust: split seed follows run seed)",
               "spikes, init and batch order from torch generators, not the Rust streams",
               "optuna startup = 10 random points, not a Latin hypercube",
               "optuna median rule: others' values at that epoch among COMPLETE trials (Rust: best-so-far of all trials at that epoch)",
               "trials sequential, not 2 workers"]}

    def dump():
        if a.json:
            os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
            with open(a.json, "w") as f:
                json.dump(res, f, indent=1)

    # --- default config, several seeds
    t0 = time.perf_counter()
    for s in a.default_seeds:
        t1 = time.perf_counter()
        accs = train_run(DEFAULT, s, train, val, a.epochs, a.eval_batch)
        res["default"][str(s)] = {"val_acc_per_epoch": accs, "best_val_acc": max(accs),
                                  "wall_s": time.perf_counter() - t1}
        print(f"default seed {s}: val acc per epoch {accs} best {max(accs):.4f} "
              f"({time.perf_counter() - t1:.1f}s)", flush=True)
    bests = [v["best_val_acc"] for v in res["default"].values()]
    res["default_mean"] = float(np.mean(bests)) if bests else None
    res["default_wall_s"] = time.perf_counter() - t0
    dump()

    # --- the search
    sampler = optuna.samplers.TPESampler(multivariate=True, constant_liar=True,
                                         n_startup_trials=a.startup, seed=a.seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=a.prune_startup, n_warmup_steps=0)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    trial_log = []

    def objective(trial):
        cfg = suggest(trial)
        t1 = time.perf_counter()

        def on_epoch(epoch, acc):
            trial.report(acc, epoch)
            return epoch < a.epochs and trial.should_prune()

        accs = train_run(cfg, a.run_seed, train, val, a.epochs, a.eval_batch, on_epoch)
        rec = {"number": trial.number, "params": cfg, "val_acc_per_epoch": accs,
               "best_val_acc": max(accs), "epochs_run": len(accs), "pruned": len(accs) < a.epochs,
               "wall_s": time.perf_counter() - t1}
        trial_log.append(rec)
        res["trials"] = trial_log
        dump()
        if rec["pruned"]:
            raise optuna.TrialPruned()
        return max(accs)

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=a.trials)
    res["search_wall_s"] = time.perf_counter() - t0

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        res["best_value"] = study.best_value
        res["best_params"] = study.best_params
        res["best_trial"] = study.best_trial.number
    incl = max(trial_log, key=lambda r: r["best_val_acc"]) if trial_log else None
    if incl:  # Rust counts pruned trials' best values too
        res["best_incl_pruned"] = {"value": incl["best_val_acc"], "trial": incl["number"], "params": incl["params"]}
    res["per_trial_values"] = [r["best_val_acc"] for r in trial_log]
    pruned = [r for r in trial_log if r["pruned"]]
    res["trials_pruned"] = len(pruned)
    res["trial_epochs_run"] = sum(r["epochs_run"] for r in trial_log)
    res["trial_epochs_pruned"] = sum(a.epochs - r["epochs_run"] for r in pruned)
    if complete and bests:
        res["best_minus_default_mean_points"] = 100.0 * (study.best_value - res["default_mean"])
    res["wall_s"] = time.perf_counter() - t_start
    res["loadavg_at_end"] = os.getloadavg()
    dump()
    print(json.dumps({k: res.get(k) for k in ("default_mean", "best_value", "best_params",
                                              "best_minus_default_mean_points", "trials_pruned",
                                              "trial_epochs_pruned", "wall_s")}, indent=1), flush=True)


if __name__ == "__main__":
    main()
