#!/bin/sh
# scripts/setup.sh: installs what building and testing chiralc needs (Debian, as root).
# Quiet and quick when everything is already there.
set -eu
need=""
command -v cmake >/dev/null 2>&1 || need="$need cmake"
command -v cc >/dev/null 2>&1 || need="$need build-essential"
command -v flex >/dev/null 2>&1 || need="$need flex"
command -v bison >/dev/null 2>&1 || need="$need bison"
[ -f /usr/include/cmocka.h ] || need="$need libcmocka-dev"
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
[ -f /usr/include/zlib.h ] || need="$need zlib1g-dev"
[ -f /usr/include/zip.h ] || need="$need libzip-dev"
[ -f /usr/include/jansson.h ] || need="$need libjansson-dev"
have() { for f in "$@"; do [ -e "$f" ] && return 0; done; return 1; }
have /usr/include/cblas.h /usr/include/*/cblas.h /usr/include/*/openblas*/cblas.h \
  && have /usr/lib/*/libopenblas.so /usr/lib/libopenblas.so || need="$need libopenblas-dev"
have /usr/include/lapacke.h /usr/include/*/lapacke.h || need="$need liblapacke-dev"
# the LLVM backend (optional: CMake builds without it, `--backend c` only)
command -v llvm-config >/dev/null 2>&1 || command -v llvm-config-14 >/dev/null 2>&1 || need="$need llvm-14-dev"
if [ "${CHIRALC_FUZZ_DEPS:-0}" = 1 ]; then
  command -v clang >/dev/null 2>&1 || need="$need clang"
  ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 \
    || need="$need libclang-rt-dev"
fi
if [ -n "$need" ]; then
  echo "setup: installing$need"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
fi
