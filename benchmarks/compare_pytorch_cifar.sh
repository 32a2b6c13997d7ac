#!/usr/bin/env bash
# Time of one DST training step (batch 64) of VGG-16 and WideResNet-16-8 on CIFAR-shaped
# inputs: dynsparse (benchmarks/cifar_step) against PyTorch 1.13 (benchmarks/pytorch/
# dst_cifar.py: the same networks with the same masked layers), at 1 and 2 threads, run
# one after the other ROUNDS times. Prints each run and the ratios ours / PyTorch of the
# medians. The two programs get the same OpenBLAS kernels (OPENBLAS_CORETYPE from the
# environment, or --coretype); PyTorch's convolutions run on oneDNN (mkldnn) regardless.
#
#   benchmarks/compare_pytorch_cifar.sh [--rounds 1] [--vgg-steps 3] [--wrn-steps 2]
#        [--threads "1 2"] [--models "vgg16 wrn16_8"] [--coretype SkylakeX] [--build-dir build]
set -euo pipefail
ROUNDS=1
VGG_STEPS=3
WRN_STEPS=2
THREADS="1 2"
MODELS="vgg16 wrn16_8"
BUILD_DIR=build
PYTHON=${PYTHON:-/usr/bin/python3}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --vgg-steps) VGG_STEPS=${2:?}; shift 2 ;;
    --wrn-steps) WRN_STEPS=${2:?}; shift 2 ;;
    --threads) THREADS=${2:?}; shift 2 ;;
    --models) MODELS=${2:?}; shift 2 ;;
    --coretype) export OPENBLAS_CORETYPE=${2:?}; shift 2 ;;
    --build-dir) BUILD_DIR=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option '$1'" >&2; exit 1 ;;
  esac
done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
if [[ $BUILD_DIR != /* && ! -d $BUILD_DIR && -d $ROOT/$BUILD_DIR ]]; then BUILD_DIR="$ROOT/$BUILD_DIR"; fi
STEP_BENCH="$BUILD_DIR/bin/cifar_step"
[[ -x $STEP_BENCH ]] || { echo "error: $STEP_BENCH not found; build target cifar_step" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/compare_cifar.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "date $(date -R), load average $(cut -d' ' -f1-3 /proc/loadavg), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
for ((r = 1; r <= ROUNDS; ++r)); do
  for model in $MODELS; do
    steps=$VGG_STEPS; [[ $model == wrn16_8 ]] && steps=$WRN_STEPS
    for t in $THREADS; do
      echo "round $r, $model, $t thread(s): $(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
      "$STEP_BENCH" --model "$model" --steps "$steps" --threads "$t" --json "$WORK/ours.$model.$t.$r.json" \
        | head -2 | sed 's/^/  ours: /'
      "$PYTHON" "$HERE/pytorch/dst_cifar.py" --model "$model" --time-steps "$steps" --threads "$t" \
        --json "$WORK/pt.$model.$t.$r.json" | sed 's/^/  PyTorch: /'
    done
  done
done
"$PYTHON" - "$WORK" "$ROUNDS" "$MODELS" "$THREADS" <<'PY'
import json, os, statistics, sys
work, rounds, models, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
def med(prefix, model, t, key):
    return statistics.median(json.load(open(os.path.join(work, f"{prefix}.{model}.{t}.{r}.json")))[key]
                             for r in range(1, rounds + 1))
print("\nmedian ms per DST step (batch 64)   threads     ours   PyTorch  ours/PyTorch  ours/floor")
for model in models:
    for t in threads:
        o, p = med("ours", model, t, "dst_ms_per_step"), med("pt", model, t, "ms_per_step")
        f = med("ours", model, t, "floor_ms_per_step")
        print(f"{model:34s} {t:>7s} {o:8.0f} {p:9.0f} {o / p:13.2f} {o / f:11.2f}")
    if len(threads) > 1:
        a, b = threads[0], threads[-1]
        so = med("ours", model, a, "dst_ms_per_step") / med("ours", model, b, "dst_ms_per_step")
        sp = med("pt", model, a, "ms_per_step") / med("pt", model, b, "ms_per_step")
        print(f"{model:34s} speedup {a} -> {b} threads: ours {so:.2f}x, PyTorch {sp:.2f}x")
PY
