#!/usr/bin/env bash
# Sprint Desktop developer entry point.
#   scripts/dev.sh setup                      create .venv and install the project (idempotent)
#   scripts/dev.sh run ["PROMPT"] [ARGS...]   setup, then generate PROMPT with the default model -> out.png
#   scripts/dev.sh test [PYTEST ARGS...]      setup, then lint, type-check and run the test suite
#   scripts/dev.sh check-display              say which system libraries the app's window still needs
# Environment: PYTHON (default python3), TORCH_SPEC (default torch==2.13.0: the CPU wheel on our
# machines; on a PC with an NVIDIA card set e.g. TORCH_SPEC="torch==2.13.0" with PyTorch's CUDA index).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
VENV=.venv
PY="$VENV/bin/python"

setup() {
  if [ ! -x "$PY" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  # Re-install only when the dependency list changed (a stamp holds pyproject.toml's hash).
  local stamp="$VENV/.sprint-installed" want
  want="$(sha256sum pyproject.toml scripts/dev.sh | sha256sum | cut -c1-16)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  echo "setup: installing into $VENV (first run takes a few minutes)" >&2
  # torch first, pinned, so the project's torch range is satisfied without pulling another build.
  "$PY" -m pip install --quiet --disable-pip-version-check "$TORCH_SPEC" 2> >(grep -v "is ignored: it is neither" >&2)
  "$PY" -m pip install --quiet --disable-pip-version-check -e ".[dev,onnx]" 2> >(grep -v "is ignored: it is neither" >&2)
  echo "$want" > "$stamp"
}

# The window needs Qt's xcb libraries from the system (packaging/linux/xcb-libraries.txt); Qt aborts
# naming only the first one missing. Say the whole apt-get line instead. LDCONFIG: for the tests.
check_display() {
  local missing=() package soname
  local libs
  libs="$(${LDCONFIG:-/sbin/ldconfig} -p 2>/dev/null || true)"
  while read -r package soname; do
    case "$package" in ''|'#'*) continue ;; esac
    grep -q "$soname" <<<"$libs" || missing+=("$package")
  done < packaging/linux/xcb-libraries.txt
  if [ ${#missing[@]} -gt 0 ]; then
    echo "note: the app's window needs system libraries that are missing; install them with:" >&2
    echo "  sudo apt-get install ${missing[*]}" >&2
    return 1
  fi
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  setup)
    setup
    ;;
  run)
    setup
    check_display || true
    prompt="${1:-a red circle left of a blue square}"
    [ $# -gt 0 ] && shift
    exec "$VENV/bin/sprint" generate "$prompt" -o out.png "$@"
    ;;
  test)
    setup
    export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1
    "$VENV/bin/ruff" check sprint_desktop tests
    "$VENV/bin/ruff" format --check sprint_desktop tests
    "$VENV/bin/mypy"
    # pytest exits 5 when it collected no test: that is a failure here too (set -e).
    if [ $# -eq 0 ]; then
      # The GPU dialog's tests segfaulted in Qt's event processing, in a whole-suite process and
      # in this one: the install thread destroyed the dialog it held the last reference to (fixed:
      # ui/thread_job.py). They stay in a process of their own until whole-suite runs confirm it.
      "$PY" -m pytest --ignore=tests/ui/test_gpu_dialog.py
      exec "$PY" -m pytest tests/ui/test_gpu_dialog.py
    fi
    exec "$PY" -m pytest "$@"
    ;;
  check-display)
    check_display && echo "the window's system libraries are all there"
    ;;
  *)
    sed -n '2,8p' "$0" >&2
    exit 2
    ;;
esac
