"""Issue #13 items 1, 2, 4, 5 and 9 (zero-byte index): state the app saved or indexed itself, or
that came with a copied folder, never stops it, never reaches outside its folder, never loses an
image."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from sprint_desktop.core.errors import SprintError
from sprint_desktop.core.gallery import Gallery
from sprint_desktop.core.metadata import METADATA_KEY, read_png_params, save_png
from sprint_desktop.core.settings import Settings, load_settings

IMG = np.zeros((8, 8, 3), np.uint8)


def write_settings(path, values):
    path.write_text(json.dumps({"version": 1, "settings": values}))


# ---- item 1: settings values are validated on load ------------------------------------------------
@pytest.mark.parametrize(
    "values",
    [
        {"seed": -(2**70)},
        {"seed": 2**70},
        {"width": -64, "height": 10**9},
        {"guidance": float("nan")},
        {"window_geometry": "zz-not-hex", "window_state": "0" * 5000},
        {"output_dir": "/tmp/a\x00b", "model": "m\x00"},
        {"last_prompt": "x" * 20_000, "recent_prompts": ["ok", 3, "y" * 20_000, "a\x00"]},
    ],
)
def test_out_of_range_settings_fall_back_to_defaults(tmp_path, values):
    path = tmp_path / "settings.json"
    write_settings(path, values)
    loaded, notice = load_settings(path)
    d = Settings()
    assert notice is None
    assert 0 <= loaded.seed <= 2**63 - 1
    assert 0 <= loaded.width <= 4096 and 0 <= loaded.height <= 4096
    assert loaded.guidance == loaded.guidance  # not NaN
    assert "\x00" not in loaded.output_dir + loaded.model
    assert len(loaded.window_state) <= 4096 and loaded.window_geometry in ("", d.window_geometry)
    assert len(loaded.last_prompt) <= 10_000
    assert all(isinstance(p, str) and len(p) <= 10_000 and "\x00" not in p for p in loaded.recent_prompts)


def test_deeply_nested_settings_are_set_aside_not_a_recursion_error(tmp_path):
    path = tmp_path / "settings.json"
    text = '{"version": 1, "settings": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path.write_text(text)
    loaded, notice = load_settings(path)
    assert loaded == Settings()
    assert "nested too deeply" in notice
    (backup,) = tmp_path.glob("settings.json.corrupt-*")
    assert backup.read_text() == text  # the user's file is kept, byte for byte


def test_a_huge_settings_file_is_not_read_into_memory(tmp_path):
    path = tmp_path / "settings.json"
    with path.open("wb") as fh:
        fh.truncate(64 * 2**20)  # sparse: 64 MB of zeros
    loaded, notice = load_settings(path)
    assert loaded == Settings() and "too large" in notice


def test_a_settings_path_that_is_a_fifo_does_not_hang(tmp_path):
    import os

    path = tmp_path / "settings.json"
    os.mkfifo(path)
    loaded, notice = load_settings(path)
    assert loaded == Settings() and "not a regular file" in notice


# ---- item 1: a damaged gallery row is skipped with a notice ---------------------------------------
def test_a_gallery_row_with_invalid_params_is_skipped_with_a_notice(tmp_path):
    g = Gallery(tmp_path / "g")
    good = g.add(IMG, {"prompt": "kept", "seed": 1})
    bad = g.add(IMG, {"prompt": "damaged", "seed": 2})
    g._db.execute("UPDATE images SET params = ? WHERE id = ?", ("{not json", bad.id))
    g._db.execute(
        "INSERT INTO images(file, created, prompt, params) VALUES (?, ?, ?, ?)",
        ("nested.png", 1.0, "p", "[" * 100_000),
    )
    (tmp_path / "g" / "nested.png").write_bytes(good.path.read_bytes())
    g._db.commit()
    assert [i.prompt for i in g.items()] == ["kept"]
    assert "2 gallery entries" in g.notice and "not touched" in g.notice
    assert bad.path.exists()  # the image file itself is not deleted


def test_gallery_params_out_of_range_are_not_handed_to_the_controls(tmp_path):
    g = Gallery(tmp_path / "g")
    item = g.add(IMG, {"prompt": "p", "seed": -(2**70), "steps": 99, "guidance": 3.0})
    (listed,) = g.items()
    assert listed.id == item.id
    assert "seed" not in listed.params and "steps" not in listed.params and listed.params["guidance"] == 3.0


def test_restorable_params_keeps_only_values_a_control_takes():
    from sprint_desktop.core.metadata import restorable_params

    params = {
        "prompt": "a",
        "seed": 2**64,
        "steps": True,
        "width": 32,
        "height": -1,
        "guidance": float("inf"),
        "model": "m",
    }
    assert restorable_params(params) == {"prompt": "a", "width": 32, "model": "m"}


# ---- item 2: the index cannot reach outside the gallery folder ------------------------------------
@pytest.mark.parametrize("name", ["../victim.png", "/tmp/../{victim}", "sub/../../victim.png", "link.png"])
def test_gallery_never_lists_or_deletes_outside_its_folder(tmp_path, name):
    victim = tmp_path / "victim.png"
    save_png(IMG, victim, {"prompt": "not the gallery's"})
    folder = tmp_path / "g"
    g = Gallery(folder)
    if name == "link.png":
        (folder / "link.png").symlink_to(victim)
    name = name.format(victim=victim)
    cur = g._db.execute(
        "INSERT INTO images(file, created, prompt, params) VALUES (?, ?, ?, ?)", (name, 1.0, "evil", "{}")
    )
    g._db.commit()
    assert g.items() == []
    with pytest.raises(SprintError, match="outside"):
        g.delete(int(cur.lastrowid))
    assert victim.exists() and read_png_params(victim)["prompt"] == "not the gallery's"


# ---- item 4: concurrent writers keep every image --------------------------------------------------
WRITER = """
import sys, numpy as np
from sprint_desktop.core.gallery import Gallery
g = Gallery(sys.argv[1])
for i in range(int(sys.argv[2])):
    g.add(np.full((8, 8, 3), i % 256, np.uint8), {"prompt": sys.argv[3], "seed": 7})
