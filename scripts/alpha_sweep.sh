#!/usr/bin/env bash
# Alpha sweep: trains LeNet-300-100 on Fashion-MNIST for each alpha in $ALPHAS and seed in
# $SEEDS and writes the accuracy-versus-remaining-ratio curve (the paper's Figure 3 for our
# model) as ${OUT:-results/sweep}/alpha_sweep.csv (one row per alpha: mean and std over the
# seeds), plus one JSON, log and training-log CSV per run. scripts/plot.sh draws it.
#
#   scripts/alpha_sweep.sh [extra lenet_300_100 flags, e.g. --surrogate ste --val-fraction 0.1]
#   ALPHAS="1e-4 5e-4 2e-3" SEEDS="1 2" scripts/alpha_sweep.sh
#
# A run whose JSON exists is reused unless FORCE=1. One training process at a time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=${OUT:-results/sweep}
if [[ $# -gt 0 && -z ${OUT:-} ]]; then  # runs are reused by name: keep other recipes apart
    echo "$(basename "$0"): with extra flags ($*), set OUT to a directory of their own" >&2
    exit 2
fi
seeds=${SEEDS:-"1"}
alphas=${ALPHAS:-"1e-4 2e-4 5e-4 1e-3 2e-3 5e-3"}
bin=${BIN:-${BUILD_DIR:-build}/bin/lenet_300_100}
[[ -x $bin ]] || { cmake -S . -B "${BUILD_DIR:-build}" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
                   cmake --build "${BUILD_DIR:-build}" --target lenet_300_100 -j2; }
mkdir -p "$out"

files=()
for a in $alphas; do
    for seed in $seeds; do
        name=alpha-$a-seed$seed
        files+=("$out/$name.json")
        if [[ -s $out/$name.json && ${FORCE:-0} != 1 ]]; then
            echo "== $name: reusing $out/$name.json" >&2
            continue
        fi
        echo "== $name" >&2
        "$bin" --quiet --seed "$seed" --alpha "$a" --csv "$out/$name.csv" --log-every 100 \
            --json "$out/$name.json" "$@" > "$out/$name.log"
    done
done

python3 - "$out/alpha_sweep.csv" "${files[@]}" <<'PY'
import json, statistics, sys
groups = {}
for p in sys.argv[2:]:
    r = json.load(open(p))
    groups.setdefault(r["alpha"], []).append(r)
def ms(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)
with open(sys.argv[1], "w") as f:
    f.write("alpha,seeds,remaining_pct,remaining_pct_std,test_accuracy,test_accuracy_std,"
            "final_eval_accuracy,evaluated_on,layer0_pct,layer1_pct,layer2_pct\n")
    print("| alpha | seeds | remaining (%) | test accuracy (%) | per layer remaining (%) |")
    print("|---|---|---|---|---|")
    for a, runs in sorted(groups.items()):
        k = ms([100 * r["remaining_ratio"] for r in runs])
        acc = ms([r["test_accuracy"] for r in runs])
        ev = statistics.mean(r["final_eval_accuracy"] for r in runs)
        n = len(runs[0]["layer_remaining"])
        layers = [statistics.mean(100 * r["layer_remaining"][i] for r in runs) for i in range(n)]
        f.write(f"{a:.6g},{len(runs)},{k[0]:.4f},{k[1]:.4f},{acc[0]:.4f},{acc[1]:.4f},{ev:.4f},"
                f"{runs[0]['evaluated_on']},{','.join(f'{x:.4f}' for x in layers)}\n")
        print(f"| {a:.3g} | {len(runs)} | {k[0]:.2f} ± {k[1]:.2f} | {acc[0]:.2f} ± {acc[1]:.2f} "
              f"| {' / '.join(f'{x:.1f}' for x in layers)} |")
print(f"curve: {sys.argv[1]}", file=sys.stderr)
PY
