#!/bin/sh
# run_program.sh CHIRALC CHIRALDATA RTTOOL SRCDIR: a produced program (martinez, small) on
# the CMU lifting data: its command line, bad data and checkpoints (one line on stderr
# naming the file and array, exit status 1), resume (bit-identical weights), an
# interrupted run (never a partial checkpoint), predict and info.
set -u
chiralc=$1 chiraldata=$2 rttool=$3 src=$4
fail=0
tmp=${TMPDIR:-/tmp}/chiralc-program-$$
mkdir -p "$tmp"; trap 'rm -rf "$tmp"' EXIT
say() { echo "run_program: $*"; }
bad() { say "FAIL: $*"; fail=1; }

"$chiraldata" lifting --in "$src/data/cmu17.npz" --out "$tmp/full" > /dev/null || { bad "chiraldata"; exit 1; }
# a few clips each: this test is about the program, not about learning
"$rttool" head "$tmp/full/train.npz" "$tmp/train.npz" 3000 || bad "rttool head"
"$rttool" head "$tmp/full/test.npz" "$tmp/test.npz" 1000 || bad "rttool head"
p=$tmp/martinez
"$chiralc" build "$src/examples/martinez.net" --set width=34 -o "$p" > /dev/null 2>&1 || { bad "chiralc build"; exit 1; }
"$chiralc" build "$src/examples/martinez.net" --set width=51 -o "$tmp/other" > /dev/null 2>&1 || bad "chiralc build (other)"

# chiralc build's own errors: one line, and no program written
"$chiralc" build "$src/examples/martinez.net" > /dev/null 2> "$tmp/err"
[ $? -eq 2 ] && grep -q "^chiralc: error: build needs -o PROGRAM" "$tmp/err" || bad "build without -o"
"$chiralc" build "$src/examples/martinez.net" --set width=34 -o "$tmp/no/such/dir/p" > /dev/null 2> "$tmp/err"
[ $? -eq 1 ] && grep -q "^$tmp/no/such/dir/p: error: cannot write" "$tmp/err" || bad "build into a missing directory"
TMPDIR=$tmp CHIRALC_CC=/bin/false "$chiralc" build "$src/examples/martinez.net" --set width=34 -o "$tmp/never" > /dev/null 2> "$tmp/err"
[ $? -eq 1 ] && grep -q "^chiralc: error: the C compiler failed" "$tmp/err" || bad "build with a failing compiler"
ls "$tmp" | grep -q never && bad "a failed build left a program or a temporary file"

# expect STATUS PATTERN ARGS...: exactly one line on stderr, matching "martinez: error: PATTERN"
# (or the program's usage error) and the exit status.
expect() {
  want_status=$1 want=$2; shift 2
  "$p" "$@" > "$tmp/out" 2> "$tmp/err"
  status=$?
  lines=$(wc -l < "$tmp/err")
  if [ "$status" -ne "$want_status" ] || [ "$lines" -ne 1 ] || ! grep -q -- "^martinez: error: $want" "$tmp/err"; then
    bad "martinez $*: expected status $want_status and one line matching 'martinez: error: $want', got $status:"
    cat "$tmp/err"
  fi
}

# ---- the command line ----
"$p" --help | grep -q "^usage: martinez COMMAND" || bad "--help"
for c in train eval predict bench export info; do
  "$p" $c --help | grep -q "^usage: martinez $c" || bad "$c --help"
done
"$p" > /dev/null 2>&1; [ $? -eq 2 ] || bad "no command: status 2 expected"
expect 2 "unknown command 'fly'" fly
expect 2 "unknown option '--bogus' for 'train'" train --data "$tmp/train.npz" --bogus
expect 2 "unknown option '--load' for 'train'" train --data "$tmp/train.npz" --load x
expect 2 "'train' needs --data" train
expect 2 "'eval' needs --load" eval --data "$tmp/test.npz"
expect 2 "--epochs expects an integer from 0 to 1000000, got 'x'" train --data "$tmp/train.npz" --epochs x
expect 2 "--batch expects an integer from 1 to 1048576, got '0'" train --data "$tmp/train.npz" --batch 0
expect 2 "--lr expects a positive number, got '-1'" train --data "$tmp/train.npz" --lr -1
expect 2 "--array expects NAME=ARRAY, got 'pose2d'" eval --data "$tmp/test.npz" --load x --array pose2d
expect 2 "option '--data' needs a value" train --data
"$p" info > "$tmp/info" || bad "info"
grep -q "^fingerprint  fnv1a64:" "$tmp/info" || bad "info: no fingerprint"
grep -q "pose2d .*\[N, 17, 2\]" "$tmp/info" || bad "info: input shape"
grep -q "12 pairs swapped, 10 fixed, 17 negated of 34 features" "$tmp/info" || bad "info: input chirality"

