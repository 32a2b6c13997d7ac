#!/usr/bin/env bash
# Every program built from examples/*.cpp and benchmarks/*.cpp must answer --help (exit 0,
# a usage text on stdout) and end a bogus flag with a message and a plain error status
# (1 or 2: never an abort, a signal or a training run).
#
#   scripts/check_help.sh [BUILD_DIR]     (default: build)
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build="${1:-build}"
export OPENBLAS_NUM_THREADS=1
failed=0
checked=0
for src in examples/*.cpp benchmarks/*.cpp; do
    name=$(basename "$src" .cpp)
    bin="$build/bin/$name"
    # Optional components: built only when their packages were found (MPI, Google Benchmark).
    if [[ ! -x "$bin" ]] && { [[ "$name" == mpi_* ]] || [[ "$name" == micro_* ]]; }; then
        echo "skip $name: an optional component, not in this build"
        continue
    fi
    if [[ ! -x "$bin" ]]; then
        echo "FAIL $name: not built ($bin)"
        failed=$((failed + 1))
        continue
    fi
    out=$(timeout 60 "$bin" --help 2>/dev/null)
    rc=$?
    if [[ $rc -ne 0 || -z "$out" ]]; then
        echo "FAIL $name --help: exit $rc, $(wc -c <<<"$out") bytes of usage"
        failed=$((failed + 1))
    fi
    err=$(timeout 60 "$bin" --no-such-flag-xyz 2>&1 >/dev/null)
    rc=$?
    if [[ $rc -ne 1 && $rc -ne 2 ]] || [[ -z "$err" ]]; then
        echo "FAIL $name --no-such-flag-xyz: exit $rc (want 1 or 2 with a message), stderr: ${err:0:200}"
        failed=$((failed + 1))
    fi
    checked=$((checked + 1))
done
echo "check_help: $checked programs, $failed failure(s)"
[[ $failed -eq 0 && $checked -gt 0 ]]
