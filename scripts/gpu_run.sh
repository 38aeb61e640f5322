#!/usr/bin/env bash
# One prepared GPU run: check, benchmarks, training, inside 9.5 minutes (docs/GPU_RUN.md).
#   scripts/gpu_run.sh              # on the device machine; results in $OUT (else ./gpu-out)
#   scripts/gpu_run.sh --dry-run    # here: every section at tiny sizes on the CPU (a test runs it)
# Installs the wheels that scripts/gpu_prepare.sh put in gpu-carry/wheels (no index is reachable
# there) into $SITE and runs sprint_desktop/devtools/gpu_run.py from this tree.
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY="${CARRY:-gpu-carry}"
SITE="${SITE:-/tmp/sprint-site}"
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G "$CARRY/wheels/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$CARRY"/wheels/*.whl || { echo "error: could not install the wheels in $CARRY/wheels" >&2; exit 2; }
  export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
  SPRINT_WHEELS="$(cd "$CARRY/wheels" && ls ./*.whl | tr '\n' ' ')"
  export SPRINT_WHEELS
fi
exec "$PY" -m sprint_desktop.devtools.gpu_run run --carry "$CARRY" "$@"
