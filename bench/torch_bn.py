#!/usr/bin/env python3
"""The PyTorch peer of bench_bn: times batch norm (training forward with the
running-statistics update, inference, backward, backward with frozen
statistics) per case and thread count, channels_last memory for NHWC.
PyTorch 1.13 has no out= form of these operators, so each call allocates its
outputs; bench_bn runs it with glibc serving every block from a heap that
is never trimmed (MALLOC_MMAP_MAX_=0, MALLOC_TRIM_THRESHOLD_), so freed
outputs are reused without page faults. Prints `case/threads/op
milliseconds` lines.

    python3 bench/torch_bn.py --threads 1,2 NAME:N,C,H,W:nchw|nhwc ...
"""
import argparse
import time

import torch


def median_ms(fn, reps):
    for _ in range(3):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2] * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("cases", nargs="+")
    a = ap.parse_args()
    aten = torch.ops.aten
    for spec in a.cases:
        name, dims, layout = spec.split(":")
        n, c, h, w = (int(v) for v in dims.split(","))
        fmt = torch.channels_last if layout == "nhwc" and h * w > 1 else torch.contiguous_format
        shape = (n, c, h, w) if h * w > 1 else (n, c)
        g = torch.Generator().manual_seed(1)
        x = torch.rand(shape, generator=g).contiguous(memory_format=fmt)
        dy = torch.rand(shape, generator=g).contiguous(memory_format=fmt)
        weight, bias = torch.ones(c), torch.zeros(c)
        rm, rv = torch.zeros(c), torch.ones(c)
        reps = 15 if x.numel() * 4 > (64 << 20) else 40

        saved = {}

        def fwd_train():
            _, saved["mean"], saved["invstd"] = aten.native_batch_norm(
                x, weight, bias, rm, rv, True, 0.1, 1e-5)

        def infer():
            aten.native_batch_norm(x, weight, bias, rm, rv, False, 0.1, 1e-5)

        def bwd():
            aten.native_batch_norm_backward(dy, x, weight, rm, rv, saved["mean"],
                                            saved["invstd"], True, 1e-5, [True, True, True])

        def bwd_frozen():
            aten.native_batch_norm_backward(dy, x, weight, rm, rv, None, None, False, 1e-5,
                                            [True, True, True])

        for t in (int(v) for v in a.threads.split(",")):
            torch.set_num_threads(t)
            fwd_train()
            for op, fn in (("train-fwd", fwd_train), ("infer", infer), ("bwd", bwd),
                           ("bwd-frozen", bwd_frozen)):
                print(f"{name}/{t}/{op} {median_ms(fn, reps):.4f}", flush=True)


if __name__ == "__main__":
    with torch.no_grad():
        main()
