#!/usr/bin/env bash
# Installs the Debian packages that building, testing and running bnorm need.
# Packages already present are left alone; nothing is downloaded otherwise.
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-dev libomp-dev libopenblas-dev zlib1g-dev libpng-dev
      libopenmpi-dev openmpi-bin
      dataset-fashion-mnist "$@")
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
