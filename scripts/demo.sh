#!/usr/bin/env bash
# The main job: installs what it needs (OpenBLAS, zlib, libpng, the
# Fashion-MNIST dataset), builds, and runs `bnorm compare` with its defaults:
# the MLP with and without batch norm at a normal and a high learning rate.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
./build/tools/bnorm compare "$@"
