#!/usr/bin/env bash
# Training and inference speed of `bnorm` against PyTorch (Debian's
# python3-torch) in one invocation, on the same machine state: the BN MLP and
# no-BN MLP epochs, the BN CNN epoch, and single-sample inference of the BN
# MLP. Both sides use OpenBLAS single-threaded and 2 threads of their own
# (PyTorch: torch.set_num_threads(2); bnorm: --threads 2), batch 64, SGD
# momentum 0.9, full Fashion-MNIST training set. Prints a table of seconds
# and ratios (bnorm / PyTorch: below 1 is faster).
#
#   bash bench/train_vs_torch.sh [--epochs N] [--skip-cnn]
#
# Extra environment (for example OPENBLAS_CORETYPE) applies to both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=2
skip_cnn=
while [ $# -gt 0 ]; do
    case $1 in
    --epochs) epochs=$2; shift 2 ;;
    --skip-cnn) skip_cnn=--skip-cnn; shift ;;
    *) echo "usage: bash bench/train_vs_torch.sh [--epochs N] [--skip-cnn]" >&2; exit 2 ;;
    esac
done
threads=2
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
bnorm=build/tools/bnorm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OPENBLAS_NUM_THREADS=1

# The fastest epoch of each run: the first one also pays for page faults.
min_epoch() { awk -F, 'NR > 1 && ($6 < m || m == "") { m = $6 } END { print m }' "$1"; }

echo "== bnorm"
$bnorm train --model mlp --epochs "$epochs" --threads $threads --save "$work/mlp.safetensors" \
    --log "$work/mlp_bn.csv" >/dev/null
ours_mlp_bn=$(min_epoch "$work/mlp_bn.csv")
$bnorm train --model mlp --no-bn --epochs "$epochs" --threads $threads --log "$work/mlp_nobn.csv" \
    >/dev/null
ours_mlp_nobn=$(min_epoch "$work/mlp_nobn.csv")
ours_cnn_bn=
if [ -z "$skip_cnn" ]; then
    $bnorm train --model cnn --lr 0.05 --epochs 1 --threads $threads --log "$work/cnn_bn.csv" \
        >/dev/null
    ours_cnn_bn=$(min_epoch "$work/cnn_bn.csv")
fi
ours_single=$($bnorm eval "$work/mlp.safetensors" --threads $threads |
    sed -n 's/.*one sample at a time.*(\([0-9.]*\) us\/image).*/\1/p')

echo "== PyTorch"
torch_out=$(/usr/bin/python3 bench/torch_train.py --epochs "$epochs" --threads $threads $skip_cnn)
echo "$torch_out"
get() { echo "$torch_out" | awk -v k="$1" '$1 == k { print $2 }'; }

row() { # name, ours, torch, unit
    if [ -z "$2" ] || [ -z "$3" ]; then return; fi
    awk -v n="$1" -v a="$2" -v b="$3" -v u="$4" \
        'BEGIN { printf "%-34s %10.3f %10.3f %8.2f\n", n " (" u ")", a, b, a / b }'
}
echo
printf "%-34s %10s %10s %8s\n" "case" "bnorm" "PyTorch" "ratio"
row "MLP 784-256-256-10, BN, epoch" "$ours_mlp_bn" "$(get torch_mlp_bn_epoch_s)" s
row "MLP, no BN, epoch" "$ours_mlp_nobn" "$(get torch_mlp_nobn_epoch_s)" s
row "CNN, BN, epoch" "$ours_cnn_bn" "$(get torch_cnn_bn_epoch_s)" s
row "BN MLP single-sample inference" "$ours_single" "$(get torch_mlp_bn_single_us)" us
echo "(ratio = bnorm / PyTorch; $(nproc) cores, $threads threads each, OPENBLAS_NUM_THREADS=1," \
    "$epochs MLP epochs, fastest epoch)"
