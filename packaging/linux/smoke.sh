#!/usr/bin/env bash
# Smoke test of the Linux package, as CI runs it:
#   1. clone this checkout's HEAD into build/smoke/src and build the package there (build.sh);
#   2. run the built executable's --self-test offscreen with no network (RUNS times, fresh user
#      folders each time) and check the screenshot and the generated images (non-blank, right size);
#   3. the reduced real SANA-Sprint architecture end to end with no PyTorch: a loopback hub serves a
#      checkpoint, the store's download code fetches it, the bundle's self-test binds its safetensors
#      to weight-free graphs made from another checkpoint and generates (issue #12);
#   4. measure the bundle, .deb and .tar.gz sizes and launch -> first image (median of RUNS);
#   5. with INSTALL=1 (root, or sudo): install the .deb, check the menu entry, icon and metadata, and run
#      the installed /usr/bin/sprint-desktop's self-test too.
# Results: build/smoke/results.txt.
#
#   packaging/linux/smoke.sh
#   MODEL=/tmp/sprint-standin RUNS=5 INSTALL=1 packaging/linux/smoke.sh
#   SRC=. packaging/linux/smoke.sh       # skip the clone and the build: test this checkout's dist/
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
OUT="$ROOT/build/smoke"
RUNS="${RUNS:-3}"
INSTALL="${INSTALL:-0}"
export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

die() { printf 'smoke.sh: FAIL: %s\n' "$*" >&2; exit 1; }
mkdir -p "$OUT"

if [ -z "${SRC:-}" ]; then
  SRC="$OUT/src"
  rm -rf "$SRC"
  git clone --quiet --no-hardlinks "$ROOT" "$SRC"
  if [ -n "${MODEL:-}" ]; then export MODEL; MODEL="$(cd "$MODEL" && pwd)"; fi  # else the clone's own
  start=$(date +%s)
  (cd "$SRC" && bash packaging/linux/build.sh)
  echo "build from a clean clone: $(( $(date +%s) - start )) s" > "$OUT/build-time.txt"
fi
SRC="$(cd "$SRC" && pwd)"
BUNDLE="$SRC/dist/sprint-desktop"
EXE="$BUNDLE/sprint-desktop"
PY="$SRC/build/venv/bin/python"   # Pillow for the checks (the bundle itself is not touched)
[ -x "$EXE" ] || die "no executable at $EXE"
find "$BUNDLE" -path '*/torch/*' -print -quit | grep -q . && die "PyTorch is inside the bundle"

# Offline for real when the kernel lets us make a network namespace (root in CI); else HF_HUB_OFFLINE.
NONET=()
if unshare --net true 2>/dev/null; then NONET=(unshare --net); fi

# One self-test run: fresh user folders; prints "<launch -> first image s> <total s>".
self_test() { # exe run_dir
  local exe="$1" dir="$2"
  rm -rf "$dir"; mkdir -p "$dir"
  local t0 t1
  t0=$(date +%s.%N)
  HOME="$dir/home" XDG_CONFIG_HOME="$dir/config" XDG_DATA_HOME="$dir/data" XDG_CACHE_HOME="$dir/cache" \
    "${NONET[@]}" "$exe" --self-test "$dir/screenshot.png" >"$dir/stdout.txt" 2>"$dir/stderr.txt" \
    || { cat "$dir/stdout.txt" "$dir/stderr.txt" >&2; die "self-test of $exe failed (exit $?)"; }
  t1=$(date +%s.%N)
  "$PY" - "$dir" "$t0" "$t1" "$BUNDLE/_internal/models/sprint-shapes/onnx/manifest.json" <<'PY'
import json, sys
from pathlib import Path
import numpy as np
from PIL import Image
from sprint_desktop.core.metadata import read_png_params

run, t0, t1, manifest = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
info = json.loads(manifest.read_text())["info"]
want = (info["default_width"], info["default_height"])
fail = []
shot = np.asarray(Image.open(run / "screenshot.png").convert("RGB"), np.float32)
if shot.shape[1] < 600 or shot.shape[0] < 400:
    fail.append(f"screenshot is {shot.shape[1]}x{shot.shape[0]}, want at least 600x400")
if shot.std() < 5 or len(np.unique(shot.reshape(-1, 3), axis=0)) < 50:
    fail.append("screenshot is blank")
kept = sorted((run / "data").rglob("*.png"))
if len(kept) not in (2, 3):  # the third: a prompt with an unknown word, for a model with a word list
    fail.append(f"{len(kept)} images in the gallery, want 2 (prompt and sketch) or 3 (and a prompt with an unknown word)")
for path in kept:
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("RGB"), np.float32)
        if im.size != want:
            fail.append(f"{path.name} is {im.size}, want {want}")
    if pixels.std() < 1:
        fail.append(f"{path.name} is blank")
    backend = read_png_params(path).get("backend")
    if backend != "onnx":
        fail.append(f"{path.name} was made by {backend}, want onnx (the bundle has no PyTorch)")
if fail:
    sys.exit("; ".join(fail))
first = min(p.stat().st_mtime for p in kept)
print(f"{first - t0:.2f} {t1 - t0:.2f}")
PY
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "self-test of $EXE, $RUNS runs${NONET:+ (in an empty network namespace)}" >&2
: > "$OUT/runs.txt"
for i in $(seq "$RUNS"); do
  self_test "$EXE" "$OUT/run-$i" | tee -a "$OUT/runs.txt"