"""


def test_two_processes_adding_at_once_keep_every_image(tmp_path):
    folder = tmp_path / "g"
    Gallery(folder).close()
    n = 150
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(n), who], stderr=subprocess.PIPE)
        for who in ("a", "b")
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()
    assert len(list(folder.glob("*.png"))) == 2 * n
    items = Gallery(folder).items(limit=1000)
    assert len(items) == 2 * n
    assert sorted(i.prompt for i in items) == ["a"] * n + ["b"] * n


def test_an_exclusive_save_never_replaces_an_existing_file(tmp_path):
    path = tmp_path / "x.png"
    save_png(IMG, path, {"prompt": "first"})
    with pytest.raises(FileExistsError):
        save_png(IMG, path, {"prompt": "second"}, exclusive=True)
    assert read_png_params(path)["prompt"] == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temp file left


# ---- item 9: a zero-byte index does not hide the images -------------------------------------------
def test_a_zero_byte_gallery_index_is_rebuilt_with_a_notice(tmp_path):
    g = Gallery(tmp_path / "g")
    g.add(IMG, {"prompt": "one", "seed": 1})
    g.add(IMG, {"prompt": "two", "seed": 2})
    g.close()
    (tmp_path / "g" / "gallery.sqlite3").write_bytes(b"")
    g2 = Gallery(tmp_path / "g")
    assert sorted(i.prompt for i in g2.items()) == ["one", "two"]
    assert "rebuilt from 2 image" in g2.notice


def test_a_new_gallery_has_no_notice(tmp_path):
    g = Gallery(tmp_path / "g")
    assert g.notice is None and g.items() == []
    db = sqlite3.connect(g.db_path)
    assert db.execute("SELECT count(*) FROM images").fetchone() == (0,)


# ---- item 5: any unreadable metadata is one clear SprintError ------------------------------------
def _png_with_chunk(path, key, text, compressed=False):
    info = PngImagePlugin.PngInfo()
    info.add_itxt(key, text, zip=compressed)
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)


def test_a_decompression_bomb_text_chunk_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    # A zTXt chunk that inflates to 100 MB from about 100 KB.
    data = b"sprint-desktop\0\0" + zlib.compress(b"a" * 100_000_000, 9)
    Image.new("RGB", (4, 4)).save(tmp_path / "base.png")
    png = bytearray((tmp_path / "base.png").read_bytes())
    chunk = b"zTXt" + data
    import struct

    blob = struct.pack(">I", len(data)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    path.write_bytes(bytes(png[:33]) + blob + bytes(png[33:]))
    with pytest.raises(SprintError, match="not a readable image|damaged"):
        read_png_params(path)


def test_megabytes_of_metadata_text_are_refused(tmp_path):
    path = tmp_path / "big.png"
    _png_with_chunk(path, METADATA_KEY, '{"prompt": "' + "x" * 3_000_000 + '"}')
    with pytest.raises(SprintError, match="too large"):
        read_png_params(path)


def test_deeply_nested_metadata_json_is_refused(tmp_path):
    path = tmp_path / "deep.png"
    _png_with_chunk(path, METADATA_KEY, "[" * 200_000 + "]" * 200_000)
    with pytest.raises(SprintError, match="damaged"):
        read_png_params(path)


def test_metadata_of_a_folder_or_fifo_is_one_line(tmp_path):
    import os

    with pytest.raises(SprintError, match="not a file"):
        read_png_params(tmp_path)
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(SprintError, match="not a file"):
        read_png_params(tmp_path / "pipe.png")
