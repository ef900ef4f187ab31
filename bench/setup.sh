#!/bin/sh
# bench/setup.sh [VENV]: a Python virtual environment with PyTorch and numpy for bench/run.py
# (default bench/.venv). PyTorch is only for the benchmark: the test suite never needs it.
# pip takes whatever wheel of torch the registry gives for this machine; the benchmark runs it
# on the CPU. Then: python3 bench/run.py --build build --python VENV/bin/python
# (bench/run.py finds bench/.venv by itself).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-$here/.venv}
python=${PYTHON:-python3}
if ! "$python" -m venv "$venv" 2>/dev/null; then
    echo "setup.sh: '$python -m venv' failed; on Debian: apt-get install python3-venv" >&2
    exit 1
fi
"$venv/bin/python" -m pip install --upgrade pip >/dev/null
"$venv/bin/python" -m pip install torch numpy
"$venv/bin/python" -c "import torch, numpy; print('setup.sh: torch', torch.__version__, 'numpy', numpy.__version__, 'in $venv')"
