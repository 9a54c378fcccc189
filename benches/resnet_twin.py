"""ResNet-18-CIFAR twin for benches/torch_reference.py (`--model resnet18_cifar`).

Mirrors the JE CHPC-Autoresearch CIFAR-10 model (../shared/anchors/pc-and-cifar.md, section 3):
torchvision `resnet18(weights=None)` with conv1 replaced by Conv2d(3, w, 3, stride 1, pad 1,
bias False), maxpool replaced by Identity and fc by Linear(8w, 10). BasicBlocks [2, 2, 2, 2] of
widths w, 2w, 4w, 8w (w = `--width`, 64 gives torchvision's 11,173,962 parameters); layers 2-4
start with stride 2 and a 1x1 conv (stride 2) + BN downsample; BN eps 1e-5, momentum 0.1.
Init as torchvision: kaiming_normal_(fan_out, relu) on every conv, BN weight 1 bias 0, then conv1
and fc are built afresh, so they keep PyTorch's default init. Module and parameter names are
torchvision's, so `state_dict()` keys match (conv1.weight, layer2.0.downsample.1.running_var, ...).

Two uses:
  throughput: batch 128 of synthetic N(0,1) 3x32x32 inputs and random labels, SGD lr 0.1
      momentum 0.9 wd 5e-4, cross-entropy; `--warmup` batches, then the median of `--repeats`
      timings of `--iters` batches, for training and for inference (eval mode, no_grad). Prints
      the JSON of ../shared/bench/snntorch_baseline.py (`train`/`infer` dicts, model key "r").
        python benches/torch_reference.py --model resnet18_cifar --threads 2 --iters 2 --repeats 3
  --check: loads `--weights W.safetensors` (torchvision state_dict names) and `--batch
      B.safetensors` (`input` [B,3,32,32] f32, `labels` [B] i64/u32), runs one train-mode forward +
      backward and prints {"loss", "grad_norms", "running_mean_after"} for comparison with ours.
On `--device cuda` the clock is read after torch.cuda.synchronize() and TF32 is off.
"""
import json, os, platform, statistics, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------- model
def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = conv3x3(cout, cout), nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18Cifar(nn.Module):
    def __init__(self, width=64, num_classes=10):
        super().__init__()
        w = width
        # torchvision builds the ImageNet stem first; it is replaced below, as the JE code does.
        self.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.bn1, self.relu, self.maxpool = nn.BatchNorm2d(w), nn.ReLU(inplace=True), nn.Identity()
        chans = [w, 2 * w, 4 * w, 8 * w]
        cin = w
        for i, c in enumerate(chans):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, c, stride), BasicBlock(c, c)))
            cin = c
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * w, 1000)
        for m in self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        # CIFAR mode: fresh modules, so PyTorch's default init (kaiming_uniform a=sqrt(5)).
        self.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False)
        self.fc = nn.Linear(8 * w, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ----------------------------------------------------------------------------- safetensors
_DT = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U32": "<u4",
       "I16": "<i2", "U16": "<u2", "I8": "i1", "U8": "u1", "BOOL": "?"}


def read_safetensors(path):
    """{name: torch tensor}: 8-byte LE header length, JSON header (dtype, shape, data_offsets), raw LE data."""
    with open(path, "rb") as f:
        buf = f.read()
    n = int.from_bytes(buf[:8], "little")
    header = json.loads(buf[8:8 + n])
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        arr = np.frombuffer(buf, _DT[h["dtype"]], (b - a) // np.dtype(_DT[h["dtype"]]).itemsize, 8 + n + a)
        if h["dtype"] in ("U32", "U16"):
            arr = arr.astype(np.int64)
        out[name] = torch.from_numpy(arr.astype(arr.dtype.newbyteorder("=")).reshape(h["shape"]))
    return out


def write_safetensors(path, tensors):
    """The inverse of read_safetensors (for making test files)."""
    names = {np.dtype(v): k for k, v in _DT.items()}
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        arr = t.detach().cpu().contiguous().numpy()
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": names[arr.dtype.newbyteorder("<")], "shape": list(arr.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))


# ----------------------------------------------------------------------------- timing
def _busy_s():
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def timed_rates(step, batches, a, sync):
    """Images/s of each of `a.repeats` timings of `a.iters` batches, and the other processes' load."""
    for i in range(a.warmup):
        step(*batches[i % len(batches)])
    sync()
    rates, others = [], []
    for _ in range(a.repeats):
        b0, t = _busy_s(), os.times()
        s0, t0 = t.user + t.system, time.perf_counter()
        for i in range(a.iters):
            step(*batches[i % len(batches)])
        sync()
        dt = time.perf_counter() - t0
        t = os.times()
        others.append(max(0.0, (_busy_s() - b0) - (t.user + t.system - s0)) / dt)
        rates.append(a.iters * len(batches[0][0]) / dt)
    return rates, max(others)


def summary(rates, other, bs):
    med = statistics.median(rates)
    return {"median": med, "min": min(rates), "max": max(rates), "runs": rates,
            "ms_per_batch": 1000 * bs / med, "other_cores_max": other}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def bench(a, dev):
    bs = 128
    torch.manual_seed(a.seeds[0])
    model = ResNet18Cifar(a.width).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    batches = [(torch.randn(bs, 3, 32, 32, device=dev), torch.randint(0, 10, (bs,), device=dev)) for _ in range(4)]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def train_step(x, y):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def infer_step(x, y):
        with torch.no_grad():
            return model(x)

    n_params = sum(p.numel() for p in model.parameters())
    env = {"python": sys.version.split()[0], "torch": torch.__version__, "cpu": cpu_model(),
           "nproc": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(dev),
           "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
           "width": a.width, "params": n_params, "loadavg_at_start": os.getloadavg()}
    res = {"env": env, "args": vars(a), "train": {}, "infer": {}, "epoch": {}}
    model.train()
    res["train"]["r"] = summary(*timed_rates(train_step, batches, a, sync), bs)
    model.eval()
    res["infer"]["r"] = summary(*timed_rates(infer_step, batches, a, sync), bs)
    for kind in ("train", "infer"):
        r = res[kind]["r"]
        print(f"{kind} r ResNet-18-CIFAR w{a.width} median {r['median']:.1f} img/s (min {r['min']:.1f}, "
              f"max {r['max']:.1f}; {r['ms_per_batch']:.0f} ms/batch) [others used {r['other_cores_max']:.2f} cores]",
              file=sys.stderr, flush=True)
    return res


# ----------------------------------------------------------------------------- check
def check(a, dev):
    sd, batch = read_safetensors(a.weights), read_safetensors(a.batch)
    width, classes = sd["conv1.weight"].shape[0], sd["fc.weight"].shape[0]
    model = ResNet18Cifar(width, classes)
    missing, unexpected = model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()},
                                                strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"weights: missing {missing}, unexpected {unexpected}")
    dtype = torch.float64 if a.float64 else torch.float32
    model.to(dev, dtype).train()
    x, y = batch["input"].to(dev, dtype), batch["labels"].long().to(dev)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return {"loss": loss.item(),
            "grad_norms": {n: p.grad.norm().item() for n, p in model.named_parameters()},
            "running_mean_after": {n: m.running_mean[:4].tolist() for n, m in model.named_modules()
                                   if isinstance(m, nn.BatchNorm2d)}}


def main(a):
    dev = torch.device(a.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if a.check:
        if not (a.weights and a.batch):
            raise SystemExit("--check needs --weights and --batch")
        res = check(a, dev)
    else:
        res = bench(a, dev)
    text = json.dumps(res, indent=1)
    print(text, flush=True)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
