#!/usr/bin/env python3
"""PyTorch counterpart of `autoresearch train experiment=mnist_{ffnn,cnn}_adam epochs=N`, and of
`experiment=mnist_pc_ffnn_v3` / `mnist_pc_cnn_v2` (`--model pc_ffnn_v3|pc_cnn_v2`).

Same recipe as the reference rows (CHPC-Autoresearch's models): FFNN 784-256-128-10 ReLU with
dropout 0.2 after each hidden layer; CNN conv32(pad 1)-ReLU-pool-Dropout2d(0.2)-conv64(pad 1)-ReLU-
pool-Dropout2d(0.2)-fc128-ReLU-Dropout(0.2)-fc10; pixels in [0, 1], Adam 1e-3, batch 128, 10% of
the 60k training images held out at random for validation (early stopping is not applied here:
compare epoch by epoch). Usage:
    python benches/torch_reference.py --data ../shared/data/mnist --seeds 0 1 2 3 4 --epochs 2
The predictive-coding recipes (pixels in [0, 1], no standardisation) relax the hidden
representations by autograd of the energy for 20 steps at rate 0.05 with the input and one-hot
label clamped, then step on the energy at the relaxed state plus cross-entropy of a head on the
feed-forward hidden units, as CHPC-Autoresearch's train_pcnn does; they print train samples/s.
`--model resnet18_cifar` benchmarks the CIFAR-10 ResNet-18 on synthetic tensors, or with `--check`
prints the loss and gradient norms of given weights on a given batch (see benches/resnet_twin.py).
"""
import argparse, gzip, os
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def idx(path):
    with gzip.open(path, "rb") as f:
        buf = f.read()
    dims = [int.from_bytes(buf[4 + 4 * i:8 + 4 * i], "big") for i in range(buf[3])]
    return np.frombuffer(buf, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


ap = argparse.ArgumentParser()
ap.add_argument("--data", default="../shared/data/mnist")
ap.add_argument("--seeds", type=int, nargs="+", default=[0])
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--train-limit", type=int, default=None, help="train on the first N training images of the split (timing runs)")
ap.add_argument("--model", choices=["ffnn", "cnn", "pc_ffnn_v3", "pc_cnn_v2", "resnet18_cifar"], default="ffnn")
r = ap.add_argument_group("resnet18_cifar (benches/resnet_twin.py; synthetic tensors, no data)")
r.add_argument("--width", type=int, default=64, help="base width w: stages w, 2w, 4w, 8w")
r.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
r.add_argument("--warmup", type=int, default=2)
r.add_argument("--iters", type=int, default=10, help="batches per timing")
r.add_argument("--repeats", type=int, default=3, help="timings; the median is reported")
r.add_argument("--json", default=None, help="also write the result JSON here")
r.add_argument("--check", action="store_true", help="one train-mode forward+backward of --weights on --batch")
r.add_argument("--weights", default=None, help="safetensors with torchvision state_dict names")
r.add_argument("--batch", default=None, help="safetensors with `input` [B,3,32,32] and `labels` [B]")
r.add_argument("--float64", action="store_true", help="--check in float64: the arbiter of float32 rounding")
a = ap.parse_args()
torch.set_num_threads(a.threads)
if a.model == "resnet18_cifar":
    import resnet_twin
    resnet_twin.main(a)
    raise SystemExit
if a.model.startswith("pc_"):
    import pc_twin
    pc_twin.main(a, idx)
    raise SystemExit
x = torch.from_numpy(idx(os.path.join(a.data, "train-images-idx3-ubyte.gz")).reshape(-1, 784) / 255.0).float()
y = torch.from_numpy(idx(os.path.join(a.data, "train-labels-idx1-ubyte.gz")).astype(np.int64))
for seed in a.seeds:
    torch.manual_seed(seed)
    perm = torch.randperm(60000)
    val, tr = perm[:6000], perm[6000:]
    if a.model == "ffnn":
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 128), nn.ReLU(),
                              nn.Dropout(0.2), nn.Linear(128, 10))
    else:
        model = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Dropout2d(0.2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Dropout2d(0.2), nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.2),
                              nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(a.epochs):
        model.train()
        order = tr[torch.randperm(len(tr))]
        for i in range(0, len(order), 128):
            b = order[i:i + 128]
            opt.zero_grad()
            F.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(x[val]).argmax(1) == y[val]).float().mean().item()
        print(f"seed {seed} epoch {epoch + 1} val_acc {acc:.4f}", flush=True)
