#!/usr/bin/env bash
# Time per training step of LeNet-5-Caffe, batch 64, one thread: dynsparse
# (benchmarks/lenet5_caffe_step: DST, dense and GEMM floor, alternating) against PyTorch
# 1.13 (benchmarks/pytorch/dst_lenet5.py --time-steps: DST with masked convolutions through
# the custom autograd step function, and dense), run one after the other, ROUNDS times.
#
#   benchmarks/compare_pytorch_lenet5.sh [--rounds 2] [--steps 200] [--coretype SkylakeX] [--build-dir build]
#
# Prints each program's median ms per step and the ratios ours / PyTorch (medians over
# rounds), by wall time and by process CPU time (less disturbed by other jobs on a shared
# machine). Both programs get the same OpenBLAS kernels: OPENBLAS_CORETYPE from the
# environment or --coretype. PYTHON defaults to /usr/bin/python3 (Debian's python3-torch).
set -euo pipefail
ROUNDS=2
STEPS=200
BUILD_DIR=build
PYTHON=${PYTHON:-/usr/bin/python3}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --steps) STEPS=${2:?}; shift 2 ;;
    --build-dir) BUILD_DIR=${2:?}; shift 2 ;;
    --coretype) export OPENBLAS_CORETYPE=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option '$1'" >&2; exit 1 ;;
  esac
done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
if [[ $BUILD_DIR != /* && ! -d $BUILD_DIR && -d $ROOT/$BUILD_DIR ]]; then BUILD_DIR="$ROOT/$BUILD_DIR"; fi
STEP_BENCH="$BUILD_DIR/bin/lenet5_caffe_step"
[[ -x $STEP_BENCH ]] || { echo "error: $STEP_BENCH not found; build target lenet5_caffe_step" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/compare_lenet5.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "date $(date -R), load average $(cut -d' ' -f1-3 /proc/loadavg), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
for ((r = 1; r <= ROUNDS; ++r)); do
  echo "round $r/$ROUNDS"
  "$STEP_BENCH" --steps "$STEPS" --rounds 3 --json "$WORK/ours.$r.json" | sed 's/^/  ours: /'
  "$PYTHON" "$HERE/pytorch/dst_lenet5.py" --time-steps "$STEPS" --json "$WORK/pt_dst.$r.json" | tail -n 1 | sed 's/^/  PyTorch DST: /'
  "$PYTHON" "$HERE/pytorch/dst_lenet5.py" --time-steps "$STEPS" --dense --json "$WORK/pt_dense.$r.json" | tail -n 1 | sed 's/^/  PyTorch dense: /'
done
"$PYTHON" - "$WORK" "$ROUNDS" <<'PY'
import json, os, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def med(prefix, key):
    return statistics.median(json.load(open(os.path.join(work, f"{prefix}.{r}.json")))[key]
                             for r in range(1, rounds + 1))
o_dst, o_dense, floor = med("ours", "dst_ms_per_step"), med("ours", "dense_ms_per_step"), med("ours", "gemm_floor_ms_per_step")
p_dst, p_dense = med("pt_dst", "ms_per_step"), med("pt_dense", "ms_per_step")
print(f"\nmedian ms per step (batch 64, 1 thread)   ours   PyTorch   ours/PyTorch")
print(f"DST                                      {o_dst:7.2f} {p_dst:8.2f} {o_dst / p_dst:10.2f}")
print(f"dense                                    {o_dense:7.2f} {p_dense:8.2f} {o_dense / p_dense:10.2f}")
print(f"GEMM floor {floor:.2f} ms; ours DST/floor {o_dst / floor:.2f}, DST/dense {o_dst / o_dense:.2f}")
c_dst, c_dense = med("ours", "dst_cpu_ms_per_step"), med("ours", "dense_cpu_ms_per_step")
q_dst, q_dense = med("pt_dst", "cpu_ms_per_step"), med("pt_dense", "cpu_ms_per_step")
print(f"\nmedian CPU ms per step (process CPU time)  ours   PyTorch   ours/PyTorch")
print(f"DST                                      {c_dst:7.2f} {q_dst:8.2f} {c_dst / q_dst:10.2f}")
print(f"dense                                    {c_dense:7.2f} {q_dense:8.2f} {c_dense / q_dense:10.2f}")
PY
