#!/usr/bin/env bash
# Time per training step of LSTM-a (2 x LSTM 128 over 28 rows of 28 pixels, dense head),
# Adam, batch 100, one thread: dynsparse (benchmarks/lstm_a_step: DST, dense and GEMM
# floor, alternating) against PyTorch 1.13 (benchmarks/pytorch/dst_lstm.py --time-steps:
# DST with masked weights fed to the fused LSTM op, and dense nn.LSTM), run one after the
# other, ROUNDS times; then the peak RSS of each program training one network alone.
#
#   benchmarks/compare_pytorch_lstm.sh [--rounds 2] [--steps 40] [--build-dir build]
#
# Prints each program's median ms per step, the ratios ours / PyTorch (medians over
# rounds), the GEMM floor and the peak RSS. PYTHON defaults to /usr/bin/python3 (Debian's
# python3-torch).
set -euo pipefail
ROUNDS=2
STEPS=40
BUILD_DIR=build
PYTHON=${PYTHON:-/usr/bin/python3}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --steps) STEPS=${2:?}; shift 2 ;;
    --build-dir) BUILD_DIR=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown option '$1'" >&2; exit 1 ;;
  esac
done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
if [[ $BUILD_DIR != /* && ! -d $BUILD_DIR && -d $ROOT/$BUILD_DIR ]]; then BUILD_DIR="$ROOT/$BUILD_DIR"; fi
STEP_BENCH="$BUILD_DIR/bin/lstm_a_step"
[[ -x $STEP_BENCH ]] || { echo "error: $STEP_BENCH not found; build target lstm_a_step" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/compare_lstm.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "date $(date -R), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= ROUNDS; ++r)); do
  echo "round $r/$ROUNDS"
  "$STEP_BENCH" --steps "$STEPS" --rounds 2 --json "$WORK/ours.$r.json" | sed 's/^/  ours: /'
  "$PYTHON" "$HERE/pytorch/dst_lstm.py" --time-steps "$STEPS" --json "$WORK/pt_dst.$r.json" | tail -n 1 | sed 's/^/  PyTorch DST: /'
  "$PYTHON" "$HERE/pytorch/dst_lstm.py" --time-steps "$STEPS" --dense --json "$WORK/pt_dense.$r.json" | tail -n 1 | sed 's/^/  PyTorch dense: /'
done
echo "peak RSS of one network training alone (a few steps)"
"$STEP_BENCH" --net dst --steps 5 --rounds 1 --json "$WORK/ours_dst_rss.json" >/dev/null
"$STEP_BENCH" --net dense --steps 5 --rounds 1 --json "$WORK/ours_dense_rss.json" >/dev/null
"$PYTHON" - "$WORK" "$ROUNDS" <<'PY'
import json, os, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def load(name):
    return json.load(open(os.path.join(work, name)))
def med(prefix, key):
    return statistics.median(load(f"{prefix}.{r}.json")[key] for r in range(1, rounds + 1))
o_dst, o_dense = med("ours", "dst_ms_per_step"), med("ours", "dense_ms_per_step")
floor, flops_floor = med("ours", "gemm_floor_ms_per_step"), med("ours", "flops_floor_ms_per_step")
p_dst, p_dense = med("pt_dst", "ms_per_step"), med("pt_dense", "ms_per_step")
print(f"\nmedian ms per step (LSTM-a, batch 100, 1 thread)   ours   PyTorch   ours/PyTorch")
print(f"DST                                              {o_dst:7.1f} {p_dst:8.1f} {o_dst / p_dst:10.2f}")
print(f"dense                                            {o_dense:7.1f} {p_dense:8.1f} {o_dense / p_dense:10.2f}")
print(f"ours DST / PyTorch dense {o_dst / p_dense:.2f};  PyTorch DST / PyTorch dense {p_dst / p_dense:.2f}")
print(f"GEMM floor {floor:.1f} ms (the step's GEMMs, same shapes), {flops_floor:.1f} ms "
      f"({load('ours.1.json')['step_gflop']:.2f} GFLOP / sgemm 1024^3 rate); "
      f"ours DST/floor {o_dst / floor:.2f}, DST/dense {o_dst / o_dense:.2f}")
rss = [load("ours_dst_rss.json")["peak_rss_mib"], load("ours_dense_rss.json")["peak_rss_mib"],
       statistics.median(load(f"pt_dst.{r}.json")["peak_rss_mib"] for r in range(1, rounds + 1)),
       statistics.median(load(f"pt_dense.{r}.json")["peak_rss_mib"] for r in range(1, rounds + 1))]
print(f"peak RSS MiB: ours DST {rss[0]:.0f}, dense {rss[1]:.0f};  PyTorch DST {rss[2]:.0f}, dense {rss[3]:.0f}")
PY
