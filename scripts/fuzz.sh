#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang++-14 and -fsanitize=fuzzer,address,undefined
# in build-fuzz/, writes their seed inputs, and runs each target for SECONDS seconds
# (default 20). Prints the executions per target; exits non-zero on any crash, hang,
# leak or sanitizer report (the reproducer is left in build-fuzz/artifacts/).
#
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -eq 0 ]]; then
    echo "fuzz.sh: SECONDS must be a positive integer (usage: scripts/fuzz.sh [SECONDS])" >&2
    exit 2
fi

packages=(cmake make clang-14 libclang-rt-14-dev libxtensor-dev libxtensor-blas-dev libopenblas-dev
          zlib1g-dev)
source scripts/install_packages.sh
install_missing_packages "${packages[@]}"

build=build-fuzz
CXX=clang++-14 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDYNSPARSE_BUILD_FUZZERS=ON \
    -DDYNSPARSE_BUILD_TESTS=OFF -DDYNSPARSE_BUILD_EXAMPLES=OFF -DDYNSPARSE_BUILD_BENCHMARKS=OFF >/dev/null
targets=(fuzz_idx fuzz_checkpoint fuzz_export)
cmake --build "$build" --target "${targets[@]}" -j2

export OPENBLAS_NUM_THREADS=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p "$build/artifacts"
status=0
summary=()
for t in "${targets[@]}"; do
    corpus="$build/corpus/$t"
    mkdir -p "$corpus"
    DYNSPARSE_FUZZ_SEEDS="$corpus" "$build/fuzz/$t" -runs=0 "$corpus" >/dev/null 2>&1
    log="$build/$t.log"
    if "$build/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$build/artifacts/$t-" "$corpus" >"$log" 2>&1; then
        result=ok
    else
        result=FAILED
        status=1
        tail -40 "$log" >&2
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    summary+=("$t: $result, $runs executions in ${seconds} s, corpus $(ls "$corpus" | wc -l) inputs")
done
printf '%s\n' "${summary[@]}"
exit $status
