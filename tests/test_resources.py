"""The desktop integration files: a valid .desktop entry, AppStream metadata and the icon set."""

from __future__ import annotations

import configparser
import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_desktop_entry():
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(ROOT / "resources" / "sprint-desktop.desktop", encoding="utf-8")
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Exec"].split()[0] == "sprint-desktop"
    assert entry["Icon"] == "sprint-desktop" and entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";") and "Graphics" in entry["Categories"]


def test_appstream_metadata():
    root = ET.parse(ROOT / "resources" / "io.github.sprintdesktop.SprintDesktop.metainfo.xml").getroot()
    assert root.get("type") == "desktop-application"
    assert root.findtext("launchable") == "sprint-desktop.desktop"
    assert root.findtext("id") == "io.github.sprintdesktop.SprintDesktop"


def test_icon_set():
    icons = ROOT / "resources" / "icons"
    for size in (16, 32, 48, 128, 256, 512):
        with Image.open(icons / f"sprint-desktop-{size}.png") as im:
            assert im.size == (size, size) and im.mode == "RGBA"
    with Image.open(icons / "sprint-desktop.ico") as ico:
        assert (256, 256) in ico.info.get("sizes", {ico.size})
