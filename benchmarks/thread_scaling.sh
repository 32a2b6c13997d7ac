#!/usr/bin/env bash
# 1-thread against 2-thread training speed (ds::set_threads: BLAS and the library's own
# loops) for LeNet-5-Caffe steps and LeNet-300-100 epochs, batch 64.
#
#   benchmarks/thread_scaling.sh [--rounds N] [--steps N] [--epochs N] [--build-dir DIR]
#
# Each round runs lenet5_caffe_step with --threads 1 then --threads 2 (N steps, DST and
# dense alternating inside each program), then lenet_300_100_epoch likewise (N epochs);
# the table gives medians over rounds and the speedup t(1 thread) / t(2 threads). The two
# thread counts alternate so that load from elsewhere on the machine hits both alike, but
# a 2-thread figure needs both cores free: run it on an otherwise idle machine.
set -euo pipefail

usage() { sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

ROUNDS=3
STEPS=200
EPOCHS=2
BUILD_DIR=build
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
    --steps) STEPS=${2:?--steps needs a value}; shift 2 ;;
    --epochs) EPOCHS=${2:?--epochs needs a value}; shift 2 ;;
    --build-dir) BUILD_DIR=${2:?--build-dir needs a value}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option '$1' (see --help)" >&2; exit 1 ;;
  esac
done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
if [[ $BUILD_DIR != /* && ! -d $BUILD_DIR && -d $ROOT/$BUILD_DIR ]]; then BUILD_DIR="$ROOT/$BUILD_DIR"; fi
for p in lenet5_caffe_step lenet_300_100_epoch; do
  [[ -x $BUILD_DIR/bin/$p ]] || { echo "error: $BUILD_DIR/bin/$p not found; build target $p" >&2; exit 1; }
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/thread_scaling.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "date $(date -R), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= ROUNDS; ++r)); do
  echo "round $r/$ROUNDS"
  for t in 1 2; do
    "$BUILD_DIR/bin/lenet5_caffe_step" --steps "$STEPS" --rounds 2 --threads "$t" \
      --json "$WORK/lenet5.$t.$r.json" | grep '^median' | sed "s/^/  LeNet-5-Caffe, $t thread(s): /"
  done
  for t in 1 2; do
    "$BUILD_DIR/bin/lenet_300_100_epoch" --epochs "$EPOCHS" --threads "$t" \
      --json "$WORK/lenet300.$t.$r.json" | grep '^median' | sed "s/^/  LeNet-300-100, $t thread(s): /"
  done
done
python3 - "$WORK" "$ROUNDS" <<'PY'
import json, os, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def med(name, t, key):
    return statistics.median(json.load(open(os.path.join(work, f"{name}.{t}.{r}.json")))[key]
                             for r in range(1, rounds + 1))
print("\nmedian over rounds                 1 thread   2 threads   speedup")
for label, name, key, unit in [
        ("LeNet-5-Caffe DST step", "lenet5", "dst_ms_per_step", "ms"),
        ("LeNet-5-Caffe dense step", "lenet5", "dense_ms_per_step", "ms"),
        ("LeNet-300-100 DST epoch", "lenet300", "dst_seconds_per_epoch", "s"),
        ("LeNet-300-100 dense epoch", "lenet300", "dense_seconds_per_epoch", "s")]:
    one, two = med(name, 1, key), med(name, 2, key)
    print(f"{label:<30} {one:8.3f} {unit:<2} {two:8.3f} {unit:<2} {one / two:8.2f}x")
PY
