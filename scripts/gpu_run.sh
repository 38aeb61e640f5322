#!/usr/bin/env bash
# One prepared GPU run: check, the kd student, teacher training (benchmarks on request), inside 9.25 minutes (docs/GPU_RUN.md).
#   scripts/gpu_run.sh              # on the device machine; results in $OUT (else ./gpu-out)
#   scripts/gpu_run.sh --dry-run    # here: every section at tiny sizes on the CPU (a test runs it)
# It first installs the wheels that scripts/gpu_prepare.sh put in gpu-carry/wheels into a folder
# of its own (no index is reachable there), then runs sprint_desktop/devtools/gpu_run.py.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3; fi   # the device machine's python3 holds PyTorch
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PY" -m sprint_desktop.devtools.gpu_run run "$@"
