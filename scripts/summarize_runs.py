#!/usr/bin/env python3
"""Groups lenet_300_100 JSON summaries by configuration (the file name without -seedN)
and prints a Markdown table of mean +- std over seeds.

    scripts/summarize_runs.py results/dst-*-seed*.json
"""
import json
import os
import statistics
import sys


def ms(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def main(paths):
    groups = {}
    for p in paths:
        name = os.path.basename(p).rsplit("-seed", 1)[0]
        with open(p) as f:
            groups.setdefault(name, []).append(json.load(f))
    print("| surrogate | granularity | seeds | test accuracy (%) | remaining (%) "
          "| per layer remaining (%) | per-epoch eval set |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in groups.items():
        a = ms([r["test_accuracy"] for r in runs])
        k = ms([100 * r["remaining_ratio"] for r in runs])
        n = len(runs[0]["layer_remaining"])
        layers = [statistics.mean(100 * r["layer_remaining"][i] for r in runs) for i in range(n)]
        ev = sorted({r.get("evaluated_on", "?") for r in runs})
        print(f"| {runs[0]['surrogate']} | {runs[0]['granularity']} | {len(runs)} "
              f"| {a[0]:.2f} ± {a[1]:.2f} | {k[0]:.2f} ± {k[1]:.2f} "
              f"| {' / '.join(f'{x:.1f}' for x in layers)} | {', '.join(ev)} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: summarize_runs.py RUN.json...")
    main(sys.argv[1:])
