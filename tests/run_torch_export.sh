#!/bin/sh
# run_torch_export.sh CHIRALC SRCDIR: the dense export in stock PyTorch layers.
# For small versions of the examples and a GRU network: chiralc build, one short training epoch on random
# data (so that batchnorm's running statistics are not the initial ones), predict on
# random inputs, export --dense, and tests/torch_export_check.py, which rebuilds the
# network from nn.Conv1d / nn.Linear / nn.BatchNorm1d / nn.LSTM / nn.GRU, loads the file
# with load_state_dict(strict=True), compares with predict (< 1e-5) and checks that the
# PyTorch network is equivariant. Exit 77 (skipped) without torch, numpy or safetensors;
# PYTHON picks the interpreter (default python3).
set -u
chiralc=$1 src=$2
py=${PYTHON:-python3}
check="$src/tests/torch_export_check.py"
if ! "$py" -c "import torch, numpy, safetensors" 2> /dev/null; then
  echo "torch, numpy or safetensors is not installed for $py: skipped"
  exit 77
fi
tmp=${TMPDIR:-/tmp}/torch-export-test-$$
mkdir -p "$tmp"; trap 'rm -rf "$tmp"' EXIT
fail=0

one() { # one NAME NET [--set ...]: build, train 1 epoch, predict, export, check
  name=$1 net=$2; shift 2
  d="$tmp/$name"; mkdir -p "$d"
  case $net in /*) ;; *) net="$src/$net" ;; esac
  if ! "$chiralc" build "$net" -o "$d/prog" "$@" > "$d/log" 2>&1; then
    echo "$name: chiralc build failed:"; cat "$d/log"; fail=1; return
  fi
  "$d/prog" info > "$d/info.txt" &&
  "$py" "$check" data "$d/info.txt" "$d/train.npz" "$d/x.npy" --n 32 &&
  "$d/prog" train --data "$d/train.npz" --epochs 1 --batch 8 --save "$d/ckpt.safetensors" --no-progress > "$d/log" 2>&1 &&
  "$d/prog" predict --load "$d/ckpt.safetensors" --in "$d/x.npy" --out "$d/y.npy" >> "$d/log" 2>&1 &&
  "$d/prog" export --load "$d/ckpt.safetensors" --dense "$d/dense.safetensors" >> "$d/log" 2>&1
  status=$?
  if [ $status -ne 0 ]; then
    echo "$name: the program failed (status $status):"; cat "$d/log"; fail=1; return
  fi
  if ! "$py" "$check" check "$d/dense.safetensors" --in "$d/x.npy" --out "$d/y.npy"; then
    echo "$name: FAILED"; fail=1
  fi
}

one videopose3d examples/videopose3d.net --set width=68 --set blocks=2
one martinez examples/martinez.net --set width=68
one forecast_lstm examples/forecast_lstm.net --set hidden=52 --set past=4 --set future=3
one action_stconv examples/action_stconv.net --set width=34 --set frames=8
one martinez_mixed examples/martinez.net --set width=68 --activations mixed --sharing paper --layout pairs
# GRUs (PyTorch's b_hn inside r * (...)), a seq2seq init and mixed activations: the test
# network with a loss added so that it builds into a program
{ cat "$src/tests/nets/gru_seq2seq.net"; printf 'train {\n  loss mse(predicted)\n}\n'; } > "$tmp/gru_seq2seq.net"
one gru_seq2seq "$tmp/gru_seq2seq.net"
exit $fail
