#!/usr/bin/env bash
# The main job: installs what it needs (OpenBLAS, zlib, libpng, OpenMPI, the
# Fashion-MNIST dataset), builds, and shows what batch norm buys: `bnorm
# compare` with its defaults (the MLP with and without batch norm at a normal
# and a high learning rate), then `bnorm paper` (the BN paper's Figure 1:
# accuracy and a sigmoid's input over 50,000 steps, with and without BN).
# Options are passed to compare. About three minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
./build/tools/bnorm compare "$@"
echo
./build/tools/bnorm paper
echo
echo "pictures: bnorm-compare/compare.png (learning curves, loss per step, each layer's BN input)"
echo "          bnorm-paper/paper.png (the BN paper's Figure 1; docs/PAPER.md reads it)"
