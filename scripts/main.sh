#!/bin/sh
# scripts/main.sh: the main job, from a fresh checkout.
#  1. builds chiralc and its runtime;
#  2. derives 2D->3D lifting data from the bundled CMU motion capture (data/cmu17.npz):
#     4 virtual cameras per clip, train/test split by clip;
#  3. compiles examples/videopose3d.net at a 27-frame receptive field (2 residual blocks)
#     into a chiral training program;
#  4. trains it on the CMU lifting data (every 16th training window, 5 epochs: a few
#     minutes on 2 cores) and evaluates MPJPE and P-MPJPE on the whole test split;
#  5. prints the parameter and multiply-add savings of the folded chiral network against
#     the written (baseline) one, and its measured equivariance error.
# Environment: EPOCHS, SUBSAMPLE, OUT (default build/main) change the run.
set -eu
cd "$(dirname "$0")/.."
sh scripts/build.sh build
out=${OUT:-build/main}
epochs=${EPOCHS:-5}
subsample=${SUBSAMPLE:-16}
mkdir -p "$out"

echo "== data: CMU motion capture -> 2D/3D lifting pairs (4 virtual cameras)"
./build/chiraldata lifting --in data/cmu17.npz --out "$out/lifting" --seed 1

echo "== compile: examples/videopose3d.net, 27-frame receptive field"
./build/chiralc build examples/videopose3d.net --set blocks=2 -o "$out/videopose3d_27"
"$out/videopose3d_27" info | sed -n '1,12p'

echo "== train: $epochs epochs on every ${subsample}th training window"
"$out/videopose3d_27" train --data "$out/lifting/train.npz" --epochs "$epochs" \
    --subsample "$subsample" --batch 256 --bn-momentum layer --seed 1 \
    --save "$out/videopose3d_27.safetensors" --log "$out/videopose3d_27.csv" --no-progress

echo "== evaluate on the test split (all windows)"
"$out/videopose3d_27" eval --data "$out/lifting/test.npz" --load "$out/videopose3d_27.safetensors" --batch 256

echo "== savings of the chiral network (folded) against the written network"
./build/chiralc inspect examples/videopose3d.net --set blocks=2 --table 2>/dev/null | tail -3
echo "== equivariance of the network (float64 reference, random folded weights)"
./build/chiralc check examples/videopose3d.net --set blocks=2 2>/dev/null
