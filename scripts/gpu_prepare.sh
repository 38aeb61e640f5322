#!/usr/bin/env bash
# Fill gpu-carry/ for scripts/gpu_run.sh (docs/GPU_RUN.md): the wheels the device machine lacks
# (diffusers and platformdirs, at the versions installed here), the latest teacher
# checkpoint as one fp16 weights-only file and its VAE; checks that the tree plus gpu-carry/ stays
# within the 64 MiB that travel.
#   scripts/gpu_prepare.sh                          # runs/teacher -> gpu-carry/
#   scripts/gpu_prepare.sh --teacher runs/teacher2  # another run
#   scripts/gpu_prepare.sh --teacher models/sprint-shapes-teacher  # the packaged teacher in the tree:
#                                                   # only a pointer to it is carried, no weights
#   scripts/gpu_prepare.sh --no-wheels              # keep the wheels already there (or none: no network)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m sprint_desktop.devtools.gpu_run prepare "$@"
