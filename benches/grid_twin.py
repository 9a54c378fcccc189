#!/usr/bin/env python3
"""Upstream's own code as the twin of the grid kernel (issue 20).

Question it answers: on upstream's initialisation (PRNGKey(0), tau in [1, 20] ms) and a real
MNIST batch (the first 32 training images, gain 10), do our SnAP-1 and BPTT gradients equal
grid-neurons' `local_grads` and `bptt_grads`? This script runs upstream's JAX code and writes
its parameters, the batch and both batch-mean gradients to a JSON file; `cargo run --example
grid_twin -- <json>` computes ours on the same numbers and prints the relative differences.

Needs a checkout of ThomasPluck/grid-neurons (GRID_NEURONS, default ./grid-neurons), `pip
install jax numpy`, and MNIST as upstream caches it (~/.cache/dendritic_mnist.npz: X [70000,
784] in [0, 255], the 60k training images first, and y), which `--from-idx DIR` builds from the
IDX files here.
"""
import argparse
import gzip
import json
import os
import sys

import numpy as np


def cache_from_idx(folder):
    def read(name, offset, shape):
        raw = gzip.open(os.path.join(folder, name)).read()
        return np.frombuffer(raw, np.uint8, offset=offset).reshape(shape)
    x = np.concatenate([read("train-images-idx3-ubyte.gz", 16, (-1, 784)),
                        read("t10k-images-idx3-ubyte.gz", 16, (-1, 784))]).astype(np.float32)
    y = np.concatenate([read("train-labels-idx1-ubyte.gz", 8, (-1,)),
                        read("t10k-labels-idx1-ubyte.gz", 8, (-1,))]).astype(np.int32)
    path = os.path.expanduser("~/.cache/dendritic_mnist.npz")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, X=x, y=y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="grid_twin.json")
    ap.add_argument("--from-idx", help="build upstream's MNIST cache from these IDX files first")
    args = ap.parse_args()
    if args.from_idx:
        cache_from_idx(args.from_idx)
    sys.path.insert(0, os.environ.get("GRID_NEURONS", "grid-neurons"))
    import jax
    from grid_neurons.benchmarks.mnist import load
    from grid_neurons.block import init_block_params, zero_block_state
    from grid_neurons.topology import build_grid
    from grid_neurons.training import bptt_grads, local_grads

    topo = build_grid(28, 10)
    train_x, train_y, _, _ = load(input_gain=10.0, train_size=60000)
    p = init_block_params(jax.random.PRNGKey(0), topology=topo, tau_min=1e-3, tau_max=20e-3)
    xs, ys = train_x[:32], train_y[:32]
    cells = p.cells
    out = {name: np.asarray(getattr(cells, name)).tolist()
           for name in ("log_tau", "w_left", "w_top", "bias")}
    out["x"] = np.asarray(xs).reshape(-1).tolist()
    out["labels"] = np.asarray(ys).tolist()
    for name, fn in (("snap1", local_grads), ("bptt", bptt_grads)):
        def per(seq, target):
            loss, grads, _ = fn(p, zero_block_state(topo), seq, target, topo, 1e-3, "sum")
            return loss, grads
        loss, grads = jax.vmap(per)(xs, ys)
        out[name] = {"loss": float(loss.mean())}
        for field in ("log_tau", "w_left", "w_top", "bias"):
            out[name][field] = np.asarray(getattr(grads.cells, field).mean(0)).tolist()
    with open(args.out, "w") as f:
        json.dump(out, f)
    print(f"wrote {args.out}: upstream loss {out['snap1']['loss']:.6f}")


if __name__ == "__main__":
    main()
