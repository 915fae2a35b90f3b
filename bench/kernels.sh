#!/usr/bin/env bash
# The kernel benchmark in one command: installs its peers (oneDNN from
# libdnnl-dev, PyTorch from python3-torch), builds bench_bn, and runs it on
# every case at 1 and 2 threads. Prints the table and writes bench_bn.csv
# in the build folder. Extra arguments go to bench_bn (for example
# --case 32x64 --threads 2).
#
#   bash bench/kernels.sh [bench_bn arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh libdnnl-dev python3-torch
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DBNORM_BUILD_BENCH=ON \
    -DBNORM_BUILD_TESTS=OFF -DBNORM_BUILD_TOOLS=OFF -DBNORM_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-bench -j "$(nproc)" --target bench_bn >/dev/null
cd build-bench
./bench/bench_bn --csv bench_bn.csv "$@"
