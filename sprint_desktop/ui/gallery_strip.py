"""The gallery strip: kept images as bordered thumbnails; click to restore, right-click for more."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, QSize, Qt, Signal
from PySide6.QtGui import QGuiApplication, QIcon, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import QFileDialog, QListWidget, QListWidgetItem, QMenu, QWidget

from ..core.gallery import GalleryItem
from ..workspace import Workspace

THUMB = 80
EMPTY_HINT = "Kept images appear here. Press Keep (Ctrl+K) to keep the image on screen."


class GalleryStripWidget(QListWidget):
    """Binds to a `Workspace`'s gallery; ``open_folder_requested`` asks the window to open it."""

    open_folder_requested = Signal()

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setFlow(QListWidget.Flow.LeftToRight)
        self.setWrapping(False)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setSpacing(4)
        self.setFixedHeight(THUMB + 36)
        self.setAccessibleName("gallery")
        self.setToolTip("Kept images: click one to see it and get its parameters back; right-click for more")
        self.itemClicked.connect(self._on_clicked)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        workspace.events.gallery_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        self.clear()
        for item in self.ws.gallery.items():
            entry = QListWidgetItem(QIcon(self._thumbnail(item.path)), "")
            entry.setToolTip(
                f"{item.prompt}\nseed {item.params.get('seed')} · {item.params.get('steps')} step(s)"
            )
            entry.setData(Qt.ItemDataRole.UserRole, item)
            self.addItem(entry)
        self.viewport().update()

    def _thumbnail(self, path: Path) -> QPixmap:
        """The image fitted into the icon size, with a 1 px frame that shows on light and dark."""
        image = QPixmap(str(path)).scaled(
            self.iconSize() - QSize(2, 2),
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        framed = QPixmap(image.size() + QSize(2, 2))
        framed.fill(self.palette().mid().color())
        p = QPainter(framed)
        p.drawPixmap(1, 1, image)
        p.end()
        return framed

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        super().paintEvent(event)
        if self.count() == 0:
            p = QPainter(self.viewport())
            p.setPen(QPen(self.palette().placeholderText().color()))
            p.drawText(
                self.viewport().rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, EMPTY_HINT
            )

    def item_at(self, row: int) -> GalleryItem:
        return self.item(row).data(Qt.ItemDataRole.UserRole)

    def _on_clicked(self, entry: QListWidgetItem) -> None:
        from PIL import Image

        item: GalleryItem = entry.data(Qt.ItemDataRole.UserRole)
        try:
            with Image.open(item.path) as im:
                image = np.asarray(im.convert("RGB"))
        except OSError as exc:
            self.ws.events.error.emit(f"Cannot open {item.path.name}: {exc}")
            return
        self.ws.show_item(item, image)

    def _menu(self, pos: QPoint) -> None:
        entry = self.itemAt(pos)
        if entry is None:
            return
        item: GalleryItem = entry.data(Qt.ItemDataRole.UserRole)
        menu = QMenu(self)
        menu.addAction("Restore parameters", lambda: self.ws.restore(item.params, item.path.name))
        menu.addAction(
            "Copy image", lambda: QGuiApplication.clipboard().setImage(QPixmap(str(item.path)).toImage())
        )
        menu.addAction("Save as…", lambda: self._save_as(item.path))
        menu.addAction("Open folder", self.open_folder_requested.emit)
        menu.addSeparator()
        menu.addAction("Delete", lambda: self.ws.delete(item))
        menu.popup(self.mapToGlobal(pos))

    def _save_as(self, source: Path) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save image", source.name, "PNG (*.png)")
        if path:
            try:
                Path(path).write_bytes(source.read_bytes())
            except OSError as exc:
                self.ws.events.error.emit(f"Cannot save {path}: {exc}")