# ---- the initial weights, eval, predict ----
"$p" train --data "$tmp/train.npz" --epochs 0 --save "$tmp/init.st" > /dev/null || bad "train --epochs 0"
"$p" eval --data "$tmp/test.npz" --load "$tmp/init.st" > "$tmp/eval" || bad "eval"
grep -q "MPJPE .* mm" "$tmp/eval" && grep -q "P-MPJPE .* mm" "$tmp/eval" && grep -q "loss .*(mse)" "$tmp/eval" ||
  { bad "eval prints no metrics:"; cat "$tmp/eval"; }
"$rttool" extract "$tmp/test.npz" pose2d "$tmp/x.npy" || bad "extract"
"$p" predict --load "$tmp/init.st" --in "$tmp/x.npy" --out "$tmp/y.npy" > /dev/null || bad "predict"
head -c 128 "$tmp/y.npy" | grep -q "'shape': ([0-9]*, 17, 3)" || bad "predict: output shape"
"$p" export --load "$tmp/init.st" --dense "$tmp/dense.st" > /dev/null || bad "export"
[ -s "$tmp/dense.st" ] || bad "export wrote nothing"
"$p" bench --batch 16 --steps 2 > "$tmp/bench" || bad "bench"
grep -q "forward (infer)" "$tmp/bench" || bad "bench prints no forward timing"

# ---- bad data: one line naming the file and the array, status 1 ----
d=$tmp/test.npz
"$rttool" corrupt "$d" "$tmp/shape.npz" shape pose2d
expect 1 "$tmp/shape.npz: array 'pose2d': expected shape \[N, 17, 2\], got \[[0-9]*, 17, 1\]" eval --data "$tmp/shape.npz" --load "$tmp/init.st"
"$rttool" corrupt "$d" "$tmp/dtype.npz" dtype pose3d
expect 1 "$tmp/dtype.npz: array 'pose3d': expected float32, got int32" eval --data "$tmp/dtype.npz" --load "$tmp/init.st"
"$rttool" corrupt "$d" "$tmp/nan.npz" nan pose2d
expect 1 "$tmp/nan.npz: array 'pose2d': element .* is NaN" train --data "$tmp/nan.npz" --epochs 0
"$rttool" corrupt "$d" "$tmp/drop.npz" drop pose3d
expect 1 "$tmp/drop.npz: no array 'pose3d'" eval --data "$tmp/drop.npz" --load "$tmp/init.st"
expect 1 "$d: array 'pose3d': expected shape \[N, 17, 2\], got \[[0-9]*, 17, 3\]" eval --data "$d" --load "$tmp/init.st" --array pose2d=pose3d
expect 1 "$tmp/none.npz: " eval --data "$tmp/none.npz" --load "$tmp/init.st"
size=$(wc -c < "$d")
head -c $((size / 2)) "$d" > "$tmp/trunc.npz"
expect 1 "$tmp/trunc.npz: " eval --data "$tmp/trunc.npz" --load "$tmp/init.st"
# checkpoints: another model's, a truncated one, not a checkpoint at all
"$tmp/other" train --data "$tmp/train.npz" --epochs 0 --save "$tmp/other.st" > /dev/null || bad "other model"
expect 1 "$tmp/other.st: a checkpoint of another model" eval --data "$d" --load "$tmp/other.st"
expect 1 "$tmp/other.st: a checkpoint of another model" train --data "$tmp/train.npz" --resume "$tmp/other.st"
expect 1 "$tmp/other.st: a checkpoint of another model" export --load "$tmp/other.st" --dense "$tmp/d2.st"
[ -e "$tmp/d2.st" ] && bad "export wrote output after an error"
size=$(wc -c < "$tmp/init.st")
head -c $((size - 100)) "$tmp/init.st" > "$tmp/trunc.st"
expect 1 "$tmp/trunc.st: " eval --data "$d" --load "$tmp/trunc.st"
expect 1 "$tmp/trunc.st: " predict --load "$tmp/trunc.st" --in "$tmp/x.npy" --out "$tmp/y2.npy"
[ -e "$tmp/y2.npy" ] && bad "predict wrote output after an error"
expect 1 "$tmp/x.npy: " eval --data "$d" --load "$tmp/x.npy"
"$rttool" extract "$tmp/test.npz" pose3d "$tmp/x3.npy"
expect 1 "$tmp/x3.npy: array 'pose2d': expected shape \[N, 17, 2\], got \[[0-9]*, 17, 3\]" predict --load "$tmp/init.st" --in "$tmp/x3.npy" --out "$tmp/y3.npy"

