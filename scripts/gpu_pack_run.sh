#!/bin/sh
# run.sh [OUTDIR [gpu_run.py options]], made by scripts/gpu_pack.sh: on a GPU machine, from
# the repository root, the GPU checks (tests/run_cuda_gpu.sh) and the GPU benchmark
# (bench/gpu_run.py) with the packed chiralc, its runtime and libraries. OUTDIR (default:
# $OUT, else gpu-out) gets device.txt, cuda_gpu.log, gpu_run.log and gpu.md. Exit status:
# the checks' (0 passed, 77 skipped: no device).
set -u
pack=$(cd "$(dirname "$0")" && pwd)
root=$(pwd)
out=${1:-${OUT:-gpu-out}}
[ $# -gt 0 ] && shift
[ -f tests/run_cuda_gpu.sh ] || { echo "run.sh: run it from the repository root" >&2; exit 2; }
mkdir -p "$out"
deps=${TMPDIR:-/tmp}/chiralc-gpu-deps
if [ ! -d "$deps/lib" ]; then
  mkdir -p "$deps" && tar xJf "$pack/deps.tar.xz" -C "$deps" || exit 1
  (cd "$deps/lib" && for f in *.so.*; do ln -sf "$f" "${f%%.so.*}.so"; done)
fi
# cuBLAS wherever this machine's toolkit keeps it
cublas=$(dirname "$(find / -name 'libcublas.so*' -not -path '/proc/*' 2> /dev/null | head -1)")
export LD_LIBRARY_PATH="$deps/lib:$cublas:${LD_LIBRARY_PATH:-}" LIBRARY_PATH="$deps/lib:$cublas"
export CHIRALC_INCLUDE="$root $deps/include" CHIRALC_RUNTIME="$pack/libchiralrt.a"
export CHIRALC_CUDA_RUNTIME="$pack/libchiralrt_cuda.a" CHIRALC_CUDA_LIBS="-L$cublas -lcublas"
export CHIRALC_LIBS="-L$deps/lib -lopenblas -llapacke -lzip -ljansson -lz -lm"
CHIRALC_NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
export CHIRALC_NVCC PYTHONUNBUFFERED=1
nvidia-smi -L > "$out/device.txt" 2>&1
sh tests/run_cuda_gpu.sh "$pack/chiralc" "$pack/chiraldata" "$pack/rttool" "$pack/st_relerr" "$root" \
  > "$out/cuda_gpu.log" 2>&1
st=$?
cat "$out/cuda_gpu.log"
python3 bench/gpu_run.py --chiralc "$pack/chiralc" --build "$pack" --python python3 --out "$out/gpu.md" "$@" \
  > "$out/gpu_run.log" 2>&1
tail -n 40 "$out/gpu_run.log"
exit $st
