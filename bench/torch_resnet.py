#!/usr/bin/env python3
"""The PyTorch side of bench/resnet_accuracy.sh: the residual CNN of
models/resnet.net (the blocks of bench/torch_train.py) under bnorm's
protocol: SGD with momentum, L2 weight decay on the conv and linear weights
only, a linear warm-up over the first epoch then a cosine annealing to 0 at
the last step (both per step), random crops of the image padded with black
pixels and horizontal flips, batch 64, the training set's pixel
standardisation. Prints `key value` lines: the test accuracy in eval mode
after each epoch, and the seconds."""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from torch_train import find, read_idx, resnet  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--crop-pad", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--train-limit", type=int, default=0, help="first N training images (0: all)")
    ap.add_argument("--test-limit", type=int, default=0, help="first N test images (0: all)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xs = read_idx(find(a.data, "train-images-idx3-ubyte")).astype(np.float32) / 255.0
    ys = read_idx(find(a.data, "train-labels-idx1-ubyte")).astype(np.int64)
    xt = read_idx(find(a.data, "t10k-images-idx3-ubyte")).astype(np.float32) / 255.0
    yt = read_idx(find(a.data, "t10k-labels-idx1-ubyte")).astype(np.int64)
    if a.train_limit:
        xs, ys = xs[:a.train_limit], ys[:a.train_limit]
    if a.test_limit:
        xt, yt = xt[:a.test_limit], yt[:a.test_limit]
    mean, std = xs.mean(), xs.std()
    x = torch.from_numpy((xs - mean) / std).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(ys)
    xtest = torch.from_numpy((xt - mean) / std).reshape(-1, 1, 28, 28)
    ytest = torch.from_numpy(yt)
    black = float(-mean / std)
    model = resnet()
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    rest = [p for n, p in model.named_parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": a.weight_decay},
                           {"params": rest, "weight_decay": 0.0}], lr=a.lr, momentum=a.momentum)
    n = x.shape[0]
    per_epoch = n // a.batch + (1 if n % a.batch >= 2 else 0)
    total, warm = per_epoch * a.epochs, per_epoch
    g = torch.Generator().manual_seed(a.seed)
    step, pad, t0 = 0, a.crop_pad, time.perf_counter()
    for epoch in range(a.epochs):
        model.train()
        order = torch.randperm(n, generator=g)
        for s in range(0, n, a.batch):
            idx = order[s:s + a.batch]
            if idx.numel() < 2:
                break
            xb = x[idx]
            if pad:
                xb = F.pad(xb, (pad, pad, pad, pad), value=black)
                dy = torch.randint(0, 2 * pad + 1, (idx.numel(),), generator=g)
                dx = torch.randint(0, 2 * pad + 1, (idx.numel(),), generator=g)
                xb = torch.stack([xb[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
                                  for i in range(idx.numel())])
            flip = torch.rand(idx.numel(), generator=g) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            lr = a.lr * (step + 1) / warm if step < warm else \
                0.5 * a.lr * (1 + math.cos(math.pi * (step - warm) / (total - warm)))
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), y[idx]).backward()
            opt.step()
            step += 1
        model.eval()
        with torch.no_grad():
            right = sum((model(xtest[i:i + 500]).argmax(1) == ytest[i:i + 500]).sum().item()
                        for i in range(0, xtest.shape[0], 500))
        print(f"torch_epoch {epoch + 1} {right / xtest.shape[0]:.4f} "
              f"{time.perf_counter() - t0:.1f}", flush=True)
    print(f"torch_test_acc {right / xtest.shape[0]:.4f}")
    print(f"torch_seconds {time.perf_counter() - t0:.1f}")


if __name__ == "__main__":
    main()
