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
    python3 bench/torch_bn.py --serve

With --serve it reads requests `NAME:N,C,H,W:LAYOUT THREADS REPEATS` on
standard input, one a line, and answers each with its four lines and a line
`end`: bench_bn keeps one such process and asks it for a round of timings
between its own rounds, so that PyTorch is timed in the same minutes as the
other implementations and, like them, keeps the best of its rounds.
"""
import argparse
import sys
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


class Case:
    """The tensors of one case, made once and reused across requests."""

    def __init__(self, spec):
        self.spec = spec
        self.name, dims, layout = spec.split(":")
        n, c, h, w = (int(v) for v in dims.split(","))
        fmt = torch.channels_last if layout == "nhwc" and h * w > 1 else torch.contiguous_format
        shape = (n, c, h, w) if h * w > 1 else (n, c)
        g = torch.Generator().manual_seed(1)
        self.x = torch.rand(shape, generator=g).contiguous(memory_format=fmt)
        self.dy = torch.rand(shape, generator=g).contiguous(memory_format=fmt)
        self.weight, self.bias = torch.ones(c), torch.zeros(c)
        self.rm, self.rv = torch.zeros(c), torch.ones(c)
        self.saved = {}

    def default_reps(self):
        return 15 if self.x.numel() * 4 > (64 << 20) else 40

    def time(self, threads, reps):
        aten = torch.ops.aten
        x, dy, weight, bias, rm, rv, saved = (self.x, self.dy, self.weight, self.bias, self.rm,
                                              self.rv, self.saved)

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

        torch.set_num_threads(threads)
        fwd_train()
        for op, fn in (("train-fwd", fwd_train), ("infer", infer), ("bwd", bwd),
                       ("bwd-frozen", bwd_frozen)):
            print(f"{self.name}/{threads}/{op} {median_ms(fn, reps):.4f}", flush=True)


def serve():
    case = None
    for line in sys.stdin:
        words = line.split()
        if len(words) != 3:
            print(f"error: expected 'CASE THREADS REPEATS', got {line.strip()!r}", flush=True)
            print("end", flush=True)
            continue
        if case is None or case.spec != words[0]:
            case = None  # free the previous case's tensors before making the next
            case = Case(words[0])
        case.time(int(words[1]), int(words[2]))
        print("end", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("cases", nargs="*")
    a = ap.parse_args()
    if a.serve:
        serve()
        return
    for spec in a.cases:
        case = Case(spec)
        for t in (int(v) for v in a.threads.split(",")):
            case.time(t, case.default_reps())


if __name__ == "__main__":
    with torch.no_grad():
        main()
