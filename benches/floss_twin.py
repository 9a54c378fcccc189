#!/usr/bin/env python3
"""PyTorch twin of issue 19's flossing-from-initialisation acceptance (R-floss).

Question it answers: with GradientFlossing's recipe, do 500 Adam steps of flossing k in
{1, 16, 32} exponents of the README network bring lambda_1..k within 0.05 of zero with a cliff
after the k-th (lambda_{k+1} < lambda_k - 0.1), for the tanh net and the binary surrogate net?

Recipe mirrored from the Rust side (src/dynamics, configs/experiment/delayed_xor_floss.yaml)
  network  x_t = J phi(x_{t-1}) + b + W_s s_t, N = 80, J ~ g N(0,1)/sqrt(N) with g = 1,
           W_s ~ N(0,1), b ~ U(0, 0.1), x_0 ~ N(0,1) relaxed by 100 autonomous steps (not trained
           by flossing); phi = tanh, or the binary step H(x) whose derivative is the fast-sigmoid
           surrogate 1/(|x|+1)^2 (sharpness 1) in the forward's gradient and in the Jacobian
  spectrum D_t = diag(phi'(x_t)) J, QR every step (positive diagonal), 55 steps of Bernoulli(0.5)
           input bits, the first 16 discarded, lambda_i = sum log R_ii / 39 per step
  flossing loss mean_i lambda_i^2 over i <= k, Adam(1e-3, 0.9, 0.999) on J, W_s, b; a fresh input
           sequence every step; 500 steps; float64 throughout
  measure  48 exponents averaged over 8 fresh sequences (55 steps, 16 transient), as the Rust test

Usage
  python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
  /tmp/torchenv/bin/python benches/floss_twin.py --seeds 0 1 2 --json benches/results/2026-12-07/floss_twin.json
"""
import argparse
import json
import math
import time

import torch

torch.set_default_dtype(torch.float64)


class Spike(torch.autograd.Function):
    """H(x) forward, the fast-sigmoid surrogate 1/(|x|+1)^2 backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / (x.abs() + 1.0) ** 2


def phi(x, binary):
    return Spike.apply(x) if binary else torch.tanh(x)


def phi_prime(x, binary):
    return 1.0 / (x.abs() + 1.0) ** 2 if binary else 1.0 - torch.tanh(x) ** 2


def init(n, gen, binary):
    j = torch.randn(n, n, generator=gen) / math.sqrt(n)
    w_s = torch.randn(n, 1, generator=gen)
    b = torch.rand(n, generator=gen) * 0.1
    x = torch.randn(n, generator=gen)
    with torch.no_grad():
        for _ in range(100):
            x = j @ phi(x, binary) + b
    return [p.requires_grad_() for p in (j, w_s, b)], x


def exponents(params, x0, bits, k, binary, q0):
    j, w_s, b = params
    x, q = x0, q0
    total = torch.zeros(k)
    steps = 0
    for t in range(55):
        x = j @ phi(x, binary) + b + w_s[:, 0] * bits[t]
        q = phi_prime(x, binary)[:, None] * (j @ q)
        q, r = torch.linalg.qr(q)
        s = torch.sign(torch.diagonal(r))
        q, d = q * s, torch.diagonal(r) * s
        if t + 1 > 16:
            total = total + torch.log(d)
            steps += 1
    return total / steps


def run(binary, k, seed, steps=500, measure=48):
    gen = torch.Generator().manual_seed(seed)
    params, x0 = init(80, gen, binary)
    frame = lambda m: torch.linalg.qr(torch.randn(80, m, generator=torch.Generator().manual_seed(1)))[0]
    bits = lambda: (torch.rand(55, generator=gen) < 0.5).to(torch.float64)

    def spectrum():
        with torch.no_grad():
            return torch.stack([exponents(params, x0, bits(), measure, binary, frame(measure)) for _ in range(8)]).mean(0)

    before = spectrum()
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999))
    losses, t0 = [], time.perf_counter()
    for _ in range(steps):
        lam = exponents(params, x0, bits(), k, binary, frame(k))
        loss = (lam ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    ms = 1e3 * (time.perf_counter() - t0) / steps
    after = spectrum()
    block = after[:k]
    return {
        "net": "binary" if binary else "tanh", "k": k, "seed": seed, "ms_per_step": ms,
        "loss_first": losses[0], "loss_last": losses[-1],
        "lambda_1_before": before[0].item(), "block_min": block.min().item(), "block_max": block.max().item(),
        "lambda_k": after[k - 1].item(), "lambda_k1": after[k].item(),
        "within_0.05": bool((block.abs() < 0.05).all()), "cliff": bool(after[k] < after[k - 1] - 0.1),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--cases", nargs="+", default=["tanh:1", "tanh:16", "tanh:32", "binary:1", "binary:16", "binary:32"],
                    help="net:k pairs to run")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    for case in a.cases:
        net, k = case.split(":")
        for seed in a.seeds:
            r = run(net == "binary", int(k), seed)
            print(json.dumps(r), flush=True)
            rows.append(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rows, "torch": torch.__version__}, f, indent=1)


if __name__ == "__main__":
    main()
