#!/usr/bin/env python3
"""The PyTorch side of bench/train_vs_torch.sh: the same networks, data,
batch size and optimizer as `bnorm train`, timed per epoch, and the BN MLP's
single-sample inference. Prints one `key value` line per figure."""
import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(directory, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(directory, name)
        if os.path.exists(p):
            return p
    raise SystemExit(f"torch_train.py: no {stem}[.gz] in {directory}")


def mlp(bn):
    layers, width = [nn.Flatten()], 784
    for _ in range(2):
        layers += [nn.Linear(width, 256, bias=not bn)]
        layers += [nn.BatchNorm1d(256)] if bn else []
        layers += [nn.ReLU()]
        width = 256
    return nn.Sequential(*layers, nn.Linear(256, 10))


def cnn(bn):
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=not bn)] + \
            ([nn.BatchNorm2d(cout)] if bn else []) + [nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*block(1, 32), *block(32, 64), nn.Flatten(),
                         nn.Linear(64 * 7 * 7, 128, bias=not bn),
                         *([nn.BatchNorm1d(128)] if bn else []), nn.ReLU(), nn.Linear(128, 10))


class Block(nn.Module):
    """A basic residual block as models/resnet.net writes it: conv-bn-relu-
    conv-bn, plus the input (or its 1x1 stride-2 projection with BN), ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        skip = x if self.proj is None else self.proj(x)
        return F.relu(self.b2(self.c2(F.relu(self.b1(self.c1(x))))) + skip)


def resnet():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                         nn.ReLU(), Block(16, 16, 1), Block(16, 16, 1), Block(16, 32, 2),
                         Block(32, 32, 1), Block(32, 64, 2), Block(64, 64, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def single_us(model, x, reps):
    model.eval()
    with torch.no_grad():
        for i in range(reps // 10):
            model(x[i:i + 1])
        t0 = time.perf_counter()
        for i in range(reps):
            model(x[i:i + 1])
    return (time.perf_counter() - t0) / reps * 1e6


def epoch_seconds(model, x, y, lr, batch, epochs, seed):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    times = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=g)
        t0 = time.perf_counter()
        for s in range(0, x.shape[0] - 1, batch):
            idx = order[s:s + batch]
            if idx.numel() < 2:
                break
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--cnn-limit", type=int, default=0, help="train the CNN on the first N images")
    ap.add_argument("--skip-cnn", action="store_true")
    ap.add_argument("--resnet-limit", type=int, default=0,
                    help="train the residual CNN on the first N images (0: skip it)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    xs = read_idx(find(a.data, "train-images-idx3-ubyte")).astype(np.float32)
    ys = read_idx(find(a.data, "train-labels-idx1-ubyte")).astype(np.int64)
    mean, std = xs.mean(), xs.std()
    x = torch.from_numpy((xs - mean) / std).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(ys)
    print(f"torch_version {torch.__version__}")
    t = epoch_seconds(mlp(True), x, y, 0.01, 64, a.epochs, 1)
    print(f"torch_mlp_bn_epoch_s {min(t):.3f}")
    t = epoch_seconds(mlp(False), x, y, 0.01, 64, a.epochs, 1)
    print(f"torch_mlp_nobn_epoch_s {min(t):.3f}")
    if not a.skip_cnn:
        n = a.cnn_limit or x.shape[0]
        t = epoch_seconds(cnn(True), x[:n], y[:n], 0.05, 64, a.epochs, 1)
        print(f"torch_cnn_bn_epoch_s {min(t) * x.shape[0] / n:.3f}")
    if a.resnet_limit:
        n = a.resnet_limit
        model = resnet()
        t = epoch_seconds(model, x[:n], y[:n], 0.05, 64, 1, 1)
        print(f"torch_resnet_epoch_s {min(t) * x.shape[0] / n:.3f}")
        print(f"torch_resnet_single_us {single_us(model, x, 300):.1f}")
    model = mlp(True)
    epoch_seconds(model, x[:6400], y[:6400], 0.01, 64, 1, 1)
    print(f"torch_mlp_bn_single_us {single_us(model, x, 2000):.1f}")


if __name__ == "__main__":
    main()
