#!/usr/bin/env python3
"""PyTorch's side of the accuracy protocol for the BN MLP row: 784-256-256-10
with BN before each ReLU, SGD lr 0.01 momentum 0.9, batch 64, 10 epochs, one
thread, seeds 1-3; final test accuracy in eval mode. --init he uses He-normal
weights (bnorm's initialisation) instead of PyTorch's default.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_accuracy.py [--init default|he]
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import find, mlp, read_idx  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--init", choices=("default", "he"), default="default")
    ap.add_argument("--epochs", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(1)

    def load(stem):
        x = read_idx(find(a.data, stem + "-images-idx3-ubyte")).astype(np.float32)
        y = read_idx(find(a.data, stem + "-labels-idx1-ubyte")).astype(np.int64)
        return x, y

    xs, ys = load("train")
    xt, yt = load("t10k")
    mean, std = xs.mean(), xs.std()
    x = torch.from_numpy((xs - mean) / std).reshape(-1, 784)
    xte = torch.from_numpy((xt - mean) / std).reshape(-1, 784)
    y, yte = torch.from_numpy(ys), torch.from_numpy(yt)
    accs = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        model = mlp(True)
        if a.init == "he":
            for m in model.modules():
                if isinstance(m, torch.nn.Linear):
                    torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    if m.bias is not None:
                        torch.nn.init.zeros_(m.bias)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        for _ in range(a.epochs):
            model.train()
            perm = torch.randperm(x.shape[0])
            for i in range(0, x.shape[0], 64):
                idx = perm[i:i + 64]
                opt.zero_grad()
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(xte).argmax(1) == yte).float().mean().item()
        accs.append(acc)
        print(f"init {a.init} seed {seed}: {100 * acc:.2f}%", flush=True)
    print(f"init {a.init} mean: {100 * sum(accs) / len(accs):.2f}%")


if __name__ == "__main__":
    main()
