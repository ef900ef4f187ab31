#!/bin/sh
# run_cuda.sh CHIRALC SRCDIR PROBE: the CUDA backend on any machine, GPU or not.
#  - every example's `chiralc emit cuda` output (compiled for training) compiles with nvcc
#    (-c, sm_90 only, little optimisation: the build's own nvcc flags are checked by the next
#    part), at small settings: every kind of step, fewer unrolled steps (nvcc takes about a
#    second per hundred kernels); martinez at width 136, whose rows of channels are long
#    enough for the block-per-row kernels (emit_cuda.c, by_rows);
#  - `chiralc build --target cuda` makes a program of a small videopose3d, whose `info`
#    works anywhere; on a machine without a GPU every other command exits 1 with exactly
#    one line "videopose3d: error: no CUDA device is available (...)"; with a GPU, bench
#    runs on it;
#  - the error checks (tests/cuda_probe.cu): one line with statement, file and line.
# Skipped (77) where chiralc was built without CUDA (PROBE is "none").
set -u
chiralc=$1 src=$2 probe=$3
[ "$probe" = none ] && { echo "run_cuda: chiralc was built without CUDA: skipped"; exit 77; }
nvcc=${CHIRALC_NVCC:-}
[ -n "$nvcc" ] || nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
tmp=${TMPDIR:-/tmp}/chiralc-cuda-$$
mkdir -p "$tmp"; trap 'rm -rf "$tmp"' EXIT
fail=0
say() { echo "run_cuda: $*"; }
bad() { say "FAIL: $*"; fail=1; }

# ---- emit cuda: every example compiles ----
for net in "$src"/examples/*.net; do
  ex=$(basename "$net" .net)
  case $ex in
    videopose3d)   sets="--set blocks=2 --set width=68" ;;
    martinez)      sets="--set width=136" ;;
    forecast_lstm) sets="--set past=3 --set future=3 --set hidden=52" ;;
    action_stconv) sets="--set frames=16 --set width=34" ;;
    *)             sets="" ;;
  esac
  mkdir -p "$tmp/$ex"
  t0=$(date +%s)
  "$chiralc" emit cuda "$net" $sets --train -o "$tmp/$ex" > /dev/null 2> "$tmp/$ex/emit.log" ||
    { cat "$tmp/$ex/emit.log"; bad "$ex: emit cuda"; continue; }
  grep -q "^/\* s0: " "$tmp/$ex/$ex.cu" || bad "$ex: no commented steps in $ex.cu"
  grep -q "cublasSgemm" "$tmp/$ex/$ex.cu" || bad "$ex: no cuBLAS call in $ex.cu"
  [ $ex = martinez ] && ! grep -q "for (int64_t p_ = blockIdx.x; p_ < rows_;" "$tmp/$ex/$ex.cu" &&
    bad "$ex: no block-per-row kernel in $ex.cu"
  "$nvcc" -std=c++17 -O0 -Xptxas -O1 --fmad=false -gencode=arch=compute_90,code=sm_90 -I"$src" \
    -c "$tmp/$ex/$ex.cu" -o "$tmp/$ex/$ex.o" > "$tmp/$ex/nvcc.log" 2>&1 ||
    { head -40 "$tmp/$ex/nvcc.log"; bad "$ex: nvcc failed on the emitted $ex.cu"; }
  grep -q "warning" "$tmp/$ex/nvcc.log" && { head -20 "$tmp/$ex/nvcc.log"; bad "$ex: nvcc warns"; }
  say "$ex: emitted $(wc -l < "$tmp/$ex/$ex.cu") lines, nvcc -c in $(($(date +%s) - t0)) s"
  rm -f "$tmp/$ex/$ex.o"
done
# emit cuda without -o prints the file
"$chiralc" emit cuda "$src/examples/martinez.net" 2> /dev/null | grep -q "^const RtModel \*rt_model_get(void)" ||
  bad "emit cuda to stdout"

# ---- build --target cuda ----
p=$tmp/vp
"$chiralc" build --target cuda "$src/examples/videopose3d.net" --set blocks=1 --set width=34 -o "$p" \
  > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; bad "chiralc build --target cuda"; exit 1; }
grep -q "^wrote $p (model videopose3d, cuda," "$tmp/build.log" || bad "build's summary line"
"$chiralc" build --target cuda --backend llvm "$src/examples/videopose3d.net" -o "$tmp/x" > /dev/null 2> "$tmp/err"
[ $? -eq 2 ] && grep -q "^chiralc: error: --target cuda has its own code generator" "$tmp/err" ||
  bad "--target cuda --backend llvm"
"$chiralc" build --target tpu "$src/examples/videopose3d.net" -o "$tmp/x" > /dev/null 2> "$tmp/err"
[ $? -eq 2 ] && grep -q "^chiralc: error: --target expects cpu or cuda, got 'tpu'" "$tmp/err" || bad "--target tpu"
"$p" --help | grep -q "^  grad " || bad "the program's --help"
"$p" info > "$tmp/info" || bad "info"
if grep -q "^runs on      cuda: no CUDA device is available" "$tmp/info"; then
  for cmd in "bench --steps 1" "train --data $tmp/none.npz" "eval --data $tmp/none.npz --load x" \
             "predict --load x --in x.npy --out y.npy" "export --load x --dense d.st" \
             "grad --load x --data $tmp/none.npz --out g.st"; do
    $p $cmd > "$tmp/out" 2> "$tmp/err"
    st=$?
    if [ $st -ne 1 ] || [ "$(wc -l < "$tmp/err")" -ne 1 ] ||
       ! grep -q "^videopose3d: error: no CUDA device is available (cudaGetDeviceCount" "$tmp/err"; then
      bad "vp $cmd without a GPU: expected status 1 and one line, got $st:"; cat "$tmp/err"
    fi
  done
  say "no GPU: $(cat "$tmp/err")"
elif grep -q "^runs on      cuda: " "$tmp/info"; then
  "$p" bench --batch 64 --steps 3 > "$tmp/bench" || bad "bench on the GPU"
  cat "$tmp/bench"
else
  bad "info does not say where the program runs"; cat "$tmp/info"
fi

# ---- the error checks: one line with the statement, the file and line, the error ----
probe_expect() {
  mode=$1 pattern=$2
  "$probe" "$mode" > /dev/null 2> "$tmp/err"
  st=$?
  if [ $st -ne 1 ] || [ "$(wc -l < "$tmp/err")" -ne 1 ] || ! grep -q -- "$pattern" "$tmp/err"; then
    bad "cuda_probe $mode: expected status 1 and one line matching '$pattern', got $st:"; cat "$tmp/err"
  fi
}
probe_expect cuda '^cuda_probe: error: CUDA: cudaMalloc(&p, (size_t)1 << 62) failed at [^ ]*tests/cuda_probe.cu:[0-9][0-9]*: cudaError[A-Za-z]* (.*)$'
probe_expect cublas '^cuda_probe: error: CUDA: cublasSgemm(NULL, .*) failed at [^ ]*tests/cuda_probe.cu:[0-9][0-9]*: CUBLAS_STATUS_NOT_INITIALIZED (.*)$'
probe_expect launch '^cuda_probe: error: CUDA: the launch of probe_kernel failed at [^ ]*tests/cuda_probe.cu:[0-9][0-9]*: cudaError[A-Za-z]* (.*)$'
"$probe" ok || bad "cuda_probe ok"
[ $fail -eq 0 ] && say "ok"
exit $fail
