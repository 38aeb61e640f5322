"""The bad-input corpus, part 1: PNGs (for `sprint info`, the drop handler and as sketches),
settings files and gallery indexes. Each case: a clear one-line message, the exit code where a
command runs, and the user's file left as it was."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3

import numpy as np
import pytest

from sprint_desktop.cli import main
from sprint_desktop.core.errors import InvalidRequestError, SprintError
from sprint_desktop.core.gallery import Gallery
from sprint_desktop.core.metadata import read_png_params, save_png
from sprint_desktop.core.settings import Settings, load_settings
from sprint_desktop.core.sketch import load_control_image

from .bad_inputs import BAD_PNGS, one_line

READABLE_ANYWAY: set[str] = set()  # every case is refused


def _digest(path):
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    except OSError:
        return None


@pytest.mark.parametrize("case", sorted(BAD_PNGS))
def test_png_metadata_reader(case, tmp_path):
    path = BAD_PNGS[case](tmp_path)
    before = _digest(path)
    if case in READABLE_ANYWAY:
        assert isinstance(read_png_params(path), dict)
    else:
        with pytest.raises(SprintError) as info:
            read_png_params(path)
        one_line(str(info.value))
    assert _digest(path) == before


@pytest.mark.parametrize("case", sorted(BAD_PNGS))
def test_sprint_info(case, tmp_path, capsys):
    path = BAD_PNGS[case](tmp_path)
    code = main(["info", str(path)])
    out = capsys.readouterr()
    if case in READABLE_ANYWAY:
        assert code == 0
    else:
        assert code == 1
        one_line(out.err)
        assert out.err.startswith("sprint: error: ")


@pytest.mark.parametrize("case", sorted(BAD_PNGS))
def test_png_as_a_sketch(case, tmp_path):
    path = BAD_PNGS[case](tmp_path)
    before = _digest(path)
    try:
        sketch = load_control_image(str(path))
    except InvalidRequestError as exc:
        one_line(str(exc))
    else:  # a readable picture: it is a sketch now
        assert sketch.dtype == np.uint8 and sketch.ndim == 3 and sketch.shape[2] == 3
    assert _digest(path) == before


# ---- settings files ------------------------------------------------------------------------------
BAD_SETTINGS: dict[str, bytes | None] = {
    "not json": b"{broken",
    "a list": b"[1, 2, 3]",
    "a string": b'"settings"',
    "null": b"null",
    "version a string": b'{"version": "x", "settings": {}}',
    "settings a list": b'{"version": 1, "settings": []}',
    "utf-16": json.dumps({"version": 1, "settings": {}}).encode("utf-16"),
    "latin-1 bytes": b'{"version": 1, "settings": {"last_prompt": "caf\xe9"}}',
    "nul bytes": b"\0" * 100,
    "nested 100k": b'{"version": 1, "settings": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "huge number": b'{"version": 1, "settings": {"seed": ' + b"9" * 5000 + b"}}",
    "NaN guidance": b'{"version": 1, "settings": {"guidance": NaN, "strength": Infinity}}',
    "wrong types": b'{"version": 1, "settings": {"steps": "2", "live": "yes", "recent_prompts": "abc"}}',
    "bools for ints": b'{"version": 1, "settings": {"steps": true, "seed": false}}',
    "huge seed": b'{"version": 1, "settings": {"seed": -1180591620717411303424}}',
    "future version": b'{"version": 99, "settings": {"theme": "dark", "new_thing": [1]}}',
    "with BOM": b'\xef\xbb\xbf{"version": 1, "settings": {"theme": "dark"}}',
    "folder": None,
    "fifo": None,
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_settings_file(case, tmp_path):
    path = tmp_path / "settings.json"
    data = BAD_SETTINGS[case]
    if case == "folder":
        path.mkdir()
    elif case == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(data)
    settings, notice = load_settings(path)
    assert isinstance(settings, Settings)
    assert settings == settings.validated()  # every value in range
    if notice is not None:
        one_line(notice)
    if data is not None and notice is not None and "kept as" in notice:  # set aside, byte for byte
        (backup,) = tmp_path.glob("settings.json.corrupt-*")
        assert backup.read_bytes() == data
    if case == "folder":
        assert path.is_dir()  # not moved: it is not a file we wrote


# ---- gallery indexes -----------------------------------------------------------------------------
def _db_with(sql):
    def make(folder):
        db = sqlite3.connect(folder / "gallery.sqlite3")
        db.executescript(sql)
        db.commit()
        db.close()

    return make


BAD_INDEXES = {
    "garbage bytes": lambda f: (f / "gallery.sqlite3").write_bytes(b"not a database" * 300),
    "zero bytes": lambda f: (f / "gallery.sqlite3").write_bytes(b""),
    "truncated header": lambda f: (f / "gallery.sqlite3").write_bytes(b"SQLite format 3\0" + b"\0" * 10),
    "other schema": _db_with("CREATE TABLE images (x TEXT);"),
    "a view named images": _db_with("CREATE TABLE t (a); CREATE VIEW images AS SELECT a FROM t;"),
    "rows of every type": _db_with(
        "CREATE TABLE images (id INTEGER PRIMARY KEY AUTOINCREMENT, file TEXT NOT NULL UNIQUE, created REAL NOT NULL,"
        " prompt TEXT NOT NULL, params TEXT NOT NULL);"
        "INSERT INTO images(file, created, prompt, params) VALUES (x'00ff', 'yesterday', 3, x'ffff');"
        "INSERT INTO images(file, created, prompt, params) VALUES ('../../etc/passwd', 1, 'p', '{}');"
        "INSERT INTO images(file, created, prompt, params) VALUES ('a.png', 1, 'p', '[[[[[[');"
        "INSERT INTO images(file, created, prompt, params) VALUES ('/abs.png', 1, 'p', '{}');"
    ),
    "index is a folder": lambda f: (f / "gallery.sqlite3").mkdir(),
}


@pytest.mark.parametrize("case", sorted(BAD_INDEXES))
def test_gallery_index(case, tmp_path):
    folder = tmp_path / "g"
    folder.mkdir()
    kept = save_png(
        np.zeros((8, 8, 3), np.uint8), folder / "20260101-000000-1.png", {"prompt": "kept", "seed": 1}
    )
    outside = save_png(np.zeros((4, 4, 3), np.uint8), tmp_path / "passwd.png", {"prompt": "outside"})
    before = _digest(kept), _digest(outside)
    BAD_INDEXES[case](folder)
    try:
        g = Gallery(folder)
    except SprintError as exc:  # an index we may not replace: said, nothing touched
        one_line(str(exc))
    else:
        items = g.items()
        for item in items:
            assert item.path.resolve().parent == folder.resolve()
            g.delete(item.id) if item.prompt != "kept" else None
        if g.notice:
            one_line(g.notice)
        g.close()
    assert (_digest(kept), _digest(outside)) == before  # the user's images are untouched


def test_a_locked_gallery_index_is_reported_not_replaced(tmp_path):
    folder = tmp_path / "g"
    Gallery(folder).close()
    holder = sqlite3.connect(folder / "gallery.sqlite3", timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        g = Gallery(folder)
    except SprintError as exc:
        one_line(str(exc))
        assert "locked" in str(exc)
    else:
        g.close()
    finally:
        holder.rollback()
        holder.close()
    assert not list(folder.glob("*.corrupt-*"))  # a busy index is not "damaged"
