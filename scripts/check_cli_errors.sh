#!/usr/bin/env bash
# Bad flags and unsafe output paths end the examples' command-line programs with a clear
# message (exit 1) before any training, and no file of the user's is lost (issue 20).
# Needs build/bin/{lenet_300_100,lenet5_caffe,sparse_inference}, Fashion-MNIST and python3.
#
#   scripts/check_cli_errors.sh [BUILD_DIR]     (default: build)
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build="${1:-build}"
bin="$build/bin"
data=/usr/share/datasets/fashion-mnist
export OPENBLAS_NUM_THREADS=1
work=$(mktemp -d /tmp/dynsparse_cli_errors.XXXXXX)
trap 'rm -rf "$work"' EXIT
failed=0
small=(--quiet --train-limit 256 --epochs 1 --data "$data")

# expect_error "<text the message must contain>" program args...
expect_error() {
    local want="$1"
    shift
    local err rc
    err=$(timeout 300 "$@" 2>&1 >"$work/stdout")
    rc=$?
    if [[ $rc -ne 1 ]] || ! grep -qF -- "$want" <<<"$err"; then
        echo "FAIL: $* -> exit $rc, '${err:0:300}' (want exit 1 and '$want')"
        failed=$((failed + 1))
    elif grep -q "^epoch" "$work/stdout"; then
        echo "FAIL: $* trained before reporting the error"
        failed=$((failed + 1))
    fi
}

l300="$bin/lenet_300_100"
# Item 2: hyperparameters.
expect_error "--milestones: 'abc' is not a list of epochs" "$l300" --schedule multistep --milestones abc
expect_error "--milestones: milestones must be strictly increasing" "$l300" --schedule multistep --milestones 2,1
expect_error "--epochs: '99999999999999999999999' is out of range" "$l300" --epochs 99999999999999999999999
expect_error "--epochs 2000000 is out of range" "$l300" --epochs 2000000
expect_error "--alpha must be a finite number >= 0, got nan" "$l300" --alpha nan
expect_error "--alpha must be a finite number >= 0, got -1" "$l300" --alpha -1
expect_error "--lr must be a finite number > 0, got -1" "$l300" --lr -1
expect_error "--lr must be a finite number > 0, got 0" "$l300" --lr 0
expect_error "--momentum must be in [0, 1), got 5" "$l300" --momentum 5
expect_error "--weight-decay must be a finite number >= 0, got -5" "$l300" --weight-decay -5
expect_error "--val-fraction must be in [0, 1), got -0.5" "$l300" --val-fraction -0.5
expect_error "--val-fraction must be in [0, 1), got nan" "$l300" --val-fraction nan
expect_error "--threads 100000 is more than the supported 256" "$l300" --threads 100000
expect_error "--batch expects a non-negative integer, got '-3'" "$l300" --batch -3

# Items 4 and 5: output paths checked before training; foreign files kept.
mkdir -p "$work/good"
zcat "$data/train-labels-idx1-ubyte.gz" > "$work/good/labels"
sum=$(md5sum < "$work/good/labels")
expect_error "refusing to replace an existing file that is not a checkpoint" "$l300" "${small[@]}" --save "$work/good/labels"
expect_error "refusing to replace an existing file that is not a JSON summary" "$l300" "${small[@]}" --json "$work/good/labels"
expect_error "refusing to replace an existing file that is not a CSV log" "$l300" "${small[@]}" --csv "$work/good/labels"
[[ $(md5sum < "$work/good/labels") == "$sum" ]] || { echo "FAIL: a refused write changed the file"; failed=$((failed + 1)); }
expect_error "missing does not exist" "$l300" "${small[@]}" --export "$work/missing/model.dsm"
expect_error "missing does not exist" "$l300" "${small[@]}" --json "$work/missing/run.json"
expect_error "refusing to write the checkpoint over a character device" "$l300" "${small[@]}" --save /dev/full
[[ -c /dev/full ]] || { echo "FAIL: /dev/full is no longer a device"; failed=$((failed + 1)); }
ln -s "$work/good/labels" "$work/run.ckpt.tmp"
if ! timeout 300 "$l300" "${small[@]}" --save "$work/run.ckpt" >/dev/null 2>&1; then
    echo "FAIL: --save with a symlink at run.ckpt.tmp"; failed=$((failed + 1))
fi
[[ $(md5sum < "$work/good/labels") == "$sum" ]] || { echo "FAIL: written through run.ckpt.tmp"; failed=$((failed + 1)); }
cp "$work/good/labels" "$work/forced"
if ! timeout 300 "$l300" "${small[@]}" --save "$work/forced" --force >/dev/null 2>&1; then
    echo "FAIL: --force did not replace the file"; failed=$((failed + 1))
