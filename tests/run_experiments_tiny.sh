#!/bin/sh
# run_experiments_tiny.sh CHIRALC CHIRALDATA SRCDIR: the experiment driver of issue 6
# (experiments/run.py) on its tiny configuration, into a temporary folder (never docs/):
# it must run to the end and write results.md with every table and its rows, and the plots.
# Skipped (77) only where python3 is missing.
set -u
chiralc=$1 chiraldata=$2 src=$3
command -v python3 > /dev/null 2>&1 || { echo "run_experiments_tiny: SKIP: no python3"; exit 77; }
tmp=${TMPDIR:-/tmp}/chiralc-experiments-$$
mkdir -p "$tmp"; trap 'rm -rf "$tmp"' EXIT
bad() { echo "run_experiments_tiny: FAIL: $*"; exit 1; }

before=$(cksum "$src/docs/results.md" 2> /dev/null)
python3 "$src/experiments/run.py" --selftest || bad "the metrics' self-test"
# --check: the script's own checker (every table, its row count and labels, numbers, SVGs)
python3 "$src/experiments/run.py" --config tiny --chiralc "$chiralc" --chiraldata "$chiraldata" \
  --out "$tmp/work" --docs "$tmp/docs" --check > "$tmp/log" 2>&1 || { tail -30 "$tmp/log"; bad "run.py --config tiny"; }
md=$tmp/docs/results.md
[ -s "$md" ] || bad "no results.md"
[ "$(cksum "$src/docs/results.md" 2> /dev/null)" = "$before" ] || bad "the test changed docs/results.md"

# independent of the script: the section headings, and a few rows spelled out here
for h in "## 1. Lifting" "## 2. Limited training data" "## 3. Forecasting" "## 4. Action recognition" \
         "## 5. Design choices" "## 6. Equivariance on real data"; do
  grep -q "^$h" "$md" || bad "results.md has no section '$h'"
done
rows() { grep -cE -- "$1" "$md"; }
# lifting: 2 models x 2 networks x 2 trainings x 2 test modes
[ "$(rows '^\| (martinez|videopose3d) \| (chiral|baseline) \| (no augmentation|mirror 0\.5) \| (single pass|flip average) \| [0-9]')" -eq 16 ] ||
  bad "lifting table: expected 16 rows"
# limited data: 6 fractions x 3 networks
for f in 1 5 10 25 50 100; do
  [ "$(rows "^\\| $f % \\| [0-9/]+ \\| [0-9]+ \\| [0-9]+ \\| ")" -eq 3 ] || bad "limited-data table: expected 3 rows at $f %"
done
# forecasting: steps 1..10 and the mean over steps
for st in 1 2 3 4 5 6 7 8 9 10 "all steps"; do
  grep -q "^| $st | [0-9.]* ± [0-9.]* | [0-9.]* ± [0-9.]* |$" "$md" || bad "forecast table: no row for step $st"
done
grep -q '^| chiral | [0-9.]* ± [0-9.]* | ' "$md" && grep -q '^| baseline | [0-9.]* ± [0-9.]* | ' "$md" ||
  bad "action table: no chiral or baseline row"
grep -q '^| chiral, activations mixed | [0-9]' "$md" && grep -q '^| chiral, sharing paper | [0-9]' "$md" ||
  bad "design table: no activations mixed or sharing paper row"
grep -q '^| lifting | martinez | chiral | no augmentation | ' "$md" || bad "equivariance table: no lifting row"
grep -q '^| action | action_stconv | baseline | ' "$md" || bad "equivariance table: no action row"
grep -q '^- command: `python3 .*run.py' "$md" && grep -q '^- machine: [0-9]* CPUs' "$md" &&
  grep -q '^- run time: [0-9]* s' "$md" || bad "results.md: no command, machine or run time"
grep -q 'seeds 1, 2 ' "$md" || bad "results.md does not name the seeds"
for svg in limited_data.svg forecast_pck.svg; do
  grep -q '<polyline' "$tmp/docs/$svg" || bad "no plot $svg"
  grep -q "]($svg)" "$md" || bad "results.md does not show $svg"
done
tail -1 "$tmp/log"
exit 0
