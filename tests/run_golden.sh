#!/bin/sh
# run_golden.sh CHIRALC SRCDIR EXAMPLE PASS
# Compares `chiralc inspect` output with tests/golden/EXAMPLE/PASS.txt:
# PASS is a pass name (the IR after it) or `table` (the count table).
# UPDATE_GOLDEN=1 rewrites the golden file instead.
set -eu
chiralc=$1 src=$2 ex=$3 pass=$4
golden="$src/tests/golden/$ex/$pass.txt"
cd "$src/examples"
if [ "$pass" = table ]; then
  actual=$("$chiralc" inspect "$ex.net" --table)
else
  actual=$("$chiralc" inspect "$ex.net" --after "$pass")
fi
if [ "${UPDATE_GOLDEN:-}" = 1 ]; then
  mkdir -p "$(dirname "$golden")"
  printf '%s\n' "$actual" > "$golden"
  exit 0
fi
printf '%s\n' "$actual" | diff -u "$golden" - || { echo "golden mismatch: $golden (UPDATE_GOLDEN=1 to accept)"; exit 1; }
