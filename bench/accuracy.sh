#!/usr/bin/env bash
# The accuracy protocol: every row of the reference table (MLP 784-256-256-10
# and the CNN, with and without BN, at normal and high learning rates),
# batch 64, SGD momentum 0.9, full Fashion-MNIST, each row the mean of three
# seeds. Prints the final test accuracy (test mode) per seed and the mean,
# and how many seeds diverged.
#
#   bash bench/accuracy.sh [--seeds "1 2 3"] [--skip-cnn]
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="1 2 3"
skip_cnn=
while [ $# -gt 0 ]; do
    case $1 in
    --seeds) seeds=$2; shift 2 ;;
    --skip-cnn) skip_cnn=1; shift ;;
    *) echo "usage: bash bench/accuracy.sh [--seeds \"1 2 3\"] [--skip-cnn]" >&2; exit 2 ;;
    esac
done
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run_row() { # label, model, lr, epochs, extra flags...
    local label=$1 model=$2 lr=$3 epochs=$4
    shift 4
    local accs="" diverged=0 reach85=""
    for seed in $seeds; do
        local csv=$work/run.csv
        build/tools/bnorm train --model "$model" --lr "$lr" --epochs "$epochs" --seed "$seed" \
            --log "$csv" "$@" >/dev/null 2>&1 || true
        # Last epoch's test accuracy, "diverged" when the run stopped on a NaN.
        local last
        last=$(awk -F, 'NR > 1 { a = $5; d = $7 } END { print (d == 1 ? "diverged" : a) }' "$csv")
        [ "$last" = diverged ] && diverged=$((diverged + 1))
        accs="$accs $last"
        reach85="$reach85 $(awk -F, 'NR > 1 && $7 == 0 && $5 >= 0.85 && !e { e = $2 } END { print e ? e : "-" }' "$csv")"
    done
    echo "$accs" | awk -v l="$label" -v d="$diverged" -v r="$reach85" '{
        s = 0; k = 0; line = "";
        for (i = 1; i <= NF; i++) {
            line = line sprintf(" %8s", $i == "diverged" ? "NaN" : sprintf("%.2f%%", 100 * $i));
            if ($i != "diverged") { s += $i; k++ } }
        printf "%-44s%s   mean %s   diverged %d/%d   epoch reaching 85%%:%s\n", l, line,
            k ? sprintf("%.2f%%", 100 * s / k) : "-", d, NF, r }'
}

echo "seeds: $seeds (test accuracy after the last epoch)"
run_row "MLP, no BN, lr 0.01, 10 epochs" mlp 0.01 10 --no-bn
run_row "MLP, BN before ReLU, lr 0.01, 10 epochs" mlp 0.01 10
run_row "MLP, BN, lr 0.1, 10 epochs" mlp 0.1 10
run_row "MLP, no BN, lr 0.1, 10 epochs" mlp 0.1 10 --no-bn
run_row "MLP, no BN, lr 0.5, 10 epochs" mlp 0.5 10 --no-bn
run_row "MLP, BN, lr 0.5, 10 epochs" mlp 0.5 10
if [ -z "$skip_cnn" ]; then
    run_row "CNN, BN, lr 0.05, 5 epochs" cnn 0.05 5
    run_row "CNN, no BN, lr 0.05, 5 epochs" cnn 0.05 5 --no-bn
fi
