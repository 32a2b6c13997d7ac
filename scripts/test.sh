#!/usr/bin/env bash
# Configures, builds and tests the whole tree.
#
#   scripts/test.sh              build/            Release
#   scripts/test.sh --sanitize   build-sanitize/   Debug + ASan/UBSan (DYNSPARSE_SANITIZE=ON)
#
# Installs the Debian packages it needs (apt-get, via sudo when not root), builds every
# target with -j2 and runs ctest -j2. Exits non-zero on any failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

build_dir=build
cmake_args=(-DCMAKE_BUILD_TYPE=Release)
case "${1:-}" in
    "") ;;
    --sanitize)
        build_dir=build-sanitize
        cmake_args=(-DCMAKE_BUILD_TYPE=Debug -DDYNSPARSE_SANITIZE=ON)
        ;;
    -h|--help)
        sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "test.sh: unknown argument '$1' (usage: scripts/test.sh [--sanitize])" >&2
        exit 2
        ;;
esac
if [[ $# -gt 1 ]]; then
    echo "test.sh: too many arguments (usage: scripts/test.sh [--sanitize])" >&2
    exit 2
fi

packages=(cmake g++ make libxtensor-dev libxtensor-blas-dev libopenblas-dev doctest-dev
          zlib1g-dev dataset-fashion-mnist libbenchmark-dev)

source scripts/install_packages.sh

install_missing_packages "${packages[@]}"

cmake -S . -B "$build_dir" "${cmake_args[@]}"
cmake --build "$build_dir" -j2
cd "$build_dir"
ctest --output-on-failure -j2
