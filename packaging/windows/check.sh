#!/usr/bin/env bash
# Compile the Windows installer script here (Linux) against a stand-in bundle, to prove it compiles:
#
#   packaging/windows/check.sh [OUT_DIR]     # -> OUT_DIR/sprint-desktop-<version>-windows-x64-setup.exe
#
# The stand-in is a few dummy files laid out like PyInstaller's one-folder output
# (sprint-desktop.exe + _internal/); the real bundle is built on Windows (.github/workflows/windows.yml).
# Needs makensis (Debian: apt-get install nsis). Warnings are errors.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v makensis >/dev/null || { echo "check.sh: makensis not found; install it: apt-get install nsis" >&2; exit 3; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
out="$(mkdir -p "${1:-$work/out}" && cd "${1:-$work/out}" && pwd)"
dist="$work/dist/sprint-desktop"
mkdir -p "$dist/_internal/resources" "$dist/_internal/models/sprint-shapes"
printf 'MZ stand-in for the PyInstaller executable\n' > "$dist/sprint-desktop.exe"
printf 'stand-in\n' > "$dist/_internal/python311.dll"
cp resources/gpu-runtime.toml "$dist/_internal/resources/"
printf '{}\n' > "$dist/_internal/models/sprint-shapes/model_index.json"
version="$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
makensis -V2 -WX -DVERSION="$version" -DDIST_DIR="$dist" -DOUT_DIR="$out" packaging/windows/sprint-desktop.nsi
setup="$out/sprint-desktop-$version-windows-x64-setup.exe"
[ -s "$setup" ] || { echo "check.sh: makensis produced no $setup" >&2; exit 1; }
echo "compiled $setup ($(stat -c %s "$setup") bytes)"
