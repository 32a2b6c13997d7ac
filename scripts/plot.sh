#!/usr/bin/env bash
# Turns the CSVs of lenet_300_100 --csv, scripts/alpha_sweep.sh and
# scripts/target_sparsity.sh into PNG and SVG pictures (gnuplot):
#
#   layers   per-layer remaining ratio over training, and weights revived per record
#   model    model remaining ratio over training with the evaluation accuracy per epoch
#   sweep    accuracy versus remaining ratio over alpha (the paper's Figure 3)
#   target   target-sparsity runs: model remaining ratio and alpha over training
#
#   scripts/plot.sh [OUTDIR]              (default docs/img)
#   RUN_CSV=run.csv RUN_TITLE="my run" SWEEP_CSV=sweep.csv TARGET_CSVS="a.csv b.csv" \
#       scripts/plot.sh /tmp/img
#   PREFIX=reset- RUN_CSV=results/sweep/alpha-5e-3-seed1.csv RUN_TITLE=... scripts/plot.sh
#
# A picture whose input is missing is skipped with a message. Needs gnuplot (on Debian:
# apt-get install -y gnuplot-nox); the layer count is read from the CSV header, so any
# network's log works. The script installs gnuplot-nox itself when gnuplot is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v gnuplot >/dev/null; then  # a fresh machine: install it (apt-get, sudo if needed)
    source scripts/install_packages.sh
    install_missing_packages gnuplot-nox
fi

outdir=${1:-docs/img}
run_csv=${RUN_CSV:-results/sweep/alpha-5e-4-seed1.csv}
sweep_csv=${SWEEP_CSV:-results/sweep/alpha_sweep.csv}
target_csvs=${TARGET_CSVS:-"results/target/target-0.02-seed1.csv results/target/target-0.05-seed1.csv results/target/target-0.10-seed1.csv"}
prefix=${PREFIX:-}   # prepended to the names of the layers and model pictures
run_title=${RUN_TITLE:-LeNet-300-100, DST (long-tailed, per-neuron, alpha 5e-4), Fashion-MNIST, seed 1}
dense_acc=${DENSE_ACCURACY:-89.35}   # dense baseline, results/dense-seed*.json mean
mkdir -p "$outdir"

# Draws one gnuplot body into $outdir/$name.png and .svg.
draw() {  # name, width, height, body
    local name=$1 w=$2 h=$3 body=$4
    gnuplot <<GP
set datafile separator comma
set terminal pngcairo size $w,$h font "DejaVu Sans,10" noenhanced
set output "$outdir/$name.png"
$body
set terminal svg size $w,$h font "DejaVu Sans,10" noenhanced
set output "$outdir/$name.svg"
replot
GP
    echo "wrote $outdir/$name.png and .svg" >&2
}
# multiplot cannot be replotted: draw such bodies once per terminal.
draw_multi() {  # name, width, height, body
    local name=$1 w=$2 h=$3 body=$4
    for term in "pngcairo size $w,$h font \"DejaVu Sans,10\" noenhanced:png" \
                "svg size $w,$h font \"DejaVu Sans,10\" noenhanced:svg"; do
        gnuplot <<GP
set datafile separator comma
set terminal ${term%:*}
set output "$outdir/$name.${term##*:}"
$body
GP
    done
    echo "wrote $outdir/$name.png and .svg" >&2
}

layers_of() { head -n 1 "$1" | tr ',' '\n' | grep -c '_remaining$' || true; }
# gnuplot breaks a line at every skipped row: split each log into step and epoch rows.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
split_rows() {  # csv -> prints the prefix of $prefix.step.csv and $prefix.epoch.csv
    local prefix
    prefix=$tmp/$(echo "$1" | tr '/' '_')
    awk -F, -v p="$prefix" 'NR == 1 { print > (p ".step.csv"); print > (p ".epoch.csv"); next }
                            { print > (p "." $1 ".csv") }' "$1"
    echo "$prefix"
}

