#!/bin/sh
# run_cuda_gpu.sh CHIRALC CHIRALDATA RTTOOL RELERR SRCDIR: the CUDA programs on a GPU against
# the CPU programs of the same models. For every example (small widths): the CPU program
# writes the initial weights; both programs' `grad` on one batch (training forward with
# dropout, loss, backward, then inference) must agree (relative error < 1e-4 on the outputs,
# the loss, the gradients and the running statistics), the GPU's inference must be
# equivariant (T f(T x) against f(x), < 1e-5), the training forward must have moved the
# running statistics of the models with batch norm, and a short GPU training run must lower
# the loss. Skipped (77) on machines without a usable CUDA device, and where chiralc has no
# CUDA. TARGET=cpu runs the script with CPU programs on both sides (the script's own check,
# ctest grad_cpu); EXAMPLES picks the examples (default: all four).
set -u
chiralc=$1 chiraldata=$2 rttool=$3 relerr=$4 src=$5
target=${TARGET:-cuda}
tmp=${TMPDIR:-/tmp}/chiralc-cuda-gpu-$$
mkdir -p "$tmp"; trap 'rm -rf "$tmp"' EXIT
fail=0
say() { echo "run_cuda_gpu: $*"; }
bad() { say "FAIL: $*"; fail=1; }

# no NVIDIA driver at all: skip before compiling anything
if [ "$target" = cuda ] && [ ! -e /dev/nvidiactl ] && ! command -v nvidia-smi > /dev/null 2>&1; then
  say "no NVIDIA driver (/dev/nvidiactl, nvidia-smi): skipped"; exit 77
fi
# a probe program: skip unless it runs on a GPU
"$chiralc" build --target "$target" "$src/examples/martinez.net" --set width=34 -o "$tmp/probe" \
  > "$tmp/build.log" 2>&1 || { grep -q "built without CUDA" "$tmp/build.log" && exit 77; cat "$tmp/build.log"; exit 1; }
"$tmp/probe" info > "$tmp/info"
if [ "$target" = cuda ]; then
  grep -q "^runs on      cuda: no CUDA device" "$tmp/info" && { say "no CUDA device: skipped"; exit 77; }
  grep -q "^runs on      cuda: " "$tmp/info" || { cat "$tmp/info"; exit 1; }
fi
grep "^runs on" "$tmp/info"

# below tolerance: lt VALUE LIMIT
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a == a + 0 && a < b) }'; }

for ex in ${EXAMPLES:-videopose3d martinez forecast_lstm action_stconv}; do
  bn=1 # has batch norm, whose running statistics the training forward moves
  case $ex in
    videopose3d)   task=lifting;  sets="--set blocks=1 --set width=68"; batch=32 ;;
    martinez)      task=lifting;  sets="--set width=136"; batch=64 ;;
    forecast_lstm) task=forecast; sets="--set hidden=52"; batch=16; bn=0 ;;
    action_stconv) task="action --stride 32"; sets="--set width=34"; batch=16 ;;
    *) bad "unknown example $ex"; continue ;;
  esac
  d=$tmp/$ex
  mkdir -p "$d"
  "$chiraldata" $task --in "$src/data/cmu17.npz" --out "$d/data" > /dev/null || { bad "$ex: chiraldata"; continue; }
  "$rttool" head "$d/data/train.npz" "$d/train.npz" 2000 || { bad "$ex: rttool head"; continue; }
  "$chiralc" build "$src/examples/$ex.net" $sets -O1 -o "$d/cpu" > "$d/b1.log" 2>&1 || { cat "$d/b1.log"; bad "$ex: build cpu"; continue; }
  "$chiralc" build --target "$target" "$src/examples/$ex.net" $sets -o "$d/gpu" > "$d/b2.log" 2>&1 ||
    { cat "$d/b2.log"; bad "$ex: build $target"; continue; }
  "$d/cpu" train --data "$d/train.npz" --epochs 0 --seed 5 --save "$d/init.st" > /dev/null || { bad "$ex: init"; continue; }
  "$d/cpu" grad --load "$d/init.st" --data "$d/train.npz" --batch $batch --seed 3 --out "$d/cpu.st" > /dev/null ||
    { bad "$ex: cpu grad"; continue; }
  "$d/gpu" grad --load "$d/init.st" --data "$d/train.npz" --batch $batch --seed 3 --out "$d/gpu.st" > /dev/null ||
    { bad "$ex: $target grad"; continue; }
  line="$ex:"
  for t in train/output train/loss train/grad train/state infer/output; do
    r=$("$relerr" "$d/gpu.st" "$d/cpu.st" $t) || { bad "$ex: $t missing"; continue; }
    line="$line $t $r"
    lt "$r" 1e-4 || bad "$ex: $target against cpu, $t: relative error $r (limit 1e-4)"
  done
  if [ $bn = 1 ]; then
    r=$("$relerr" "$d/cpu.st" "$d/cpu.st" train/state init/state)
    line="$line state moved $r"
    lt 1e-3 "$r" || bad "$ex: the cpu program's training forward left the running statistics where they were ($r)"
  fi
  r=$("$relerr" "$d/gpu.st" "$d/gpu.st" infer/mirror infer/output)
  line="$line equivariance $r"
  lt "$r" 1e-5 || bad "$ex: $target equivariance error $r (limit 1e-5)"
  # a few epochs on the GPU: the training loss falls
  "$d/gpu" train --data "$d/train.npz" --epochs 3 --batch $batch --lr 0.003 --seed 5 --no-progress --log "$d/run.csv" \
    > "$d/train.log" 2>&1 || { cat "$d/train.log"; bad "$ex: train on $target"; continue; }
  l1=$(awk -F, 'NR == 2 { print $3 }' "$d/run.csv") l3=$(awk -F, 'NR == 4 { print $3 }' "$d/run.csv")
  line="$line loss $l1 -> $l3"
  awk -v a="$l1" -v b="$l3" 'BEGIN { exit !(b < a) }' || bad "$ex: the training loss on $target did not fall ($l1 -> $l3)"
  say "$line"
done
exit $fail