fi

# Item 8: --csv with --resume appends; a directory named like a data file.
if timeout 300 "$l300" "${small[@]}" --save "$work/r.ckpt" --csv "$work/r.csv" --export "$work/r.dsm" >/dev/null 2>&1 &&
   timeout 300 "$l300" "${small[@]}" --epochs 2 --resume "$work/r.ckpt" --csv "$work/r.csv" >/dev/null 2>&1; then
    rows=$(grep -c '^epoch,' "$work/r.csv")
    headers=$(grep -c '^kind,' "$work/r.csv")
    [[ $rows -eq 2 && $headers -eq 1 ]] || { echo "FAIL: resumed CSV has $rows epoch rows, $headers headers (want 2, 1)"; failed=$((failed + 1)); }
else
    echo "FAIL: the --csv/--resume runs failed"; failed=$((failed + 1))
fi
mkdir -p "$work/dirdata"
cp "$data"/t*.gz "$work/dirdata/"
rm "$work/dirdata/t10k-labels-idx1-ubyte.gz"
mkdir "$work/dirdata/t10k-labels-idx1-ubyte"
expect_error "t10k-labels-idx1-ubyte: cannot read it: it is a directory" "$l300" --quiet --epochs 1 --data "$work/dirdata"

# Item 7: images declared 56x14 (the same bytes) into a 28x28 network.
mkdir -p "$work/reshaped"
cp "$data"/*labels*.gz "$work/reshaped/"
for f in train t10k; do
    zcat "$data/$f-images-idx3-ubyte.gz" | python3 -c '
import sys, struct
b = bytearray(sys.stdin.buffer.read()); b[8:16] = struct.pack(">II", 56, 14); sys.stdout.buffer.write(b)' \
        > "$work/reshaped/$f-images-idx3-ubyte"
done
expect_error "train-images-idx3-ubyte: images are 56x14 but the network takes 28x28 images" \
    "$bin/lenet5_caffe" --quiet --train-limit 256 --epochs 1 --data "$work/reshaped"

# Item 12: sparse_inference --batch 0.
if [[ -f "$work/r.dsm" ]]; then
    expect_error "--batch must be positive" "$bin/sparse_inference" --model "$work/r.dsm" --batch 0
else
    echo "FAIL: no exported model for the sparse_inference check"; failed=$((failed + 1))
fi

# Item 6: small inputs that declare huge work or data are refused at once (timeout 20 s:
# the gzip file below once inflated for 30 s to 4.2 GB; the model cost 1.4 s a sample).
# write_model FILE C H W KIND K: an exported model of one weightless operation (sparse/format.hpp).
write_model() {
    python3 - "$@" <<'PY'
import struct, sys, zlib
path, c, h, w, kind, k = sys.argv[1], *map(int, sys.argv[2:])
out = (c, h - k + 1, w - k + 1)
payload = struct.pack("<3IQ", c, h, w, 1) + struct.pack("<B9I", kind, c, h, w, *out, k, 1, 0)
frame = b"DSMODEL\n" + struct.pack("<IQ", 1, len(payload)) + payload + struct.pack("<I", zlib.crc32(payload))
open(path, "wb").write(frame)
PY
}
write_model "$work/pool.dsm" 1 1087 1087 6 64  # one 64x64 max pooling: 4.3e9 comparisons a sample
expect_error "pool.dsm: operation 0 (max_pool): the model declares too much work per sample: 4294967296 arithmetic operations" \
    timeout 20 "$bin/sparse_inference" --model "$work/pool.dsm"
write_model "$work/relu.dsm" 784 1 1 3 1  # a valid model: one relu on 784 inputs
mkdir -p "$work/bomb"
cp "$data"/*labels*.gz "$data"/t10k-images*.gz "$work/bomb/"
python3 -c '
import gzip, struct, sys
with gzip.open(sys.argv[1], "wb") as f:
    f.write(struct.pack(">IIII", 0x803, 5357142, 28, 28) + bytes(1 << 20))' "$work/bomb/train-images-idx3-ubyte.gz"
expect_error "train-images-idx3-ubyte.gz: absurd dimensions in header: 5357142 images of 28x28 declare 4199999328 bytes" \
    timeout 20 "$bin/sparse_inference" --model "$work/relu.dsm" --data "$work/bomb"

echo "check_cli_errors: $failed failure(s)"
[[ $failed -eq 0 ]]
