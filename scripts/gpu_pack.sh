#!/bin/sh
# scripts/gpu_pack.sh DIR: chiralc and what it links, packed for a GPU machine that has the
# CUDA toolkit and PyTorch but not this project's libraries (OpenBLAS, LAPACKE, libzip,
# jansson) nor a way to install them. Built here without LLVM (its shared library is too
# large to carry; the CPU programs use the C backend) into build-gpu/, then copied to DIR
# with the libraries and their headers (deps.tar.xz, about 8 MB) and DIR/run.sh. There, from
# a checkout of the same commit:
#
#     sh DIR/run.sh [OUTDIR [gpu_run.py options]]
#
# runs the GPU checks (tests/run_cuda_gpu.sh) and the GPU benchmark (bench/gpu_run.py) and
# leaves their logs and the benchmark's table in OUTDIR (default: $OUT, else gpu-out).
# On a machine with everything installed, the usual build needs none of this (docs/gpu.md).
set -eu
[ $# -eq 1 ] || { echo "usage: sh scripts/gpu_pack.sh DIR" >&2; exit 2; }
mkdir -p "$1"
dir=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCHIRALC_LLVM=OFF > /dev/null
cmake --build build-gpu -j2 --target chiralc chiraldata rttool st_relerr chiralrt chiralrt_cuda bench_cublas_sgemm \
  > build-gpu/pack.log 2>&1 ||
  { echo "gpu_pack: the build failed (CUDA's nvcc and cuBLAS are needed here): build-gpu/pack.log" >&2; exit 1; }
cp build-gpu/chiralc build-gpu/chiraldata build-gpu/tests/rttool build-gpu/tests/st_relerr \
  build-gpu/bench_cublas_sgemm build-gpu/libchiralrt.a build-gpu/libchiralrt_cuda.a "$dir/"
# the libraries a program links (the runtime's whole set) and those they need in turn
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lib" "$tmp/include"
echo 'int main(void) { return 0; }' > "$tmp/probe.c"
cc -o "$tmp/probe" "$tmp/probe.c" -Wl,--no-as-needed -lopenblas -llapacke -lzip -ljansson -lz -lm
ldd "$tmp/probe" | awk '/=> \// { print $3 }' | while read -r so; do
  case $(basename "$so") in
    libc.so* | libm.so* | libgcc_s.so* | libpthread.so* | libdl.so* | libcrypto.so*) ;; # the GPU machine's own
    *) cp -L "$so" "$tmp/lib/" ;;
  esac
done
cblas=$(sed -n 's/^CBLAS_INCLUDE:PATH=//p' build-gpu/CMakeCache.txt)
lapacke=$(sed -n 's/^LAPACKE_INCLUDE:PATH=//p' build-gpu/CMakeCache.txt)
for h in "$cblas"/cblas.h "$cblas"/openblas_config.h "$cblas"/f77blas.h "$lapacke"/lapacke*.h; do
  [ -f "$h" ] && cp "$h" "$tmp/include/"
done
tar cJf "$dir/deps.tar.xz" -C "$tmp" lib include
cp scripts/gpu_pack_run.sh "$dir/run.sh"
echo "gpu_pack: $dir ($(du -sh "$dir" | cut -f1)); on the GPU machine, from the repository root: sh $dir/run.sh"
