#!/usr/bin/env bash
# Target-sparsity runs: LeNet-300-100 on Fashion-MNIST with --target-remaining R for each
# target and seed (20 epochs, the paper's recipe otherwise). Writes JSON, log and a
# per-100-step CSV per run into ${OUT:-results/target} and prints a Markdown table.
#
#   scripts/target_sparsity.sh [extra lenet_300_100 flags...]
#   TARGETS="0.02 0.05 0.10" SEEDS="1 2 3" scripts/target_sparsity.sh
#
# A run whose JSON exists is reused unless FORCE=1. One training process at a time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=${OUT:-results/target}
if [[ $# -gt 0 && -z ${OUT:-} ]]; then  # runs are reused by name: keep other recipes apart
    echo "$(basename "$0"): with extra flags ($*), set OUT to a directory of their own" >&2
    exit 2
fi
seeds=${SEEDS:-"1 2 3"}
targets=${TARGETS:-"0.02 0.05 0.10"}
bin=${BIN:-${BUILD_DIR:-build}/bin/lenet_300_100}
[[ -x $bin ]] || { cmake -S . -B "${BUILD_DIR:-build}" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
                   cmake --build "${BUILD_DIR:-build}" --target lenet_300_100 -j2; }
mkdir -p "$out"

files=()
for t in $targets; do
    for seed in $seeds; do
        name=target-$t-seed$seed
        files+=("$out/$name.json")
        if [[ -s $out/$name.json && ${FORCE:-0} != 1 ]]; then
            echo "== $name: reusing $out/$name.json" >&2
            continue
        fi
        echo "== $name" >&2
        "$bin" --quiet --seed "$seed" --target-remaining "$t" --csv "$out/$name.csv" \
            --log-every 100 --json "$out/$name.json" "$@" > "$out/$name.log"
    done
done

python3 - "${files[@]}" <<'PY'
import json, os, statistics, sys
groups = {}
for p in sys.argv[1:]:
    r = json.load(open(p))
    groups.setdefault(r["target_remaining"], []).append(r)
def ms(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)
print("| target (%) | seeds | remaining (%) | worst miss (points) | test accuracy (%) "
      "| per layer remaining (%) | final alpha |")
print("|---|---|---|---|---|---|---|")
for t, runs in sorted(groups.items()):
    k = ms([100 * r["remaining_ratio"] for r in runs])
    miss = max(abs(100 * (r["remaining_ratio"] - t)) for r in runs)
    a = ms([r["test_accuracy"] for r in runs])
    n = len(runs[0]["layer_remaining"])
    layers = [statistics.mean(100 * r["layer_remaining"][i] for r in runs) for i in range(n)]
    fa = statistics.mean(r["final_alpha"] for r in runs)
    print(f"| {100 * t:g} | {len(runs)} | {k[0]:.2f} ± {k[1]:.2f} | {miss:.2f} "
          f"| {a[0]:.2f} ± {a[1]:.2f} | {' / '.join(f'{x:.1f}' for x in layers)} | {fa:.3g} |")
PY
