"""The gallery: kept images as PNGs with their parameters, indexed in SQLite.

The PNG (with its metadata) is the source of truth; the database is an index that can be rebuilt
from the folder, so a corrupt database is moved aside and rebuilt without losing an image.

The folder is the user's choice and its index may come from anywhere (a copied folder, a synced
drive), so nothing read from the index is trusted: a row names a file directly inside the folder
or it is skipped (never listed, never deleted), and a row whose parameters do not parse is skipped
with a notice instead of stopping the app. Names are claimed create-exclusive, so two processes
saving into one folder in the same second with the same seed both keep their image.
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
from .metadata import read_png_params, restorable_params, save_png

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
            had_index = self._has_index()
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
            return
        if not had_index and any(self.folder.glob("*.png")):
            # A new, emptied or zero-byte index beside images: index them instead of hiding them.
            found = self.rebuild()
            if found:
                self.notice = (
                    f"The gallery index was missing or empty; it was rebuilt from {found} image file(s)."
                )

    def _has_index(self) -> bool:
        """The index file exists and has the images table (a zero-byte file is a valid empty
        database to SQLite, but not an index)."""
        if not self.db_path.is_file() or self.db_path.stat().st_size == 0:
            return False
        db = sqlite3.connect(self.db_path)
        try:
            row = db.execute(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='images'"
            ).fetchone()
        finally:
            db.close()
        return bool(row and row[0])

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
        seed = params.get("seed", 0)
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
        for n in range(10_000):
            path = self.folder / f"{stamp}-{seed}{f'-{n}' if n else ''}.png"
            try:
                save_png(image, path, params, exclusive=True)
                break
            except FileExistsError:
                continue  # another save (maybe another process) has this name: take the next
            except OSError as exc:
                raise SprintError(f"cannot save to the gallery folder {self.folder}: {exc}") from None
        else:
            raise SprintError(
                f"cannot save to the gallery folder {self.folder}: no free file name for {stamp}"
            )
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
        out, gone, skipped = [], [], 0
        for row_id, file, created, prompt, params in rows:
            path = self._own_file(file)
            if path is None:
                skipped += 1  # outside the folder, or not a plain file name: never shown, never deleted
                continue
            if not path.exists():
                gone.append(row_id)
                continue
            try:
                parsed = json.loads(params) if isinstance(params, str) else None
            except (ValueError, RecursionError):
                parsed = None
            if not isinstance(parsed, dict) or not isinstance(created, (int, float)):
                skipped += 1
                continue
            parsed = restorable_params(parsed)
            text = prompt if isinstance(prompt, str) else str(parsed.get("prompt", ""))
            out.append(GalleryItem(int(row_id), path, float(created), text, parsed))
        if gone:
            self._db.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in gone])
            self._db.commit()
        if skipped:
            self.notice = (
                f"{skipped} gallery entr{'y' if skipped == 1 else 'ies'} in {self.db_path.name} could not be "
                "used (damaged, or naming a file outside the gallery folder) and {} hidden; the image files "
                "were not touched.".format("is" if skipped == 1 else "are")
            )
        return out

    def _own_file(self, name: object) -> Path | None:
        """``folder/name`` when ``name`` is a plain PNG file name directly inside the folder (after
        resolving links), else None: an index row can never reach outside the gallery folder."""
        if not isinstance(name, str) or not name or "\x00" in name:
            return None
        if name != Path(name).name or "\\" in name or not name.lower().endswith(".png"):
            return None
        path = self.folder / name
        try:
            if path.resolve().parent != self.folder.resolve():
                return None
        except (OSError, RuntimeError):
            return None
        return path

    def delete(self, item_id: int) -> None:
        row = self._db.execute("SELECT file FROM images WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            return
        path = self._own_file(row[0])
        if path is None:
            raise SprintError(
                f"refusing to delete {row[0]!r}: the gallery index names a file outside {self.folder}"
            )
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise SprintError(f"cannot delete {path.name}: {exc}") from None
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
