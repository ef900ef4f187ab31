#!/bin/sh
# run_train.sh CHIRALC CHIRALDATA RTTOOL SRCDIR EXAMPLE [BACKEND]: builds a small version of the
# example, derives its task data from data/cmu17.npz, trains a short run, and checks that
# the loss on the test split falls by at least half (eval of the initial weights against
# eval after training) and that eval prints the task's metrics. BACKEND (c or llvm) is
# passed to chiralc build --backend; default: chiralc's.
set -u
chiralc=$1 chiraldata=$2 rttool=$3 src=$4 ex=$5 backend=${6:-}
tmp=${TMPDIR:-/tmp}/chiralc-train-$ex-$$
mkdir -p "$tmp"; trap 'rm -rf "$tmp"' EXIT
bad() { echo "run_train $ex: FAIL: $*"; exit 1; }

# per example: the task, small widths, how much data and how long
case $ex in
  videopose3d)   task=lifting;  sets="--set blocks=1 --set width=68"; ntrain=12000; ntest=3000
                 run="--epochs 2 --batch 128 --lr 0.003"; metrics="MPJPE P-MPJPE" ;;
  martinez)      task=lifting;  sets="--set width=68"; ntrain=12000; ntest=3000
                 run="--epochs 3 --batch 64 --lr 0.003"; metrics="MPJPE P-MPJPE" ;;
  # the unrolled recurrences make a large C file: -O0 compiles it in seconds (same results)
  forecast_lstm) task=forecast; sets="--set hidden=52 -O0"; ntrain=3000; ntest=500
                 run="--epochs 1 --batch 32 --lr 0.003"; metrics="PCK@0.05 MPJPE" ;;
  # every class in both splits: thin the windows with a longer stride rather than cutting clips
  action_stconv) task="action --stride 32"; sets="--set width=34"; ntrain=100000; ntest=100000
                 run="--epochs 3 --batch 32 --lr 0.05 --bn-momentum layer"; metrics="top-1 top-5" ;;
  *) bad "unknown example" ;;
esac

"$chiraldata" $task --in "$src/data/cmu17.npz" --out "$tmp/data" > /dev/null || bad "chiraldata $task"
"$rttool" head "$tmp/data/train.npz" "$tmp/train.npz" $ntrain || bad "rttool head"
"$rttool" head "$tmp/data/test.npz" "$tmp/test.npz" $ntest || bad "rttool head"
p=$tmp/$ex
"$chiralc" build "$src/examples/$ex.net" $sets ${backend:+--backend $backend} -o "$p" > "$tmp/build.log" 2>&1 ||
  { cat "$tmp/build.log"; bad "chiralc build"; }

loss_of() { awk '$1 == "loss" { print $2 }' "$1"; }
"$p" train --data "$tmp/train.npz" --epochs 0 --save "$tmp/init.st" > /dev/null || bad "train --epochs 0"
"$p" eval --data "$tmp/test.npz" --load "$tmp/init.st" > "$tmp/eval0" || bad "eval of the initial weights"
"$p" train --data "$tmp/train.npz" --val "$tmp/test.npz" $run --no-progress --save "$tmp/ck.st" --log "$tmp/run.csv" \
  > "$tmp/train.log" || { cat "$tmp/train.log"; bad "train"; }
"$p" eval --data "$tmp/test.npz" --load "$tmp/ck.st" > "$tmp/eval1" || bad "eval after training"
cat "$tmp/train.log" "$tmp/eval1"
for m in $metrics; do
  grep -q "^  $m " "$tmp/eval1" || bad "eval prints no $m"
done
l0=$(loss_of "$tmp/eval0") l1=$(loss_of "$tmp/eval1")
awk -v a="$l0" -v b="$l1" 'BEGIN { exit !(b <= a / 2) }' ||
  bad "the test loss fell from $l0 to $l1, not by half"
echo "run_train $ex${backend:+ ($backend)}: test loss $l0 -> $l1"
# the CSV log: a header and one row per epoch, validation filled in
rows=$(($(wc -l < "$tmp/run.csv") - 1))
epochs=$(echo "$run" | awk '{ for (i = 1; i < NF; i++) if ($i == "--epochs") print $(i + 1) }')
[ "$rows" -eq "$epochs" ] || bad "run.csv has $rows rows for $epochs epochs"
exit 0
