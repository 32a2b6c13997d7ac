#!/usr/bin/env bash
# The data-parallel (MPI) build and its tests on 2 ranks: build-mpi/, Release,
# -DDYNSPARSE_WITH_MPI=ON. Installs OpenMPI (apt-get, via sudo when not root), builds the
# MPI test executable and lenet_300_100, runs the tests labelled `mpi` with
# `mpirun -np 2 --oversubscribe`. A few minutes on 2 cores.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/install_packages.sh
install_missing_packages cmake g++ make libxtensor-dev libxtensor-blas-dev libopenblas-dev doctest-dev \
                         zlib1g-dev dataset-fashion-mnist libopenmpi-dev openmpi-bin

cmake -S . -B build-mpi -DCMAKE_BUILD_TYPE=Release -DDYNSPARSE_WITH_MPI=ON -DDYNSPARSE_BUILD_BENCHMARKS=OFF
cmake --build build-mpi -j2 --target dynsparse_mpi_tests lenet_300_100
cd build-mpi
ctest -L '^mpi$' --output-on-failure
