#!/usr/bin/env bash
# SIGKILL trials for checkpoint writes: trains lenet_300_100 on a small subset with
# --save (a 2 MB checkpoint after every ~20 ms epoch), kills it with SIGKILL, then resumes
# from the checkpoint left on disk, which must load (checksum and all) and train on.
# Odd trials kill at a random moment 0-1 s after the first checkpoint exists; even trials
# wait until a write is in progress (the temporary file exists) and kill at once.
#
#   scripts/kill_checkpoint_trials.sh [TRIALS] [BUILD_DIR]     (defaults: 100, build)
# Prints one line per failure and a summary; exits non-zero if any resume failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

trials="${1:-100}"
build="${2:-build}"
bin="$build/bin/lenet_300_100"
[[ -x "$bin" ]] || cmake --build "$build" --target lenet_300_100 -j2
export OPENBLAS_NUM_THREADS=1

work=$(mktemp -d /tmp/dynsparse_kill_trials.XXXXXX)
trap 'rm -rf "$work"' EXIT
flags=(--quiet --train-limit 1024 --val-fraction 0.1 --batch 64)
ok=0
failed=0
mid_write=0
for ((i = 1; i <= trials; ++i)); do
    rm -f "$work"/run.ckpt "$work"/run.ckpt.*.tmp "$work"/train.log
    "$bin" "${flags[@]}" --epochs 1000000 --save "$work/run.ckpt" >"$work/train.log" 2>&1 &
    pid=$!
    until [[ -e "$work/run.ckpt" ]]; do sleep 0.01; done
    if ((i % 2)); then
        sleep "0.$(printf '%03d' $((RANDOM % 1000)))"
    else
        # the temporary file is run.ckpt.<pid>.<n>.tmp; no sleep: a write takes ~1 ms
        until compgen -G "$work/run.ckpt.*.tmp" >/dev/null; do :; done
    fi
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    compgen -G "$work/run.ckpt.*.tmp" >/dev/null && mid_write=$((mid_write + 1))
    last=$(grep -o '^epoch *[0-9]*' "$work/train.log" | tail -1 | grep -o '[0-9]*$')
    if out=$("$bin" "${flags[@]}" --epochs $((last + 1)) --resume "$work/run.ckpt" 2>&1) &&
        resumed=$(grep -o 'after epoch [0-9]*' <<<"$out" | grep -o '[0-9]*$') &&
        ((resumed == last || resumed == last - 1)); then
        ok=$((ok + 1))
    else
        failed=$((failed + 1))
        echo "trial $i: resume failed after epoch ${last:-?}:" >&2
        tail -3 <<<"$out" >&2
    fi
done
echo "kill trials: $trials, resumed $ok, failed $failed; $mid_write kills left a half-written temporary file"
((failed == 0))
