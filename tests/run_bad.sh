#!/bin/sh
# run_bad.sh CHIRALC BADDIR NAME
# Runs `chiralc check NAME.net` (with the arguments in NAME.args, if any) from
# BADDIR and requires a non-zero exit and a stderr exactly equal to NAME.err.
# NAME.gen, if present, is a shell script that writes NAME.input (for inputs
# too large or too odd to keep in the repository: a 1 MB line, binary garbage),
# which is then compiled instead of NAME.net.
set -u
chiralc=$1 dir=$2 name=$3
cd "$dir" || exit 2
src="$name.net"
tmp=${TMPDIR:-/tmp}/chiralc-bad-$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
if [ -f "$name.gen" ]; then
  sh "$name.gen" > "$tmp/$name.input" || exit 2
  (cd "$tmp" && "$chiralc" check "$name.input") 2> "$tmp/stderr" > /dev/null
  status=$?
else
  args=""
  [ -f "$name.args" ] && args=$(cat "$name.args")
  # shellcheck disable=SC2086
  "$chiralc" check "$src" $args 2> "$tmp/stderr" > /dev/null
  status=$?
fi
if [ "$status" -eq 0 ]; then echo "expected a non-zero exit for $name"; exit 1; fi
if [ "$status" -ge 128 ]; then echo "crashed (status $status) on $name"; cat "$tmp/stderr"; exit 1; fi
if [ "${UPDATE_GOLDEN:-}" = 1 ]; then cp "$tmp/stderr" "$name.err"; exit 0; fi
diff -u "$name.err" "$tmp/stderr" || { echo "diagnostic mismatch for $name"; exit 1; }
