#!/usr/bin/env bash
# Speed and memory of dynsparse against the PyTorch reference (benchmarks/pytorch/dst_lenet.py)
# on LeNet-300-100 / Fashion-MNIST, batch 64, one thread: DST and the dense baseline.
#
#   benchmarks/compare_pytorch.sh [--epochs N] [--repeats N] [--build-dir DIR] [--data DIR]
#                                 [--keep]
#
# Environment (the options win): EPOCHS (2), REPEATS (1), BUILD_DIR (build), DATA (the
# programs' default, /usr/share/datasets/fashion-mnist), PYTHON (/usr/bin/python3, Debian's
# python3-torch). A relative BUILD_DIR is looked up in the current directory, then in the
# repository root. Needs ${BUILD_DIR}/bin/lenet_300_100 and ${BUILD_DIR}/bin/lenet_300_100_epoch.
#
# Each round runs, one after the other so that machine load hits both sides alike:
# our DST, PyTorch DST, our dense, PyTorch dense; then lenet_300_100_epoch once for the GEMM
# floor (the matrix products of one epoch alone). Peak RSS of each process comes from
# `/usr/bin/time -f %M` (package `time`; without it, from getrusage of the child in Python).
# Seconds per epoch are each program's own median of training-only epoch times (evaluation
# excluded); with several rounds the table shows the median over rounds, and the largest
# peak RSS.
set -euo pipefail

usage() { sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

EPOCHS=${EPOCHS:-2}
REPEATS=${REPEATS:-1}
BUILD_DIR=${BUILD_DIR:-build}
DATA=${DATA:-}
PYTHON=${PYTHON:-/usr/bin/python3}
KEEP=0
THREADS=1
COMMAND_LINE="$0${*:+ $*}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --epochs) EPOCHS=${2:?--epochs needs a value}; shift 2 ;;
    --repeats) REPEATS=${2:?--repeats needs a value}; shift 2 ;;
    --build-dir) BUILD_DIR=${2:?--build-dir needs a value}; shift 2 ;;
    --data) DATA=${2:?--data needs a value}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option '$1' (see --help)" >&2; exit 1 ;;
  esac
done
for v in EPOCHS REPEATS; do
  if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
    echo "error: $v must be a positive integer, got '${!v}'" >&2; exit 1
  fi
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PT_SCRIPT="$HERE/pytorch/dst_lenet.py"

