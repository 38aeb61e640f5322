"""Reusable widgets: the image view and the sketch canvas."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QWheelEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from .qimage import from_qimage


class ImageViewWidget(QWidget):
    """Shows one image fitted to the widget (smoothly upscaled: the embedded model draws 64 px);
    Ctrl+wheel zooms, double-click returns to fit."""

    def __init__(self, placeholder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._zoom: float | None = None  # None = fit
        self.placeholder = placeholder
        self.setMinimumSize(96, 96)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("generated image")

    def set_image(self, image: QImage | None) -> None:
        self._image = image
        self.update()

    def image(self) -> QImage | None:
        return self._image

    def set_placeholder(self, text: str) -> None:
        self.placeholder = text
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(512, 512)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier and self._image is not None:
            current = self._zoom or self._fit_scale()
            factor = 1.25 if event.angleDelta().y() > 0 else 0.8
            self._zoom = max(0.1, min(32.0, current * factor))
            self.update()
            event.accept()
        else:
            super().wheelEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._zoom = None
        self.update()

    def _fit_scale(self) -> float:
        assert self._image is not None
        return min(self.width() / max(1, self._image.width()), self.height() / max(1, self._image.height()))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().base())
        if self._image is None or self._image.isNull():
            p.setPen(self.palette().placeholderText().color())
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            return
        scale = self._zoom or self._fit_scale()
        w, h = self._image.width() * scale, self._image.height() * scale
        target = QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.drawImage(target, self._image)


class SketchCanvasWidget(QWidget):
    """A drawing surface: dark strokes on white, brush sizes, eraser, undo/redo, clear, import.

    The drawing lives in a QImage of the model's size (``resolution``) shown scaled up; ``changed``
    is emitted on every stroke segment, so live mode can follow the pen.
    """

    changed = Signal()

    def __init__(self, resolution: int = 64, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image = self._blank(resolution)
        self._undo: list[QImage] = []
        self._redo: list[QImage] = []
        self._last: QPointF | None = None
        self.brush_size = max(1.0, resolution / 32)
        self.eraser = False
        self.setMinimumSize(120, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setAccessibleName("sketch canvas")
        self.setToolTip("Draw outlines here; the image follows in live mode")

    @staticmethod
    def _blank(size: int) -> QImage:
        img = QImage(size, size, QImage.Format.Format_RGB888)
        img.fill(QColor("white"))
        return img

    # ------------------------------------------------------------------------- state
    def resolution(self) -> int:
        return self._image.width()

    def set_resolution(self, size: int) -> None:
        if size != self._image.width():
            self._push_undo()
            self._image = self._image.scaled(
                size, size, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
            self.brush_size = max(1.0, size / 32)
            self.update()
            self.changed.emit()

    def to_array(self) -> np.ndarray:
        return from_qimage(self._image)

    def is_blank(self) -> bool:
        return bool((self.to_array() == 255).all())

    def set_array(self, sketch: np.ndarray) -> None:
        from .qimage import to_qimage

        self._push_undo()
        img = to_qimage(sketch)
        size = self.resolution()
        self._image = img.scaled(
            size, size, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
        self.update()
        self.changed.emit()

    def _push_undo(self) -> None:
        self._undo.append(self._image.copy())
        del self._undo[:-50]
        self._redo.clear()

    def undo(self) -> None:
        if self._undo:
            self._redo.append(self._image)
            self._image = self._undo.pop()
            self.update()
            self.changed.emit()

    def redo(self) -> None:
        if self._redo:
            self._undo.append(self._image)
            self._image = self._redo.pop()
            self.update()
            self.changed.emit()

    def clear(self) -> None:
        self._push_undo()
        self._image = self._blank(self.resolution())
        self.update()
        self.changed.emit()

    # ------------------------------------------------------------------------- drawing
    def _to_image(self, pos: QPointF) -> QPointF:
        side = min(self.width(), self.height())
        ox, oy = (self.width() - side) / 2, (self.height() - side) / 2
        scale = self.resolution() / max(1, side)
        return QPointF((pos.x() - ox) * scale, (pos.y() - oy) * scale)

    def stroke(self, points: list[QPointF]) -> None:
        """Draw a stroke through image-space points (used by the mouse and by tests/self-test)."""
        self._push_undo()
        for a, b in zip(points, points[1:] or points, strict=False):
            self._segment(a, b)
        self.changed.emit()

    def _segment(self, a: QPointF, b: QPointF) -> None:
        p = QPainter(self._image)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        color = QColor("white") if self.eraser else QColor(20, 20, 20)
        width = self.brush_size * (3 if self.eraser else 1)
        p.setPen(
            QPen(color, width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin)
        )
        p.drawLine(a, b)
        p.end()
        self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._push_undo()
            self._last = self._to_image(event.position())
            self._segment(self._last, self._last)
            self.changed.emit()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._last is not None:
            point = self._to_image(event.position())
            self._segment(self._last, point)
            self._last = point
            self.changed.emit()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._last = None

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        side = min(self.width(), self.height())
        target = QRectF((self.width() - side) / 2, (self.height() - side) / 2, side, side)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.drawImage(target, self._image)
        p.setPen(QPen(self.palette().mid().color(), 1))
        p.drawRect(target.adjusted(0, 0, -1, -1))
