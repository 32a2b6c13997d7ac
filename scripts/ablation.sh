#!/usr/bin/env bash
# Ablation runner: trains LeNet-300-100 on Fashion-MNIST with every surrogate x threshold
# granularity (each a compile-time instantiation behind lenet_300_100's runtime choice)
# over several seeds, and prints a Markdown table of test accuracy and remaining ratio,
# mean +- std over the seeds.
#
#   scripts/ablation.sh [extra lenet_300_100 flags...]
#   SURROGATES="long_tailed ste" GRANULARITIES=per_neuron SEEDS="1 2" scripts/ablation.sh
#
# One JSON summary per run lands in ${OUT:-results}/dst-<surrogate>-<granularity>-seed<N>.json
# (the names scripts/reproduce_results.sh uses); a run whose JSON already exists is reused
# unless FORCE=1, so the two scripts share their runs. Runs are sequential (one training
# process at a time). With --val-fraction F in the extra flags, per-epoch evaluation uses a
# validation split and the table's accuracy is still the test set's, measured once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=${OUT:-results}
if [[ $# -gt 0 && -z ${OUT:-} ]]; then  # runs are reused by name: keep other recipes apart
    echo "$(basename "$0"): with extra flags ($*), set OUT to a directory of their own" >&2
    exit 2
fi
seeds=${SEEDS:-"1 2 3"}
surrogates=${SURROGATES:-"long_tailed ste sigmoid"}
granularities=${GRANULARITIES:-"per_neuron scalar"}
bin=${BIN:-${BUILD_DIR:-build}/bin/lenet_300_100}
[[ -x $bin ]] || { cmake -S . -B "${BUILD_DIR:-build}" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
                   cmake --build "${BUILD_DIR:-build}" --target lenet_300_100 -j2; }
mkdir -p "$out"

files=()
for s in $surrogates; do
    for g in $granularities; do
        for seed in $seeds; do
            name=dst-$s-$g-seed$seed
            files+=("$out/$name.json")
            if [[ -s $out/$name.json && ${FORCE:-0} != 1 ]]; then
                echo "== $name: reusing $out/$name.json" >&2
                continue
            fi
            echo "== $name" >&2
            "$bin" --quiet --seed "$seed" --surrogate "$s" --granularity "$g" \
                --json "$out/$name.json" "$@" > "$out/$name.log"
        done
    done
done

python3 "$(dirname "${BASH_SOURCE[0]}")/summarize_runs.py" "${files[@]}"
