#!/usr/bin/env bash
# Build the Linux package of Sprint Desktop from a clean clone, in one command:
#
#   packaging/linux/build.sh                 # -> dist/sprint-desktop/ (PyInstaller one-folder bundle),
#                                            #    dist/sprint-desktop_<version>_amd64.deb,
#                                            #    dist/sprint-desktop-<version>-linux-x86_64.tar.gz
#
# Environment:
#   MODEL=/path        the model to embed (default models/sprint-shapes); it ships in the bundle as
#                      models/sprint-shapes with an ONNX export made here (the bundle has no PyTorch)
#   PYTHON=python3.11  the interpreter for the build environment (3.11+, built with --enable-shared)
#   TORCH_SPEC=...     the PyTorch used for the export only (default torch==2.13.0)
#   SKIP_PACKAGES=1    stop after dist/sprint-desktop/ (no .deb / .tar.gz)
#   GRAPH_ARCHS="..."  the architectures whose weight-free ONNX graphs ship in the bundle (default: the
#                      catalog's real models, "sana-sprint-0.6b sana-sprint-1.6b"; "" ships none). A
#                      downloaded model is bound to them on first use, with no PyTorch (issue #12).
#
# It installs what it needs itself: Debian packages (binutils, dpkg-dev tools) when run as root,
# and a build environment in build/venv from PyPI. Outputs go to build/ and dist/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"

MODEL="${MODEL:-models/sprint-shapes}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
PYINSTALLER_SPEC="${PYINSTALLER_SPEC:-pyinstaller==6.*}"
VENV="$ROOT/build/venv"
STAGE="$ROOT/build/stage"
NICE=(nice -n "${NICE_LEVEL:-19}")

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

# 1. Inputs -----------------------------------------------------------------------------------------
[ -f "$MODEL/model_index.json" ] || die "no model at '$MODEL' (no model_index.json there).
  The embedded model lands in models/sprint-shapes once it is trained (docs/TRAINING.md);
  until then point MODEL at a SANA-Sprint folder in diffusers layout, e.g. a stand-in made by
  the project's tiny builder (scripts/dev.sh setup makes .venv):
    .venv/bin/python packaging/standin_model.py /tmp/sprint-standin && MODEL=/tmp/sprint-standin $0"
MODEL="$(cd "$MODEL" && pwd)"

# 2. System tools (Debian) --------------------------------------------------------------------------
need=()
command -v objdump >/dev/null || need+=(binutils)   # PyInstaller reads ELF dependencies with it
command -v dpkg-deb >/dev/null || need+=(dpkg)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing tools; install them first: apt-get install ${need[*]}"
  say "installing Debian packages: ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

# 3. Build environment: the app's runtime + PyTorch/diffusers for the export + PyInstaller ------------
stamp="$VENV/.build-installed"
want="$(sha256sum pyproject.toml packaging/linux/build.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "build environment in build/venv (first run: a few minutes)"
  "$PYTHON" -c 'import sys, sysconfig
assert sys.version_info >= (3, 11), "Python 3.11+ needed"
assert sysconfig.get_config_var("Py_ENABLE_SHARED"), "PyInstaller needs a Python built with --enable-shared"' \
    || die "$PYTHON cannot build the bundle (see above); set PYTHON="
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
  "${NICE[@]}" "${pip[@]}" "$TORCH_SPEC"
  "${NICE[@]}" "${pip[@]}" -e ".[onnx]" "$PYINSTALLER_SPEC"
  echo "$want" > "$stamp"
fi
PY="$VENV/bin/python"
VERSION="$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"

# 4. The embedded model, with its ONNX export inside (made here, with PyTorch) ------------------------
say "staging $MODEL as build/stage/models/sprint-shapes with its ONNX export"
rm -rf "$STAGE"
HF_HUB_OFFLINE=1 "${NICE[@]}" "$PY" packaging/stage_model.py "$MODEL" "$STAGE/models/sprint-shapes"

# 4b. Weight-free graph sets of the catalog's real models (made here, with PyTorch) -------------------
GRAPH_ARCHS="${GRAPH_ARCHS-sana-sprint-0.6b sana-sprint-1.6b}"
mkdir -p "$STAGE/graphs"
if [ -n "$GRAPH_ARCHS" ]; then
  say "weight-free ONNX graphs of: $GRAPH_ARCHS (fp16 and fp32)"
  arch_args=(); for a in $GRAPH_ARCHS; do arch_args+=(--arch "$a"); done
  HF_HUB_OFFLINE=1 "${NICE[@]}" "$PY" packaging/stage_graphs.py "$STAGE/graphs" "${arch_args[@]}"
fi

# 5. The frozen app: PyInstaller one-folder bundle, no PyTorch inside ---------------------------------
say "PyInstaller -> dist/sprint-desktop/"
rm -rf dist/sprint-desktop
SPRINT_STAGED_GRAPHS="$STAGE/graphs" SPRINT_STAGED_MODELS="$STAGE/models" "${NICE[@]}" "$PY" -m PyInstaller packaging/sprint-desktop.spec \
  --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller
[ -x dist/sprint-desktop/sprint-desktop ] || die "PyInstaller did not produce dist/sprint-desktop/sprint-desktop"
if find dist/sprint-desktop -path '*/torch/*' -print -quit | grep -q .; then
  die "PyTorch ended up in the bundle; check the spec's excludes"
fi
# No training or developer tools either: list the modules frozen into the executable's archive.
"$PY" -m PyInstaller.utils.cliutils.archive_viewer --list --recursive dist/sprint-desktop/sprint-desktop \
  > build/bundle-modules.txt || die "cannot list the bundle's modules (pyi-archive_viewer)"
grep -q 'sprint_desktop\.ui\.main_window' build/bundle-modules.txt || die "the module list looks wrong: no sprint_desktop.ui"
if grep -E 'sprint_desktop\.(devtools|distill)' build/bundle-modules.txt; then
  die "training or developer tools ended up in the bundle; check the spec's LEFT_OUT"
fi
[ "${SKIP_PACKAGES:-0}" = 1 ] && { say "done (bundle only): dist/sprint-desktop/"; exit 0; }

# 6. Packages: .deb and .tar.gz -----------------------------------------------------------------------
say "packages"
VERSION="$VERSION" "${NICE[@]}" bash packaging/linux/make_deb.sh
tarball="dist/sprint-desktop-$VERSION-linux-x86_64.tar.gz"
"${NICE[@]}" tar -C dist --owner=0 --group=0 -czf "$tarball" sprint-desktop   # keeps mtimes (the model's matter)
du -sh dist/sprint-desktop "dist/sprint-desktop_${VERSION}_amd64.deb" "$tarball" >&2
say "done"
