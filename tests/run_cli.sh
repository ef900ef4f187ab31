#!/bin/sh
# run_cli.sh CHIRALC SRCDIR: bad command lines get one line on stderr and exit status 2;
# a missing file one line and status 1; --help and --version succeed.
set -u
chiralc=$1 src=$2
ex="$src/examples/martinez.net"
fail=0
tmp=${TMPDIR:-/tmp}/chiralc-cli-$$
mkdir -p "$tmp"; trap 'rm -rf "$tmp"' EXIT

expect() { # expect STATUS EXPECTED_STDERR ARGS...
  want_status=$1 want=$2; shift 2
  "$chiralc" "$@" > /dev/null 2> "$tmp/err"
  status=$?
  got=$(cat "$tmp/err")
  if [ "$status" -ne "$want_status" ] || [ "$got" != "$want" ]; then
    echo "chiralc $*: expected status $want_status and:"; echo "  $want"
    echo "got status $status and:"; echo "  $got"
    fail=1
  fi
}
expect 2 "chiralc: error: unknown command 'compile' (chiralc --help lists the options)" compile "$ex"
expect 2 "chiralc: error: unknown option '--frobnicate' for 'inspect' (chiralc --help lists the options)" inspect "$ex" --frobnicate
expect 2 "chiralc: error: option '--after' needs a value (chiralc --help lists the options)" inspect "$ex" --after
expect 2 "chiralc: error: unknown pass 'fold' for --after (elab, shape, chirality, legalize, invariance, count, autodiff) (chiralc --help lists the options)" inspect "$ex" --after fold
expect 2 "chiralc: error: no model file given (chiralc --help lists the options)" check
expect 2 "chiralc: error: --layout expects joints or pairs, got 'rows' (chiralc --help lists the options)" check "$ex" --layout rows
expect 2 "chiralc: error: --neg-ratio expects a number between 0 and 1, got '3/2' (chiralc --help lists the options)" check "$ex" --neg-ratio 3/2
expect 2 "chiralc: error: --set expects NAME=NUMBER, got 'width' (chiralc --help lists the options)" check "$ex" --set width
expect 2 "chiralc: error: --set depth: $ex has no 'let depth'" check "$ex" --set depth=3
expect 2 "chiralc: error: --batch expects an integer from 1 to 4096, got '0' (chiralc --help lists the options)" check "$ex" --batch 0
expect 2 "chiralc: error: unknown option '--seed' for 'inspect' (chiralc --help lists the options)" inspect "$ex" --seed 3
expect 1 "$tmp/none.net: error: cannot open: No such file or directory" check "$tmp/none.net"
"$chiralc" --help > /dev/null || { echo "--help failed"; fail=1; }
"$chiralc" --version > /dev/null || { echo "--version failed"; fail=1; }
# --dot writes the whole file or nothing.
"$chiralc" inspect "$ex" --table --dot "$tmp/g.dot" > /dev/null || { echo "--dot failed"; fail=1; }
head -1 "$tmp/g.dot" | grep -q '^digraph' || { echo "--dot did not write a digraph"; fail=1; }
"$chiralc" inspect "$ex" --table --dot "$tmp/missing/dir/g.dot" > /dev/null 2>&1 && { echo "--dot into a missing dir succeeded"; fail=1; }
ls "$tmp/missing" > /dev/null 2>&1 && { echo "--dot left something behind"; fail=1; }
exit $fail
