#!/usr/bin/env bash
# The residual CNN's accuracy protocol: models/resnet.net trained by SGD
# (momentum 0.9, lr 0.05, batch 64) with L2 weight decay 5e-4 on the weights,
# a linear warm-up over the first epoch then cosine annealing to 0, random
# crops of the images padded by 2 pixels and horizontal flips, for 20 epochs
# (about 13 minutes a run for bnorm, 18 for PyTorch, on 2 cores): for seeds 1-3 with BN, once without BN, and
# the same protocol in PyTorch (bench/torch_resnet.py). Prints each run's
# final test accuracy and time, and the mean of the seeds.
#
#   bash bench/resnet_accuracy.sh [--epochs N] [--seeds "1 2 3"] [--skip-torch] [--skip-plain]
#   bash bench/resnet_accuracy.sh --speed ROUNDS
#
# --speed ROUNDS: the speed of the same protocol, side by side: ROUNDS
# rounds of one epoch on the first 12,800 training images (200 steps) and
# 1,000 test images, bnorm and PyTorch taking turns; each round's bnorm /
# PyTorch time, and their median (the machine's speed drifts by 1.5x over
# minutes: only ratios taken in the same minutes compare).
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=20
seeds="1 2 3"
skip_torch=
skip_plain=
speed=
while [ $# -gt 0 ]; do
    case $1 in
    --speed) speed=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --skip-torch) skip_torch=1; shift ;;
    --skip-plain) skip_plain=1; shift ;;
    *) echo "usage: bash bench/resnet_accuracy.sh [--epochs N] [--seeds \"1 2 3\"] [--skip-torch] [--skip-plain] | --speed ROUNDS" >&2; exit 2 ;;
    esac
done
bash scripts/install-deps.sh python3-torch
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OPENBLAS_NUM_THREADS=1
protocol=(--model resnet --epochs "$epochs" --batch 64 --lr 0.05 --momentum 0.9 --weight-decay 5e-4
          --lr-schedule cosine --warmup 1 --crop-pad 2 --flip --threads 2)
if [ -n "$speed" ]; then
    ratios=()
    for r in $(seq "$speed"); do
        t0=$(date +%s.%N)
        build/tools/bnorm train "${protocol[@]}" --epochs 1 --train-limit 12800 --test-limit 1000 >/dev/null
        t1=$(date +%s.%N)
        MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4294967296 /usr/bin/python3 bench/torch_resnet.py \
            --epochs 1 --train-limit 12800 --test-limit 1000 >/dev/null
        t2=$(date +%s.%N)
        ratio=$(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "%.3f", (b - a) / (c - b) }')
        awk -v r="$r" -v a="$t0" -v b="$t1" -v c="$t2" -v q="$ratio" \
            'BEGIN { printf "round %d: bnorm %.1f s, PyTorch %.1f s, bnorm / PyTorch %s\n", r, b - a, c - b, q }'
        ratios+=("$ratio")
    done
    printf "%s\n" "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "median bnorm / PyTorch over %d rounds: %s\n", NR, v[int((NR + 1) / 2)] }'
    exit 0
fi
results=()
run_bnorm() { # label, extra options...
    local label=$1; shift
    local t0=$SECONDS
    build/tools/bnorm train "${protocol[@]}" "$@" --log "$work/$label.csv" | grep epoch
    local acc; acc=$(tail -1 "$work/$label.csv" | cut -d, -f5)
    results+=("$label $acc $((SECONDS - t0))")
}
for s in $seeds; do run_bnorm "bnorm-bn-seed$s" --seed "$s"; done
[ -z "$skip_plain" ] && run_bnorm "bnorm-no-bn-seed1" --seed 1 --no-bn
if [ -z "$skip_torch" ]; then
    for s in $seeds; do
        t0=$SECONDS
        MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4294967296 /usr/bin/python3 bench/torch_resnet.py \
            --epochs "$epochs" --seed "$s" | tee "$work/torch$s.txt"
        results+=("torch-bn-seed$s $(sed -n 's/^torch_test_acc //p' "$work/torch$s.txt") $((SECONDS - t0))")
    done
fi
echo
printf "%-22s %10s %10s\n" run "test acc" minutes
for r in "${results[@]}"; do
    set -- $r
    awk -v n="$1" -v a="$2" -v s="$3" 'BEGIN { printf "%-22s %9.2f%% %10.1f\n", n, 100 * a, s / 60 }'
done
for side in bnorm-bn torch-bn; do
    printf "%s\n" "${results[@]}" | awk -v p="$side-seed" 'index($1, p) == 1 { s += $2; n++ }
        END { if (n) printf "mean of %d seeds, %s: %.2f%%\n", n, p, 100 * s / n }'
done
