#!/bin/sh
# scripts/main.sh: the main job. Builds chiralc, then, for every example network,
# prints the parameter and multiply-add savings of the chiral network (`inspect`)
# and measures its equivariance error (`check`).
set -eu
cd "$(dirname "$0")/.."
sh scripts/build.sh build
for ex in videopose3d martinez forecast_lstm action_stconv; do
  echo "=== examples/$ex.net"
  ./build/chiralc inspect "examples/$ex.net" --table
  ./build/chiralc check "examples/$ex.net"
  echo
done
