#!/usr/bin/env bash
# Compile time of each example, as a user rebuilding it after an edit sees it: the shared
# parts (the examples' support library and precompiled header, built once per build tree)
# are built first, then each example's source is touched and its target rebuilt alone,
# one compiler job. Prints user CPU seconds (robust to other jobs on the machine), wall
# seconds and the compiler's peak memory per target, ROUNDS times, and the medians.
#
#   benchmarks/compile_times.sh [--build-dir DIR] [--rounds N] [--targets "a b ..."] [--dlib]
#
# --dlib also compiles, in every round, dlib's spelling of LeNet-300-100
# (benchmarks/dlib/lenet_300_100_dlib.cpp; Debian's libdlib-dev) with the examples' flags
# (-O3 -DNDEBUG -march=native -std=c++20), the baseline the issue names, and prints each
# target's time over dlib's from the same round (the VM's speed changes between minutes).
#
# The build directory must be configured (cmake -S . -B DIR -DCMAKE_BUILD_TYPE=Release); the
# sources touched are those of the tree it was configured from, so two trees (before and
# after a change) can be measured in turn.
# Run it on an otherwise idle machine: a compiler on a shared core is slower.
set -euo pipefail

usage() { sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

BUILD_DIR=build
ROUNDS=3
TARGETS="lenet_300_100 lenet5_caffe lstm_mnist custom_policies sparse_inference"
DLIB=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD_DIR=${2:?--build-dir needs a value}; shift 2 ;;
    --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
    --targets) TARGETS=${2:?--targets needs a value}; shift 2 ;;
    --dlib) DLIB=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option '$1' (see --help)" >&2; exit 1 ;;
  esac
done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
if [[ $BUILD_DIR != /* && ! -d $BUILD_DIR && -d $ROOT/$BUILD_DIR ]]; then BUILD_DIR="$ROOT/$BUILD_DIR"; fi
[[ -f $BUILD_DIR/CMakeCache.txt ]] || { echo "error: $BUILD_DIR is not a configured build directory" >&2; exit 1; }

echo "date $(date -R), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(c++ --version | head -1)"
if cmake --build "$BUILD_DIR" --target help | grep -q dynsparse_example_support; then
  cmake --build "$BUILD_DIR" --target dynsparse_example_support -j1 > /dev/null
fi
if ((DLIB)); then
  [[ -d /usr/include/dlib ]] || { echo "error: --dlib needs dlib's headers (apt-get install -y libdlib-dev)" >&2; exit 1; }
  DLIB_OUT=$(mktemp -d)
  trap 'rm -rf "$DLIB_OUT"' EXIT
fi
declare -A user wall mem ratios
for ((r = 1; r <= ROUNDS; ++r)); do
  if ((DLIB)); then
    line=$( { /usr/bin/time -f "%U %e %M" c++ -O3 -DNDEBUG -march=native -std=c++20 -c \
              "$HERE/dlib/lenet_300_100_dlib.cpp" -o "$DLIB_OUT/dlib.o"; } 2>&1 | tail -1)
    read -r dlib_u w m <<< "$line"
    user[dlib]+="$dlib_u "; wall[dlib]+="$w "
    printf "round %d  %-18s user %6.2f s  wall %6.2f s  peak %4d MB\n" "$r" "dlib (baseline)" "$dlib_u" "$w" $((m / 1024))
  fi
  for t in $TARGETS; do
    src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD_DIR/CMakeCache.txt")/examples/$t.cpp
    [[ -f $src ]] || { echo "error: $src not found" >&2; exit 1; }
    touch "$src"
    # GNU time on the build: children's CPU time (the compiler and the linker) included.
    line=$( { /usr/bin/time -f "%U %e %M" cmake --build "$BUILD_DIR" --target "$t" -j1 > /dev/null; } 2>&1 | tail -1)
    read -r u w m <<< "$line"
    user[$t]+="$u "; wall[$t]+="$w "; mem[$t]+="$m "
    printf "round %d  %-18s user %6.2f s  wall %6.2f s  peak %4d MB" "$r" "$t" "$u" "$w" $((m / 1024))
    if ((DLIB)); then
      ratio=$(awk -v a="$u" -v b="$dlib_u" 'BEGIN {printf "%.2f", a / b}')
      ratios[$t]+="$ratio "
      printf "  %s x dlib" "$ratio"
    fi
    printf "\n"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo "medians over $ROUNDS rounds (load average now $(cut -d' ' -f1-3 /proc/loadavg)):"
for t in $( ((DLIB)) && echo dlib) $TARGETS; do
  printf "  %-18s user %6.2f s  wall %6.2f s" "$t" "$(echo "${user[$t]}" | median)" "$(echo "${wall[$t]}" | median)"
  [[ -n ${ratios[$t]:-} ]] && printf "  user / dlib's in the same round: median %s (%s)" "$(echo "${ratios[$t]}" | median)" "${ratios[$t]% }"
  printf "\n"
done
