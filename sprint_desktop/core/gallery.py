"""The gallery: kept images as PNGs with their parameters, indexed in SQLite.

The PNG (with its metadata) is the source of truth; the database is an index that can be rebuilt
from the folder, so a corrupt database is moved aside and rebuilt without losing an image.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SprintError
from .metadata import read_png_params, save_png

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    prompt TEXT NOT NULL,
    params TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS images_created ON images(created);
"""


@dataclass(frozen=True)
class GalleryItem:
    id: int
    path: Path
    created: float
    prompt: str
    params: dict[str, Any]


class Gallery:
    """Images in ``folder`` indexed by ``folder/gallery.sqlite3``. Use from one thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db_path = self.folder / "gallery.sqlite3"
        self.notice: str | None = None
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            # Only a damaged file is set aside; a locked or unreadable one is reported as it is.
            text = str(exc).lower()
            if "not a database" not in text and "malformed" not in text:
                raise SprintError(f"cannot open the gallery index {self.db_path}: {exc}") from None
            backup = self.db_path.with_name(f"gallery.sqlite3.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(self.db_path, backup)
            self._db = self._open()
            found = self.rebuild()
            self.notice = f"The gallery index was damaged ({exc}); it was rebuilt from {found} image file(s)."

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path)
        try:
            db.executescript(SCHEMA)
            db.execute("SELECT count(*) FROM images").fetchone()
        except sqlite3.DatabaseError:
            db.close()  # release the file before it is moved aside (Windows)
            raise
        return db

    def close(self) -> None:
        self._db.close()

    def add(self, image: np.ndarray, params: dict[str, Any]) -> GalleryItem:
        created = time.time()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(created))
        n = 0
        while True:
            path = self.folder / f"{stamp}-{params.get('seed', 0)}{f'-{n}' if n else ''}.png"
            if not path.exists():
                break
            n += 1
        try:
            save_png(image, path, params)
        except OSError as exc:
            raise SprintError(f"cannot save to the gallery folder {self.folder}: {exc}") from None
        return self._index(path, created, params)

    def _index(self, path: Path, created: float, params: dict[str, Any]) -> GalleryItem:
        try:
            cur = self._db.execute(
                "INSERT OR REPLACE INTO images(file, created, prompt, params) VALUES (?, ?, ?, ?)",
                (path.name, created, str(params.get("prompt", "")), json.dumps(params)),
            )
            self._db.commit()
        except sqlite3.Error as exc:
            raise SprintError(
                f"{path.name} was saved but could not be added to the gallery index: {exc}"
            ) from None
        return GalleryItem(int(cur.lastrowid or 0), path, created, str(params.get("prompt", "")), params)

    def items(self, limit: int = 500) -> list[GalleryItem]:
        """Newest first; rows whose file has gone are dropped from the index."""
        rows = self._db.execute(
            "SELECT id, file, created, prompt, params FROM images ORDER BY created DESC, id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        out, gone = [], []
        for row_id, file, created, prompt, params in rows:
            path = self.folder / file
            if not path.exists():
                gone.append(row_id)
                continue
            out.append(GalleryItem(row_id, path, created, prompt, json.loads(params)))
        if gone:
            self._db.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in gone])
            self._db.commit()
        return out

    def delete(self, item_id: int) -> None:
        row = self._db.execute("SELECT file FROM images WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            return
        try:
            (self.folder / row[0]).unlink(missing_ok=True)
        except OSError as exc:
            raise SprintError(f"cannot delete {row[0]}: {exc}") from None
        self._db.execute("DELETE FROM images WHERE id = ?", (item_id,))
        self._db.commit()

    def rebuild(self) -> int:
        """Index every PNG made by the app in the folder; return how many were found."""
        found = 0
        for path in sorted(self.folder.glob("*.png")):
            try:
                params = read_png_params(path)
            except SprintError:
                continue
            self._index(path, path.stat().st_mtime, params)
            found += 1
        return found
