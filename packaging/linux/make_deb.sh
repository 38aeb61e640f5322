#!/usr/bin/env bash
# Package dist/sprint-desktop/ (PyInstaller bundle) as dist/sprint-desktop_<version>_amd64.deb:
#   /opt/sprint-desktop/            the bundle
#   /usr/bin/sprint-desktop         launcher
#   /usr/share/applications/        sprint-desktop.desktop (menu entry)
#   /usr/share/icons/hicolor/       PNG sizes + scalable SVG
#   /usr/share/metainfo/            AppStream metadata
# Called by build.sh (VERSION set); needs dpkg-deb only, not root.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION="${VERSION:?VERSION not set}"
PKG=build/deb/sprint-desktop
rm -rf "$PKG"
mkdir -p "$PKG/DEBIAN" "$PKG/opt" "$PKG/usr/bin" "$PKG/usr/share/applications" "$PKG/usr/share/metainfo"
cp -a dist/sprint-desktop "$PKG/opt/sprint-desktop"   # -a keeps the model's mtimes (see stage_model.py)
cat > "$PKG/usr/bin/sprint-desktop" <<'SH'
#!/bin/sh
exec /opt/sprint-desktop/sprint-desktop "$@"
SH
chmod 755 "$PKG/usr/bin/sprint-desktop"
install -m 644 resources/sprint-desktop.desktop "$PKG/usr/share/applications/sprint-desktop.desktop"
install -m 644 resources/io.github.sprintdesktop.SprintDesktop.metainfo.xml "$PKG/usr/share/metainfo/"
for png in resources/icons/sprint-desktop-*.png; do
  size="${png##*-}"; size="${size%.png}"
  install -D -m 644 "$png" "$PKG/usr/share/icons/hicolor/${size}x${size}/apps/sprint-desktop.png"
done
install -D -m 644 resources/icons/sprint-desktop.svg "$PKG/usr/share/icons/hicolor/scalable/apps/sprint-desktop.svg"
installed_kb="$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)"
# Depends: what the bundle loads from the system rather than carrying (objdump -p over every .so in
# it): glibc (>= the build machine's 2.36), OpenGL/EGL, libdrm and libxcb; Wayland's client libraries
# only for the native Wayland plugin (XWayland works without). The menu and icon caches are
# refreshed by dpkg triggers of desktop-file-utils and hicolor-icon-theme: no maintainer scripts.
# Qt's xcb plugin also loads the xcb helper libraries in xcb-libraries.txt (it aborts without them).
xcb_depends="$(grep -v '^#' packaging/linux/xcb-libraries.txt | cut -d' ' -f1 | paste -sd, - | sed 's/,/, /g')"
cat > "$PKG/DEBIAN/control" <<CONTROL
Package: sprint-desktop
Version: $VERSION
Section: graphics
Priority: optional
Architecture: amd64
Maintainer: Sprint Desktop developers <maintainers@sprint-desktop.invalid>
Installed-Size: $installed_kb
Depends: libc6 (>= 2.36), libgl1, libegl1, libdrm2, libxcb1, $xcb_depends
Recommends: hicolor-icon-theme, desktop-file-utils, fonts-dejavu-core | fonts-font, libwayland-client0, libwayland-cursor0, libwayland-egl1
Description: one-step text-to-image and sketch-to-image on your own PC
 Sprint Desktop runs SANA-Sprint, a one-step diffusion model: type a prompt and see an image at
 once, or draw on the live canvas and watch the image follow your strokes. It ships a small
 embedded model and runs it on the CPU with ONNX Runtime, offline.
CONTROL
deb="dist/sprint-desktop_${VERSION}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$deb" >/dev/null
echo "$deb"
