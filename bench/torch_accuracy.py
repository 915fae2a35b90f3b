#!/usr/bin/env python3
"""PyTorch's side of the accuracy protocol for the BN rows: the MLP
784-256-256-10 with BN before each ReLU (SGD lr 0.01, 10 epochs), or with
--model cnn the CNN conv32-BN-ReLU-pool, conv64-BN-ReLU-pool, dense128-BN-ReLU,
dense10 (lr 0.05, 5 epochs); momentum 0.9, batch 64, seeds 1-3; final test
accuracy in eval mode. --init he uses He-normal weights (bnorm's
initialisation) instead of PyTorch's default.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_accuracy.py [--model mlp|cnn]
        [--init default|he] [--threads N]
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import cnn, find, mlp, read_idx  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--init", choices=("default", "he"), default="default")
    ap.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    ap.add_argument("--epochs", type=int, default=0, help="default 10 (mlp), 5 (cnn)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    epochs = a.epochs or (10 if a.model == "mlp" else 5)
    lr = 0.01 if a.model == "mlp" else 0.05
    shape = (-1, 784) if a.model == "mlp" else (-1, 1, 28, 28)

    def load(stem):
        x = read_idx(find(a.data, stem + "-images-idx3-ubyte")).astype(np.float32)
        y = read_idx(find(a.data, stem + "-labels-idx1-ubyte")).astype(np.int64)
        return x, y

    xs, ys = load("train")
    xt, yt = load("t10k")
    mean, std = xs.mean(), xs.std()
    x = torch.from_numpy((xs - mean) / std).reshape(shape)
    xte = torch.from_numpy((xt - mean) / std).reshape(shape)
    y, yte = torch.from_numpy(ys), torch.from_numpy(yt)
    accs = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        model = mlp(True) if a.model == "mlp" else cnn(True)
        if a.init == "he":
            for m in model.modules():
                if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                    torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    if m.bias is not None:
                        torch.nn.init.zeros_(m.bias)
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        for _ in range(epochs):
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
        print(f"{a.model} init {a.init} seed {seed}: {100 * acc:.2f}%", flush=True)
    print(f"{a.model} init {a.init} mean: {100 * sum(accs) / len(accs):.2f}%")


if __name__ == "__main__":
    main()
