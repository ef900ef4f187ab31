#!/bin/sh
# run_chiraldata.sh CHIRALDATA SRCDIR: bad command lines get one line on stderr and status 2,
# bad input one line and status 1 with nothing written; one seed gives the same bytes.
set -u
tool=$1 src=$2
cmu="$src/data/cmu17.npz"
fail=0
tmp=${TMPDIR:-/tmp}/chiraldata-test-$$
mkdir -p "$tmp"; trap 'rm -rf "$tmp"' EXIT

expect() { # expect STATUS STDERR_PATTERN ARGS...: one line matching the pattern, no output files
  want_status=$1 want=$2; shift 2
  rm -rf "$tmp/bad"
  "$tool" "$@" > /dev/null 2> "$tmp/err"
  status=$?
  lines=$(wc -l < "$tmp/err")
  if [ "$status" -ne "$want_status" ] || [ "$lines" -ne 1 ] || ! grep -q -- "^chiraldata: error: $want" "$tmp/err"; then
    echo "chiraldata $*: expected status $want_status and one line matching 'chiraldata: error: $want', got status $status and:"
    cat "$tmp/err"; fail=1
  fi
  if [ -e "$tmp/bad/train.npz" ] || [ -e "$tmp/bad/test.npz" ]; then
    echo "chiraldata $*: failed but wrote output"; fail=1
  fi
}
o="--out $tmp/bad"
expect 2 "expected a task"
expect 2 "unknown task 'lift'" lift --in "$cmu" $o
expect 2 "unknown option '--bogus'" lifting --in "$cmu" $o --bogus
expect 2 "expected --out DIR" lifting --in "$cmu"
expect 2 "expected --in FILE.npz" lifting $o
expect 2 "--seed: expected a non-negative integer, got '-3'" lifting --in "$cmu" $o --seed -3
expect 2 "--seed: expected a non-negative integer, got 'x1'" lifting --in "$cmu" $o --seed x1
expect 2 "--split: expected source or balanced, got 'even'" lifting --in "$cmu" $o --split even
expect 2 "--past: expected an integer from 1 to 100000, got '0'" forecast --in "$cmu" $o --past 0
expect 2 "--stride: expected an integer from 1 to 100000, got '5x'" action --in "$cmu" $o --stride 5x
expect 2 "--stride does not apply to the lifting task" lifting --in "$cmu" $o --stride 5
expect 2 "--frames does not apply to the forecast task" forecast --in "$cmu" $o --frames 5
expect 2 "--past does not apply to the action task" action --in "$cmu" $o --past 5
expect 2 "--frames: expected a value" action --in "$cmu" $o --frames
expect 1 "$tmp/none.npz" lifting --in "$tmp/none.npz" $o
printf 'not a zip\n' > "$tmp/text.npz"
expect 1 "$tmp/text.npz" lifting --in "$tmp/text.npz" $o
expect 1 ".*no train clip is 100000 frames long" action --in "$cmu" $o --frames 100000

"$tool" --help | grep -q '^usage: chiraldata' || { echo "--help failed"; fail=1; }
# Determinism: one seed, the same bytes; another seed, other cameras.
for run in a b; do
  "$tool" lifting --in "$cmu" --out "$tmp/$run" --seed 5 > /dev/null || { echo "lifting run $run failed"; fail=1; }
done
"$tool" lifting --in "$cmu" --out "$tmp/c" --seed 6 > /dev/null || { echo "lifting seed 6 failed"; fail=1; }
for f in train test; do
  cmp -s "$tmp/a/$f.npz" "$tmp/b/$f.npz" || { echo "$f.npz differs between two runs with one seed"; fail=1; }
  cmp -s "$tmp/a/$f.npz" "$tmp/c/$f.npz" && { echo "$f.npz is the same for seeds 5 and 6"; fail=1; }
done
# An npz without positions_3d (the lifting output itself) is refused, naming the array.
expect 1 "$tmp/a/train.npz.*positions_3d" forecast --in "$tmp/a/train.npz" $o
# The other tasks run.
"$tool" forecast --in "$cmu" --out "$tmp/f" --split source --past 8 --future 4 > /dev/null || { echo "forecast failed"; fail=1; }
"$tool" action --in "$cmu" --out "$tmp/x" --no-extra > /dev/null || { echo "action failed"; fail=1; }
[ -s "$tmp/f/test.npz" ] && [ -s "$tmp/x/train.npz" ] || { echo "forecast/action wrote nothing"; fail=1; }
exit $fail
