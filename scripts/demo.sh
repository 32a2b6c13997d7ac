#!/usr/bin/env bash
# Trains the default DST LeNet-300-100 on Fashion-MNIST.
#
#   scripts/demo.sh [lenet_300_100 options...]
#
# Installs the Debian packages it needs (apt-get, via sudo when not root), configures
# build/ (Release), builds the lenet_300_100 example and runs it with the given arguments.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(cmake g++ make libxtensor-dev libxtensor-blas-dev libopenblas-dev doctest-dev
          zlib1g-dev dataset-fashion-mnist)

source scripts/install_packages.sh

install_missing_packages "${packages[@]}"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build --target lenet_300_100 -j2
exec build/bin/lenet_300_100 "$@"
