"""Predictive-coding twins for benches/torch_reference.py: PC-FFNN v3 and PC-CNN v2 (CHPC-Autoresearch
recipes, written here from their description in ../shared/anchors/pc-and-cifar.md)."""
import os, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class PcNet(nn.Module):
    """Bottom-up predictors `up[i]` (r_i -> r_{i+1}) and a head on the top hidden representation."""

    def __init__(self, cnn):
        super().__init__()
        self.cnn = cnn
        if cnn:
            self.convs = nn.ModuleList([nn.Conv2d(1, 32, 5), nn.Conv2d(32, 64, 5)])
            self.fc, self.pc_out = nn.Linear(1024, 256), nn.Linear(256, 10)
            self.head = nn.Linear(256, 10)
        else:
            self.layers = nn.ModuleList([nn.Linear(784, 256), nn.Linear(256, 128), nn.Linear(128, 10)])
            self.head = nn.Linear(128, 10)

    def predict(self, i, r, live=True):
        """Prediction of r_{i+1} from r_i (weights detached unless `live`)."""
        if self.cnn:
            mods = list(self.convs) + [self.fc, self.pc_out]
            m = mods[i]
            w, b = (m.weight, m.bias) if live else (m.weight.detach(), m.bias.detach())
            if i < 2:
                return F.max_pool2d(F.relu(F.conv2d(r, w, b)), 2)
            out = F.linear(r.flatten(1), w, b)
            return F.relu(out) if i == 2 else out
        m = self.layers[i]
        w, b = (m.weight, m.bias) if live else (m.weight.detach(), m.bias.detach())
        out = F.linear(r.flatten(1), w, b)
        return F.relu(out) if i < 2 else out

    def depth(self):
        return 4 if self.cnn else 3

    def energy(self, reps, live):
        return sum(0.5 * ((reps[i + 1].flatten(1) - self.predict(i, reps[i], live).flatten(1)) ** 2).sum()
                   for i in range(self.depth()))

    def feed_forward(self, x):
        hs, h = [], x
        for i in range(self.depth() - 1):
            h = self.predict(i, h)
            hs.append(h)
        return hs, self.head(h.flatten(1))

    def relax(self, x, hs, target, steps=20, rate=0.05):
        free = [h.detach().clone() for h in hs]
        with torch.enable_grad():
            for _ in range(steps):
                free = [r.requires_grad_(True) for r in free]
                e = self.energy([x] + free + [target], live=False)
                grads = torch.autograd.grad(e, free)
                free = [(r - rate * g).detach() for r, g in zip(free, grads)]
        return [x] + free + [target]


def main(a, idx):
    cnn = a.model == "pc_cnn_v2"
    images = idx(os.path.join(a.data, "train-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
    x = torch.from_numpy(images).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(idx(os.path.join(a.data, "train-labels-idx1-ubyte.gz")).astype(np.int64))
    for seed in a.seeds:
        torch.manual_seed(seed)
        perm = torch.randperm(60000)
        val, tr = perm[:6000], perm[6000:]
        if a.train_limit:
            tr = tr[:a.train_limit]
        net = PcNet(cnn)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=0.01 if cnn else 1e-8)
        clip = 2.0 if cnn else 0.5
        for epoch in range(1, a.epochs + 1):
            w = 0.1 * min((epoch - 1) / 10, 1.0) if cnn else None  # the energy ramp of v2
            order = tr[torch.randperm(len(tr))]
            start, energy_sum = time.time(), 0.0
            for i in range(0, len(order), 128):
                b = order[i:i + 128]
                xb, yb = x[b], y[b]
                hs, logits = net.feed_forward(xb)
                ce = F.cross_entropy(logits, yb)
                if w == 0.0:
                    loss = ce
                else:
                    reps = net.relax(xb, hs, F.one_hot(yb, 10).float())
                    energy = net.energy([r.detach() for r in reps], live=True)
                    energy_sum += energy.item()
                    loss = energy + ce if w is None else w * energy / len(b) + (1 - w) * ce
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), clip)
                opt.step()
            rate = len(order) / (time.time() - start)
            with torch.no_grad():
                acc = sum((net.feed_forward(x[val[j:j + 500]])[1].argmax(1) == y[val[j:j + 500]]).sum().item()
                          for j in range(0, 6000, 500)) / 6000
            print(f"seed {seed} epoch {epoch} val_acc {acc:.4f} train_energy_per_sample {energy_sum / len(order):.5f} "
                  f"train_samples_per_s {rate:.0f}", flush=True)
