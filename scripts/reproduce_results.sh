#!/usr/bin/env bash
# Full 20-epoch LeNet-300-100 runs behind docs/results.md: the dense baseline and DST with
# each surrogate (per-neuron thresholds), plus scalar thresholds, over seeds 1-3. Writes
# one JSON summary per run into ${OUT:-results/} and prints a Markdown table of
# mean +- std.
#
#   scripts/reproduce_results.sh [extra lenet_300_100 flags...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=${OUT:-results}
seeds=${SEEDS:-"1 2 3"}
bin=${BUILD_DIR:-build}/bin/lenet_300_100
[[ -x $bin ]] || { cmake -S . -B "${BUILD_DIR:-build}" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
                   cmake --build "${BUILD_DIR:-build}" --target lenet_300_100 -j2; }
mkdir -p "$out"

run() {  # name, flags...
    local name=$1; shift
    for seed in $seeds; do
        echo "== $name seed $seed"
        "$bin" --quiet --seed "$seed" --json "$out/$name-seed$seed.json" "$@" "${extra[@]}" \
            > "$out/$name-seed$seed.log"
    done
}
extra=("$@")
run dense --dense
run dst-long_tailed-per_neuron --surrogate long_tailed --granularity per_neuron
run dst-ste-per_neuron --surrogate ste --granularity per_neuron
run dst-sigmoid-per_neuron --surrogate sigmoid --granularity per_neuron
run dst-long_tailed-scalar --surrogate long_tailed --granularity scalar

python3 - "$out" <<'PY'
import json, glob, os, statistics, sys
out = sys.argv[1]
groups = {}
for f in sorted(glob.glob(os.path.join(out, "*-seed*.json"))):
    name = os.path.basename(f).rsplit("-seed", 1)[0]
    groups.setdefault(name, []).append(json.load(open(f)))
def ms(xs):
    return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)
print("| run | seeds | test accuracy (%) | remaining (%) | per layer remaining (%) | s/epoch |")
print("|---|---|---|---|---|---|")
for name, runs in groups.items():
    a = ms([r["test_accuracy"] for r in runs])
    k = ms([100 * r["remaining_ratio"] for r in runs])
    layers = [statistics.mean(100 * r["layer_remaining"][i] for r in runs) for i in range(len(runs[0]["layer_remaining"]))]
    t = statistics.mean(r["seconds_per_epoch"] for r in runs)
    print(f"| {name} | {len(runs)} | {a[0]:.2f} ± {a[1]:.2f} | {k[0]:.2f} ± {k[1]:.2f} | "
          f"{' / '.join(f'{x:.1f}' for x in layers)} | {t:.2f} |")
PY
