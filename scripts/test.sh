#!/bin/sh
# scripts/test.sh: from a fresh checkout, build chiralc and run the whole test suite.
set -eu
cd "$(dirname "$0")/.."
sh scripts/build.sh build -DCHIRALC_WERROR=ON
ctest --test-dir build --output-on-failure -j2