if ! grep -q "^backward     yes" "$tmp/info"; then
  say "the model has no backward pass: training checks skipped"
  expect 1 "model 'martinez' was compiled without its backward pass" train --data "$tmp/train.npz" --epochs 1
  exit $fail
fi

# ---- resume: 2 epochs straight = 1 epoch + resume to 2 (bit for bit, any thread count) ----
t="--data $tmp/train.npz --no-progress"
"$p" train $t --epochs 2 --save "$tmp/a.st" --log "$tmp/a.csv" > /dev/null || bad "train 2 epochs"
"$p" train $t --epochs 1 --save "$tmp/b.st" --log "$tmp/b.csv" > /dev/null || bad "train 1 epoch"
"$p" train $t --epochs 2 --resume "$tmp/b.st" --save "$tmp/b.st" --log "$tmp/b.csv" --threads 1 > /dev/null ||
  bad "train --resume"
"$rttool" same "$tmp/a.st" "$tmp/b.st" || bad "resumed run differs from the unbroken one"
cmp -s "$tmp/a.st" "$tmp/b.st" || bad "resumed checkpoint file differs from the unbroken one"
[ "$(wc -l < "$tmp/b.csv")" -eq 3 ] || bad "resumed CSV log: expected a header and 2 rows"
head -1 "$tmp/a.csv" | grep -q "^epoch,lr,train_loss,val_loss" || bad "CSV header"
"$p" train $t --epochs 2 --seed 7 --save "$tmp/c.st" > /dev/null || bad "train seed 7"
"$rttool" same "$tmp/a.st" "$tmp/c.st" 2> /dev/null && bad "another seed gave the same weights"

# ---- interrupted: SIGTERM stops between batches, SIGKILL at any moment; the checkpoint
# is always whole (the previous epoch's or the last one) and the run resumes exactly ----
for sig in TERM KILL; do
  rm -f "$tmp/k.st"
  "$p" train $t --epochs 6 --save "$tmp/k.st" > /dev/null 2>&1 &
  pid=$!
  n=0
  while [ ! -e "$tmp/k.st" ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n + 1)); done
  kill -$sig $pid 2> /dev/null
  wait $pid
  [ -e "$tmp/k.st" ] || { bad "$sig: no checkpoint after the first epoch"; continue; }
  "$p" eval --data "$d" --load "$tmp/k.st" > /dev/null || bad "$sig: the checkpoint left behind does not load"
  if [ $sig = TERM ]; then
    ls "$tmp" | grep -q 'k\.st\.tmp' && bad "SIGTERM left a temporary file"
  fi
  "$p" train $t --epochs 6 --resume "$tmp/k.st" --save "$tmp/k.st" > /dev/null || bad "$sig: resume"
  ls "$tmp" | grep -q 'k\.st\.tmp' && bad "$sig: a temporary file is left after the resumed run"
  [ $sig = TERM ] && "$p" train $t --epochs 6 --save "$tmp/s6.st" > /dev/null
  "$rttool" same "$tmp/s6.st" "$tmp/k.st" || bad "$sig: interrupted + resumed differs from the unbroken run"
done
exit $fail