done
cp "$OUT/run-1/screenshot.png" "$OUT/screenshot.png"

echo "reduced real architecture: loopback download -> bind -> generate in the bundle" >&2
RED="$OUT/reduced"
rm -rf "$RED"; mkdir -p "$RED"
(cd "$SRC" && "$PY" packaging/stage_graphs.py "$RED/graphs" --reduced "$RED/src/reduced-sprint" >/dev/null)
(cd "$SRC" && HF_HUB_OFFLINE=0 "$PY" - "$RED" > "$RED/folder.txt" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, ".")
from tests.store.fake_hub import FakeHub
from sprint_desktop.store.catalog import CatalogEntry
from sprint_desktop.store.download import download
red = Path(sys.argv[1])
entry = CatalogEntry(
    name="reduced-sprint", title="Reduced", kind="hub", resolution=16, download_gb=0.01, min_vram_gb=0,
    license="x", license_url="x", controlnet=True,
    components=("tokenizer", "text_encoder", "transformer", "vae", "scheduler", "controlnet"), repo_id="org/reduced",
)
with FakeHub("org/reduced", red / "src" / "reduced-sprint") as hub:
    print(download(entry, root=red / "store", endpoint=hub.url))
PY
)
run="$RED/run"; mkdir -p "$run"
HOME="$run/home" XDG_CONFIG_HOME="$run/config" XDG_DATA_HOME="$run/data" XDG_CACHE_HOME="$run/cache" \
  SPRINT_GRAPHS="$RED/graphs" "${NONET[@]}" "$EXE" --self-test "$run/screenshot.png" --model "$(cat "$RED/folder.txt")" \
  >"$run/stdout.txt" 2>"$run/stderr.txt" || { cat "$run/stdout.txt" "$run/stderr.txt" >&2; die "reduced-model self-test failed"; }
"$PY" - "$run" <<'PY' || die "reduced-model self-test: wrong output"
import sys
from pathlib import Path
from sprint_desktop.core.metadata import read_png_params
run = Path(sys.argv[1])
kept = sorted((run / "data").rglob("*.png"))
assert len(kept) in (2, 3), kept  # prompt, sketch (and a prompt with an unknown word)
assert all(read_png_params(p).get("backend") == "onnx" for p in kept)
bound = list((run / "cache").rglob("bound/*/manifest.json"))
assert len(bound) == 1, bound  # the downloaded weights were bound in the user cache
print(f"reduced model: bound in {bound[0].parent.name}, {len(kept)} images")
PY
echo "reduced real architecture: download -> bind -> generate passed (no PyTorch in the bundle)" | tee "$OUT/reduced.txt"

version="$("$PY" -c 'import tomllib; print(tomllib.load(open("'"$SRC"'/pyproject.toml", "rb"))["project"]["version"])')"
deb="$SRC/dist/sprint-desktop_${version}_amd64.deb"
tgz="$SRC/dist/sprint-desktop-${version}-linux-x86_64.tar.gz"
{
  echo "machine: $(nproc) CPU cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB, no GPU, no display"
  cat "$OUT/build-time.txt" 2>/dev/null || true
  cat "$OUT/reduced.txt" 2>/dev/null || true
  [ -d "$BUNDLE/_internal/graphs" ] && echo "graphs shipped: $(du -sb "$BUNDLE/_internal/graphs" | cut -f1) bytes ($(du -sh "$BUNDLE/_internal/graphs" | cut -f1))"
  echo "bundle folder: $(du -sb "$BUNDLE" | cut -f1) bytes ($(du -sh "$BUNDLE" | cut -f1))"
  [ -f "$deb" ] && echo ".deb: $(stat -c %s "$deb") bytes ($(du -h "$deb" | cut -f1))"
  [ -f "$tgz" ] && echo ".tar.gz: $(stat -c %s "$tgz") bytes ($(du -h "$tgz" | cut -f1))"
  echo "launch -> first image, s (median of $RUNS): $(cut -d' ' -f1 "$OUT/runs.txt" | median)  [runs: $(cut -d' ' -f1 "$OUT/runs.txt" | xargs)]"
  echo "whole self-test, s (median of $RUNS): $(cut -d' ' -f2 "$OUT/runs.txt" | median)"
} | tee "$OUT/results.txt"

if [ "$INSTALL" = 1 ]; then
  SUDO=(); [ "$(id -u)" = 0 ] || SUDO=(sudo)
  [ -f "$deb" ] || die "no .deb at $deb"
  # apt-get resolves the Depends from the distribution's archive (dpkg -i alone leaves them to you).
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
  for f in /usr/bin/sprint-desktop /opt/sprint-desktop/sprint-desktop \
           /usr/share/applications/sprint-desktop.desktop \
           /usr/share/icons/hicolor/256x256/apps/sprint-desktop.png \
           /usr/share/icons/hicolor/scalable/apps/sprint-desktop.svg \
           /usr/share/metainfo/io.github.sprintdesktop.SprintDesktop.metainfo.xml; do
    [ -e "$f" ] || die "the .deb did not install $f"
  done
  if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate /usr/share/applications/sprint-desktop.desktop || die "invalid menu entry"
  fi
  self_test /usr/bin/sprint-desktop "$OUT/installed" > "$OUT/installed.txt"
  echo "installed .deb: menu entry, icons, metadata present; /usr/bin/sprint-desktop self-test passed" \
    | tee -a "$OUT/results.txt"
fi
echo "smoke test passed" >&2