if [[ -s $run_csv ]]; then
    n=$(layers_of "$run_csv")
    rp=$(split_rows "$run_csv")
    spe=$(awk -F, '$1=="epoch"{print $3; exit}' "$run_csv")
    evalset=$(awk -F, '$1=="epoch"{print $7; exit}' "$run_csv")
    rem="" rev=""
    for ((i = 0; i < n; i++)); do
        rem+="${rem:+, }'$rp.step.csv' using (column('step')/$spe.):(100*column('l${i}_remaining')) with lines lw 2 lc $((i + 1)) title 'masked layer $i (l${i})'"
        rev+="${rev:+, }'$rp.step.csv' using (column('step')/$spe.):(column('l${i}_revived')) with lines lw 1.5 lc $((i + 1)) title 'l$i revived', '' using (column('step')/$spe.):(column('l${i}_pruned')) with lines dt 2 lw 1 lc $((i + 1)) title 'l$i pruned'"
    done
    draw_multi "${prefix}layers" 900 800 "
set multiplot layout 2,1 title '$run_title'
set grid
set key bottom left
set xlabel 'epoch'
set ylabel 'remaining weights (%)'
set logscale y
set yrange [0.5:150]
set ytics (1, 2, 5, 10, 20, 50, 100)
plot $rem
set ylabel 'weights per 100 steps'
set yrange [0.5:*]
set ytics auto
set key top right
plot $rev
unset multiplot"
    draw "${prefix}model" 900 500 "
set title 'Model remaining ratio (every 100 steps) and evaluation accuracy (every epoch)'
set grid
set xlabel 'epoch'
set ylabel 'model remaining ratio (%)'
set logscale y
set yrange [3:100]
set ytics (3, 5, 10, 20, 50, 100) nomirror
set y2label 'evaluation accuracy (%)'
set y2range [80:92]
set y2tics
set key center right
plot '$rp.step.csv' using (column('step')/$spe.):(100*column('remaining')) with lines lw 2 title 'model remaining (%)', \
     '$rp.epoch.csv' using (column('epoch')):(column('eval_accuracy')) axes x1y2 with linespoints pt 7 ps 0.8 lw 1.5 title 'accuracy on the $evalset set (%)'"
else
    echo "skipping layers/model: $run_csv not found (scripts/alpha_sweep.sh writes it)" >&2
fi

if [[ -s $sweep_csv ]]; then
    draw sweep 800 500 "
set title 'Alpha sweep: test accuracy versus remaining ratio (LeNet-300-100, Fashion-MNIST)'
set grid
set logscale x
set xlabel 'model remaining ratio (%)'
set ylabel 'test accuracy (%)'
set xrange [*:120]
set offsets 0, 0, 0.3, 0.3
set key bottom right
plot '$sweep_csv' using (column('remaining_pct')):(column('test_accuracy')):(column('test_accuracy_std')) with yerrorlines pt 7 lw 2 title 'DST, one point per alpha (labels), joined in alpha order', \
     '' using (column('remaining_pct')):(column('test_accuracy')):(sprintf('%g', column('alpha'))) with labels offset 0,1 notitle, \
     $dense_acc with lines dt 2 lw 1.5 title 'dense baseline ($dense_acc%)'"
else
    echo "skipping sweep: $sweep_csv not found (run scripts/alpha_sweep.sh)" >&2
fi

plots="" alphas="" targets=""
for f in $target_csvs; do
    [[ -s $f ]] || { echo "skipping $f (not found)" >&2; continue; }
    t=$(basename "$f" | sed -E 's/target-([0-9.]+)-seed.*/\1/')
    spe=$(awk -F, '$1=="epoch"{print $3; exit}' "$f")
    fp=$(split_rows "$f")
    plots+="${plots:+, }'$fp.step.csv' using (column('step')/$spe.):(100*column('remaining')) with lines lw 2 title 'target $(awk "BEGIN{print 100*$t}")%'"
    targets+="${targets:+, }$(awk "BEGIN{print 100*$t}") with lines dt 2 lc 'gray' notitle"
    alphas+="${alphas:+, }'$fp.step.csv' using (column('step')/$spe.):(column('alpha')) with lines lw 2 title 'target $(awk "BEGIN{print 100*$t}")%'"
done
if [[ -n $plots ]]; then
    draw_multi target 900 800 "
set multiplot layout 2,1 title 'Target-sparsity mode (--target-remaining), LeNet-300-100, Fashion-MNIST, seed 1'
set grid
set xlabel 'epoch'
set ylabel 'model remaining ratio (%)'
set logscale y
set yrange [1:100]
set ytics (1, 2, 5, 10, 20, 50, 100)
set key top right
plot $plots, $targets
set ylabel 'alpha (adapted every 10 steps)'
set yrange [*:*]
set ytics auto
set format y '%.0e'
plot $alphas
unset multiplot"
fi
