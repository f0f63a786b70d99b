#!/bin/sh
# Does mmtui work on this GPU, and how fast? One page in a few minutes (see benchmarks/gpu_check.py).
#   scripts/gpu_check.sh [--device cuda:0] [--keep DIR] [--products N] [--json]
# Without CUDA it says so and exits 0.
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
[ -x "$here/.venv/bin/python" ] && python="$here/.venv/bin/python"
cd "$here" && PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m benchmarks.gpu_check "$@"