if [[ $BUILD_DIR != /* && ! -d $BUILD_DIR && -d $ROOT/$BUILD_DIR ]]; then
  BUILD_DIR="$ROOT/$BUILD_DIR"
fi
LENET="$BUILD_DIR/bin/lenet_300_100"
EPOCH_BENCH="$BUILD_DIR/bin/lenet_300_100_epoch"
missing=0
for f in "$LENET" "$EPOCH_BENCH"; do
  if [[ ! -x $f ]]; then echo "error: $f not found or not executable" >&2; missing=1; fi
done
if [[ ! -x $PYTHON ]]; then echo "error: $PYTHON not found (set PYTHON)" >&2; missing=1; fi
if [[ ! -f $PT_SCRIPT ]]; then echo "error: $PT_SCRIPT not found" >&2; missing=1; fi
if [[ $missing -ne 0 ]]; then
  echo "build first, e.g.: cmake -S $ROOT -B $ROOT/build -DCMAKE_BUILD_TYPE=Release &&" \
       "cmake --build $ROOT/build -j2 --target lenet_300_100 lenet_300_100_epoch" >&2
  exit 1
fi

DATA_ARGS=()
[[ -n $DATA ]] && DATA_ARGS=(--data "$DATA")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/compare_pytorch.XXXXXX")
cleanup() { if [[ $KEEP -eq 1 ]]; then echo "logs and JSON kept in $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

HAVE_TIME=0
if [[ -x /usr/bin/time ]] && /usr/bin/time -f %M -o "$WORK/probe" true 2>/dev/null; then
  HAVE_TIME=1
else
  echo "note: /usr/bin/time (package 'time') not found; measuring peak RSS with getrusage" >&2
fi

# run NAME CMD...: runs CMD with its output in $WORK/NAME.log and its peak RSS (KiB) in
# $WORK/NAME.rss; on failure prints the end of the log and stops.
run() {
  local name=$1; shift
  local log="$WORK/$name.log" rss="$WORK/$name.rss" status=0
  printf '  %-22s %s\n' "$name" "$*"
  if [[ $HAVE_TIME -eq 1 ]]; then
    /usr/bin/time -f %M -o "$rss" "$@" >"$log" 2>&1 || status=$?
  else
    "$PYTHON" -c '
import resource, subprocess, sys
with open(sys.argv[2], "w") as log:
    status = subprocess.call(sys.argv[3:], stdout=log, stderr=subprocess.STDOUT)
with open(sys.argv[1], "w") as f:
    f.write("%d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(status)' "$rss" "$log" "$@" || status=$?
  fi
  if [[ $status -ne 0 ]]; then
    echo "error: $name failed with status $status; end of $log:" >&2
    tail -n 20 "$log" >&2
    KEEP=1
    exit 1
  fi
}

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
echo "== dynsparse vs PyTorch: LeNet-300-100, Fashion-MNIST, batch 64, $THREADS thread =="
echo "date      $(date -R)"
echo "host      $(uname -srm), $(nproc) CPU(s): ${cpu:-unknown}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "command   $COMMAND_LINE   (EPOCHS=$EPOCHS REPEATS=$REPEATS BUILD_DIR=$BUILD_DIR PYTHON=$PYTHON)"
echo

for ((r = 1; r <= REPEATS; ++r)); do
  echo "round $r/$REPEATS:"
  run "ours_dst.$r" "$LENET" --epochs "$EPOCHS" --threads "$THREADS" --quiet \
      --json "$WORK/ours_dst.$r.json" "${DATA_ARGS[@]}"
  run "pytorch_dst.$r" "$PYTHON" "$PT_SCRIPT" --epochs "$EPOCHS" --threads "$THREADS" --quiet \
      --json "$WORK/pytorch_dst.$r.json" "${DATA_ARGS[@]}"
  run "ours_dense.$r" "$LENET" --epochs "$EPOCHS" --threads "$THREADS" --quiet --dense \
      --json "$WORK/ours_dense.$r.json" "${DATA_ARGS[@]}"
  run "pytorch_dense.$r" "$PYTHON" "$PT_SCRIPT" --epochs "$EPOCHS" --threads "$THREADS" --quiet \
      --dense --json "$WORK/pytorch_dense.$r.json" "${DATA_ARGS[@]}"
done
echo "GEMM floor:"
run "epoch_bench" "$EPOCH_BENCH" --epochs "$EPOCHS" --json "$WORK/epoch_bench.json" "${DATA_ARGS[@]}"
echo

"$PYTHON" - "$WORK" "$REPEATS" "$EPOCHS" <<'PY'
import json, os, statistics, sys

work, repeats, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def load(name):
    with open(os.path.join(work, name + ".json")) as f:
        return json.load(f)

def rss_mib(name):
    with open(os.path.join(work, name + ".rss")) as f:
        # GNU time -o writes %M last; a "Command exited..." line may precede it.
        return int(f.read().split()[-1]) / 1024.0

def need(d, key, where):
    if key not in d:
        sys.exit(f"error: {where} has no '{key}'")
    return d[key]

runs = {}
for kind in ("ours_dst", "pytorch_dst", "ours_dense", "pytorch_dense"):
    js = [load(f"{kind}.{r}") for r in range(1, repeats + 1)]
    runs[kind] = dict(
        spe=statistics.median(float(need(j, "seconds_per_epoch", kind)) for j in js),
        acc=statistics.median(float(need(j, "test_accuracy", kind)) for j in js),
        rem=statistics.median(float(need(j, "remaining_ratio", kind)) for j in js),
        rss=max(rss_mib(f"{kind}.{r}") for r in range(1, repeats + 1)),
        blas=js[0].get("blas_core", "?"),
    )
bench = load("epoch_bench")
floor = float(need(bench, "gemm_floor_seconds", "lenet_300_100_epoch"))
b_dst = float(need(bench, "dst_seconds_per_epoch", "lenet_300_100_epoch"))
b_dense = float(need(bench, "dense_seconds_per_epoch", "lenet_300_100_epoch"))

def ratio(a, b):
    return f"{a / b:.2f}" if b > 0 else "n/a"

o, p = runs["ours_dst"], runs["pytorch_dst"]
od, pd = runs["ours_dense"], runs["pytorch_dense"]
w = 30
print(f"results ({epochs} epoch(s) per run, {'median over %d rounds' % repeats if repeats > 1 else '1 round'}):")
print(f"{'':{w}}{'ours (C++)':>14}{'PyTorch':>14}{'ours/PyTorch':>14}")
print(f"{'DST   seconds per epoch':{w}}{o['spe']:>14.3f}{p['spe']:>14.3f}{ratio(o['spe'], p['spe']):>14}")
print(f"{'dense seconds per epoch':{w}}{od['spe']:>14.3f}{pd['spe']:>14.3f}{ratio(od['spe'], pd['spe']):>14}")
print(f"{'DST   peak RSS (MiB)':{w}}{o['rss']:>14.1f}{p['rss']:>14.1f}{ratio(o['rss'], p['rss']):>14}")
print(f"{'dense peak RSS (MiB)':{w}}{od['rss']:>14.1f}{pd['rss']:>14.1f}{ratio(od['rss'], pd['rss']):>14}")
print(f"{'DST   test accuracy (%)':{w}}{o['acc']:>14.2f}{p['acc']:>14.2f}")
print(f"{'DST   remaining ratio (%)':{w}}{100 * o['rem']:>14.2f}{100 * p['rem']:>14.2f}")
print(f"{'dense test accuracy (%)':{w}}{od['acc']:>14.2f}{pd['acc']:>14.2f}")
print(f"{'DST/dense time':{w}}{ratio(o['spe'], od['spe']):>14}{ratio(p['spe'], pd['spe']):>14}")
print(f"{'BLAS kernels':{w}}{o['blas']:>14}{p['blas']:>14}")
print()
print(f"GEMM floor (lenet_300_100_epoch): {floor:.3f} s per epoch "
      f"(same run: DST {b_dst:.3f} s, dense {b_dense:.3f} s)")
print(f"ours DST / GEMM floor:   {ratio(o['spe'], floor)}   (lenet_300_100 run)")
print(f"ours dense / GEMM floor: {ratio(od['spe'], floor)}")
PY
