"""The live canvas panel: draw on the left, the image follows on the right."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..core.sketch import edges_to_sketch
from ..workspace import ModelState, Params, Workspace
from .qimage import to_qimage
from .widgets import ImageViewWidget, SketchCanvasWidget

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.webp)"


class LiveCanvasPanel(QWidget):
    """Binds the sketch canvas and its tools to a `Workspace` (sketch, live mode, control)."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.canvas = SketchCanvasWidget()
        self.canvas.changed.connect(self._on_canvas_changed)
        self.live_view = ImageViewWidget("Draw on the left: the image follows here")
        self.live_view.setAccessibleName("live result")
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_tools())
        layout.addLayout(self._build_controls())
        split = QSplitter()
        split.addWidget(self.canvas)
        split.addWidget(self.live_view)
        layout.addWidget(split, 1)
        self._bind()
        self.show_params(workspace.params)

    def _build_tools(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.brush = QSpinBox(minimum=1, maximum=16, value=2, suffix=" px")
        self.brush.setToolTip("Brush size")
        self.brush.setAccessibleName("brush size")
        self.brush.valueChanged.connect(lambda v: setattr(self.canvas, "brush_size", float(v)))
        self.eraser = QCheckBox("Eraser")
        self.eraser.toggled.connect(lambda on: setattr(self.canvas, "eraser", on))
        row.addWidget(QLabel("Brush"))
        row.addWidget(self.brush)
        row.addWidget(self.eraser)
        for label, slot, tip in (
            ("Undo", self.canvas.undo, "Undo (Ctrl+Z)"),
            ("Redo", self.canvas.redo, "Redo (Ctrl+Shift+Z)"),
            ("Clear", self.canvas.clear, "Clear the canvas (Ctrl+Shift+Backspace)"),
            ("Import…", self.import_sketch, "Import a picture; its edges become the sketch"),
        ):
            button = QPushButton(label)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            row.addWidget(button)
        row.addStretch(1)
        return row

    def _build_controls(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.live = QCheckBox("Live")
        self.live.setToolTip("Make an image while you draw (Ctrl+L)")
        self.live.setChecked(self.ws.live_enabled)
        self.live.toggled.connect(self.ws.set_live)
        self.strength = QDoubleSpinBox(minimum=0.05, maximum=1.0, singleStep=0.05, decimals=2)
        self.strength.setToolTip("How much the model may change the sketch (models without a ControlNet)")
        self.strength.setAccessibleName("strength")
        self.strength.valueChanged.connect(lambda v: self.ws.set_params(strength=v))
        self.strength_label = QLabel("Strength")
        self.control_scale = QDoubleSpinBox(minimum=0.0, maximum=2.0, singleStep=0.1, decimals=2)
        self.control_scale.setToolTip("How strongly the image follows the sketch")
        self.control_scale.setAccessibleName("control scale")
        self.control_scale.valueChanged.connect(lambda v: self.ws.set_params(control_scale=v))
        self.control_scale_label = QLabel("Follow the sketch")
        self.mode_label = QLabel()
        self.mode_label.setWordWrap(True)
        for widget in (
            self.live,
            self.strength_label,
            self.strength,
            self.control_scale_label,
            self.control_scale,
        ):
            row.addWidget(widget)
        row.addWidget(self.mode_label, 1)
        return row

    def _bind(self) -> None:
        self.ws.events.params_changed.connect(self.show_params)
        self.ws.events.model_changed.connect(self._on_model)
        self.ws.events.live_image.connect(
            lambda image: self.live_view.set_image(None if image is None else to_qimage(image))
        )

    def show_params(self, params: Params) -> None:
        for spin, value in ((self.strength, params.strength), (self.control_scale, params.control_scale)):
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)

    def _on_model(self, state: ModelState) -> None:
        info = state.info
        if info is None:
            return
        self.canvas.set_resolution(max(info.default_width, info.default_height))
        controlnet = info.control_mode == "controlnet"
        for widget in (self.control_scale, self.control_scale_label):
            widget.setVisible(controlnet)
        for widget in (self.strength, self.strength_label):
            widget.setVisible(not controlnet)
        self.mode_label.setText(
            "The model follows your strokes (ControlNet)."
            if controlnet
            else "This model has no ControlNet: it starts from your sketch and redraws it."
        )

    def _on_canvas_changed(self) -> None:
        self.ws.set_sketch(self.canvas.to_array())

    def set_live(self, on: bool) -> None:
        self.live.setChecked(on)

    def import_sketch(self, path: str | None = None) -> bool:
        """A picture's edges become the sketch; False (and a message) when it cannot be read."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Import a picture", "", IMAGE_FILTER)
            if not path:
                return False
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            self.ws.events.error.emit(f"Cannot import {path}: {exc}")
            return False
        self.canvas.set_array(edges_to_sketch(arr))
        return True
