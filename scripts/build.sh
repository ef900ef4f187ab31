#!/bin/sh
# scripts/build.sh [BUILD_DIR] [cmake options...]: configure and build chiralc.
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build}
[ $# -gt 0 ] && shift
sh scripts/setup.sh
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$dir" -j2
