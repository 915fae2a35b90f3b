#!/usr/bin/env bash
# Training and inference speed of `bnorm` against PyTorch (Debian's
# python3-torch) in one invocation, on the same machine state: the BN MLP and
# no-BN MLP epochs, the BN CNN epoch, the residual CNN's epoch (both sides on
# the first --resnet-limit images, scaled to the 60,000), and single-sample
# inference of the BN MLP and the residual CNN (bnorm: BN folded). Both sides use OpenBLAS single-threaded and 2 threads of their own
# (PyTorch: torch.set_num_threads(2); bnorm: --threads 2), batch 64, SGD
# momentum 0.9, full Fashion-MNIST training set. Prints a table of seconds
# and ratios (bnorm / PyTorch: below 1 is faster).
#
# The machine's speed drifts over seconds to minutes, so the two sides run in
# alternating rounds (bnorm first in odd rounds, PyTorch first in even ones)
# and each figure is the best over all rounds.
#
#   bash bench/train_vs_torch.sh [--epochs N] [--rounds N] [--skip-cnn]
#                                [--resnet-limit N (default 12800; 0 skips it)]
#
# Extra environment (for example OPENBLAS_CORETYPE) applies to both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=2
rounds=3
skip_cnn=
resnet_limit=12800
while [ $# -gt 0 ]; do
    case $1 in
    --epochs) epochs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --skip-cnn) skip_cnn=--skip-cnn; shift ;;
    --resnet-limit) resnet_limit=$2; shift 2 ;;
    *) echo "usage: bash bench/train_vs_torch.sh [--epochs N] [--rounds N] [--skip-cnn]" >&2; exit 2 ;;
    esac
done
threads=2
bash scripts/install-deps.sh python3-torch
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
bnorm=build/tools/bnorm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OPENBLAS_NUM_THREADS=1

# The fastest epoch of each run: the first one also pays for page faults.
min_epoch() { awk -F, 'NR > 1 && ($6 < m || m == "") { m = $6 } END { print m }' "$1"; }

# Appends "key value" lines for one round of each side to $work/<side>.txt.
run_bnorm() {
    $bnorm train --model mlp --epochs "$epochs" --threads $threads --save "$work/mlp.safetensors" \
        --log "$work/mlp_bn.csv" >/dev/null
    echo "mlp_bn_epoch_s $(min_epoch "$work/mlp_bn.csv")"
    $bnorm train --model mlp --no-bn --epochs "$epochs" --threads $threads \
        --log "$work/mlp_nobn.csv" >/dev/null
    echo "mlp_nobn_epoch_s $(min_epoch "$work/mlp_nobn.csv")"
    if [ -z "$skip_cnn" ]; then
        $bnorm train --model cnn --lr 0.05 --epochs 1 --threads $threads \
            --log "$work/cnn_bn.csv" >/dev/null
        echo "cnn_bn_epoch_s $(min_epoch "$work/cnn_bn.csv")"
    fi
    echo "mlp_bn_single_us $($bnorm eval "$work/mlp.safetensors" --threads $threads |
        sed -n 's/.*one sample at a time.*(\([0-9.]*\) us\/image).*/\1/p')"
    if [ "$resnet_limit" -gt 0 ]; then
        $bnorm train --model resnet --lr 0.05 --epochs 1 --threads $threads \
            --train-limit "$resnet_limit" --test-limit 300 --save "$work/resnet.safetensors" \
            --log "$work/resnet.csv" >/dev/null
        echo "resnet_epoch_s $(min_epoch "$work/resnet.csv" | awk -v n="$resnet_limit" '{ print $1 * 60000 / n }')"
        echo "resnet_single_us $($bnorm eval "$work/resnet.safetensors" --threads $threads --test-limit 300 |
            sed -n 's/.*one sample at a time.*(\([0-9.]*\) us\/image).*/\1/p')"
    fi
}
# PyTorch allocates its activations and gradients anew at every step; with
# glibc's defaults, blocks above the mmap threshold go back to the kernel
# when freed and every step pays their page faults again (4x on this
# machine's CNN epoch). Keeping freed memory in the heap is how a PyTorch
# user on CPU would run it, so the peer runs that way.
run_torch() {
    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4294967296 \
        /usr/bin/python3 bench/torch_train.py --epochs "$epochs" --threads $threads $skip_cnn \
            --resnet-limit "$resnet_limit" |
        sed -n 's/^torch_//p'
}
for r in $(seq "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then order="bnorm torch"; else order="torch bnorm"; fi
    for side in $order; do
        echo "== round $r: $side"
        run_$side | tee -a "$work/$side.txt"
    done
done
# The best of all rounds for one key of one side.
get() { awk -v k="$2" '$1 == k && ($2 < m || m == "") { m = $2 } END { print m }' "$work/$1.txt"; }

row() { # name, ours, torch, unit
    if [ -z "$2" ] || [ -z "$3" ]; then return; fi
    awk -v n="$1" -v a="$2" -v b="$3" -v u="$4" \
        'BEGIN { printf "%-34s %10.3f %10.3f %8.2f\n", n " (" u ")", a, b, a / b }'
}
echo
printf "%-34s %10s %10s %8s\n" "case" "bnorm" "PyTorch" "ratio"
for key in mlp_bn_epoch_s mlp_nobn_epoch_s cnn_bn_epoch_s resnet_epoch_s mlp_bn_single_us \
    resnet_single_us; do
    case $key in
    mlp_bn_epoch_s) name="MLP 784-256-256-10, BN, epoch" unit=s ;;
    mlp_nobn_epoch_s) name="MLP, no BN, epoch" unit=s ;;
    cnn_bn_epoch_s) name="CNN, BN, epoch" unit=s ;;
    resnet_epoch_s) name="residual CNN, BN, epoch" unit=s ;;
    mlp_bn_single_us) name="BN MLP single-sample inference" unit=us ;;
    resnet_single_us) name="residual CNN single-sample" unit=us ;;
    esac
    row "$name" "$(get bnorm $key)" "$(get torch $key)" $unit
done
echo "(ratio = bnorm / PyTorch; $(nproc) cores, $threads threads each, OPENBLAS_NUM_THREADS=1," \
    "$epochs MLP epochs, fastest epoch, best of $rounds alternating rounds)"
