"""The main window: prompt to instant image, the live canvas, the gallery strip and settings."""

from __future__ import annotations

import os
import secrets
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QByteArray, QPointF, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QIcon,
    QKeyEvent,
    QKeySequence,
    QPixmap,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import SprintError
from ..core.gallery import Gallery, GalleryItem
from ..core.live import LiveScheduler
from ..core.metadata import read_png_params, save_png
from ..core.nvidia import detect_nvidia_gpu
from ..core.paths import default_model_path, user_config_dir, user_data_dir
from ..core.request import GenerateRequest
from ..core.settings import load_settings, save_settings
from ..core.sketch import edges_to_sketch
from ..store.gpu_runtime import load_runtime_spec, runtime_state
from .gpu_dialog import GpuProbe, GpuRuntimeDialog, should_offer
from .qimage import to_qimage
from .theme import apply_theme
from .widgets import ImageViewWidget, SketchCanvasWidget
from .worker import EngineWorker

MAX_SEED = 2**31 - 1
NO_GPU_OFFER_ENV = "SPRINT_NO_GPU_OFFER"  # "1": never offer the GPU runtime at start (CI, self-test)


class PromptEdit(QPlainTextEdit):
    """Enter (or Ctrl+Enter) submits; Shift+Enter starts a new line."""

    submitted = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.submitted.emit()
            return
        super().keyPressEvent(event)


class MainWindow(QMainWindow):
    """The app. ``config_dir``/``data_dir`` default to the user's platform folders (tests pass
    temporary ones); ``model`` overrides the settings' model."""

    def __init__(
        self,
        config_dir: Path | None = None,
        data_dir: Path | None = None,
        model: str | None = None,
        offer_gpu: bool = True,
    ) -> None:
        super().__init__()
        self.setWindowTitle("Sprint Desktop")
        self.setAcceptDrops(True)
        self.settings_path = (config_dir or user_config_dir()) / "settings.json"
        self.settings, notice = load_settings(self.settings_path)
        self.data_dir = data_dir or user_data_dir()
        self.model_override = model
        self.info: Any = None
        self.last_result: Any = None
        self.live_result: Any = None
        self.latest_prompt_id = 0
        self.prompt_pending = False
        self.live_id = 0
        self.scheduler: LiveScheduler[GenerateRequest] = LiveScheduler(
            debounce=self.settings.live_debounce_ms / 1000
        )
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.timeout.connect(self._pump_live)
        self._type_timer = QTimer(self)
        self._type_timer.setSingleShot(True)
        self._type_timer.setInterval(400)
        self._type_timer.timeout.connect(self.generate)
        self._build()
        self._build_actions()
        apply_theme(self.settings.theme)
        self._restore_settings()
        self.gallery = self._open_gallery()
        self.refresh_gallery()
        self.worker = EngineWorker(self)
        self.worker.loading.connect(self._on_loading)
        self.worker.loaded.connect(self._on_loaded)
        self.worker.load_failed.connect(self._on_load_failed)
        self.worker.load_progress.connect(self._on_load_progress)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.progress.connect(self._on_progress)
        if notice:
            self.show_error(notice)
        if self.gallery.notice:
            self.show_error(self.gallery.notice)
        self.load_model()
        self.gpu_dialog: Any = None
        self.gpu_probe = GpuProbe(self)
        self.gpu_probe.found.connect(self._maybe_offer_gpu)
        if offer_gpu and os.environ.get(NO_GPU_OFFER_ENV) != "1":
            self.gpu_probe.start()  # nvidia-smi may take a moment: off the GUI thread

    # ------------------------------------------------------------------------------ building
    def _build(self) -> None:
        controls = QWidget()
        outer = QVBoxLayout(controls)
        form = QFormLayout()
        outer.addLayout(form)
        outer.addStretch(1)
        self.prompt = PromptEdit()
        self.prompt.setPlaceholderText("Describe an image, then press Enter")
        self.prompt.setAccessibleName("prompt")
        self.prompt.setToolTip("Enter generates; Shift+Enter starts a new line")
        self.prompt.setMaximumHeight(110)
        self.prompt.submitted.connect(self.generate)
        self.prompt.textChanged.connect(self._on_prompt_changed)
        form.addRow(self.prompt)
        self.as_you_type = QCheckBox("Generate as you type")
        self.as_you_type.setToolTip("Generate a short moment after you stop typing")
        form.addRow(self.as_you_type)

        self.steps = QSlider(Qt.Orientation.Horizontal)
        self.steps.setRange(1, 4)
        self.steps.setPageStep(1)
        self.steps.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.steps.setAccessibleName("steps")
        self.steps.setToolTip("Sampling steps: 1 is fastest, 4 adds detail")
        self.steps_label = QLabel()
        self.steps.valueChanged.connect(lambda v: self.steps_label.setText(f"{v} step{'s' if v > 1 else ''}"))
        self.steps.valueChanged.connect(self._on_params_changed)
        row = QHBoxLayout()
        row.addWidget(self.steps)
        row.addWidget(self.steps_label)
        form.addRow("Steps", row)

        self.seed = QSpinBox(minimum=0, maximum=MAX_SEED)
        self.seed.setAccessibleName("seed")
        self.seed.valueChanged.connect(self._on_params_changed)
        self.seed_mode = QComboBox()
        self.seed_mode.addItems(["random", "fixed"])
        self.seed_mode.setToolTip("random: a new seed for every image; fixed: keep this seed")
        self.seed_mode.setAccessibleName("seed mode")
        new_seed = QPushButton("New")
        new_seed.setToolTip("A new random seed (Ctrl+R)")
        new_seed.clicked.connect(self.new_seed)
        reuse = QPushButton("Reuse")
        reuse.setToolTip("Use the seed of the image shown, and keep it")
        reuse.clicked.connect(self.reuse_seed)
        row = QHBoxLayout()
        seed_widgets: tuple[QWidget, ...] = (self.seed, self.seed_mode, new_seed, reuse)
        for widget in seed_widgets:
            row.addWidget(widget)
        form.addRow("Seed", row)

        self.guidance = QDoubleSpinBox(minimum=0.0, maximum=20.0, singleStep=0.5, decimals=1)
        self.guidance.setAccessibleName("guidance")
        self.guidance.setToolTip("How closely the image follows the prompt")
        self.guidance.valueChanged.connect(self._on_params_changed)
        form.addRow("Guidance", self.guidance)
        self.size_combo = QComboBox()
        self.size_combo.setAccessibleName("size")
        self.size_combo.setToolTip("Image sizes this model supports")
        self.size_combo.currentIndexChanged.connect(self._on_params_changed)
        form.addRow("Size", self.size_combo)

        self.generate_button = QPushButton("Generate")
        self.generate_button.setDefault(True)
        self.generate_button.setToolTip("Generate (Ctrl+Enter)")
        self.generate_button.clicked.connect(self.generate)
        self.keep_button = QPushButton("Keep")
        self.keep_button.setToolTip("Keep the image shown in the gallery (Ctrl+K)")
        self.keep_button.clicked.connect(self.keep)
        row = QHBoxLayout()
        row.addWidget(self.generate_button)
        row.addWidget(self.keep_button)
        form.addRow(row)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c0392b")
        self.error_label.setAccessibleName("error message")
        self.error_label.hide()
        form.addRow(self.error_label)

        # The two work areas.
        self.view = ImageViewWidget("Loading model…")
        self.canvas = SketchCanvasWidget()
        self.canvas.changed.connect(self._on_canvas_changed)
        self.live_view = ImageViewWidget("Draw on the left: the image follows here")
        self.live_view.setAccessibleName("live result")
        canvas_tab = QWidget()
        layout = QVBoxLayout(canvas_tab)
        tools = QHBoxLayout()
        self.brush = QSpinBox(minimum=1, maximum=16, value=2, suffix=" px")
        self.brush.setToolTip("Brush size")
        self.brush.setAccessibleName("brush size")
        self.brush.valueChanged.connect(lambda v: setattr(self.canvas, "brush_size", float(v)))
        self.eraser = QCheckBox("Eraser")
        self.eraser.toggled.connect(lambda on: setattr(self.canvas, "eraser", on))
        self.live = QCheckBox("Live")
        self.live.setToolTip("Generate while you draw (Ctrl+L)")
        self.live.toggled.connect(self._on_live_toggled)
        self.strength = QDoubleSpinBox(minimum=0.05, maximum=1.0, singleStep=0.05, decimals=2)
        self.strength.setToolTip(
            "How much the model may change the sketch (sketch-to-image without a ControlNet)"
        )
        self.strength.setAccessibleName("strength")
        self.strength.valueChanged.connect(self._on_canvas_changed)
        self.control_scale = QDoubleSpinBox(minimum=0.0, maximum=2.0, singleStep=0.1, decimals=2)
        self.control_scale.setValue(1.0)
        self.control_scale.setToolTip("How strongly the ControlNet follows the sketch")
        self.control_scale.setAccessibleName("control scale")
        self.control_scale.valueChanged.connect(self._on_canvas_changed)
        self.control_scale_label = QLabel("Control")
        self.mode_label = QLabel()
        buttons = []
        for label, slot, tip in (
            ("Undo", self.canvas.undo, "Undo (Ctrl+Z)"),
            ("Redo", self.canvas.redo, "Redo (Ctrl+Shift+Z)"),
            ("Clear", self.canvas.clear, "Clear the canvas (Ctrl+Shift+Backspace)"),
            ("Import…", self.import_sketch, "Import a picture; its edges become the sketch"),
            ("Keep", self.keep_live, "Keep the live result in the gallery"),
        ):
            b = QPushButton(label)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            buttons.append(b)
        tool_widgets: tuple[QWidget, ...] = (
            QLabel("Brush"),
            self.brush,
            self.eraser,
            *buttons[:4],
            self.live,
            QLabel("Strength"),
            self.strength,
            self.control_scale_label,
            self.control_scale,
            buttons[4],
        )
        for widget in tool_widgets:
            tools.addWidget(widget)
        tools.addStretch(1)
        layout.addLayout(tools)
        split = QSplitter()
        split.addWidget(self.canvas)
        split.addWidget(self.live_view)
        layout.addWidget(split, 1)
        layout.addWidget(self.mode_label)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.view, "Prompt")
        self.tabs.addTab(canvas_tab, "Live canvas")

        self.strip = QListWidget()
        self.strip.setViewMode(QListWidget.ViewMode.IconMode)
        self.strip.setFlow(QListWidget.Flow.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setIconSize(QSize(80, 80))
        self.strip.setFixedHeight(120)
        self.strip.setAccessibleName("gallery")
        self.strip.setToolTip("Kept images: click to restore the parameters, right-click for more")
        self.strip.itemClicked.connect(self._on_gallery_clicked)
        self.strip.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.strip.customContextMenuRequested.connect(self._gallery_menu)

        self.main_split = QSplitter()
        self.main_split.addWidget(controls)
        self.main_split.addWidget(self.tabs)
        self.main_split.setStretchFactor(1, 1)
        central = QWidget()
        v = QVBoxLayout(central)
        v.addWidget(self.main_split, 1)
        v.addWidget(self.strip)
        self.setCentralWidget(central)
        self.model_label = QLabel("loading model…")
        self.latency_label = QLabel("")
        self.statusBar().addPermanentWidget(self.model_label)
        self.statusBar().addPermanentWidget(self.latency_label)
        self.generate_button.setEnabled(False)
        self.resize(1100, 720)

    def _build_actions(self) -> None:
        menu = self.menuBar().addMenu("&File")
        edit = self.menuBar().addMenu("&Edit")
        view = self.menuBar().addMenu("&View")

        def action(menu: QMenu, text: str, shortcut: Any, slot: Any) -> QAction:
            a = QAction(text, self)
            a.setShortcut(QKeySequence(shortcut))
            a.triggered.connect(slot)
            menu.addAction(a)
            self.addAction(a)
            return a

        action(menu, "Generate", "Ctrl+Return", self.generate)
        action(menu, "Keep in gallery", "Ctrl+K", self.keep)
        action(menu, "Save image as…", QKeySequence.StandardKey.Save, self.save_as)
        action(menu, "Open gallery folder", "Ctrl+Shift+O", self.open_folder)
        action(menu, "Models…", "Ctrl+Shift+M", self.open_models)
        action(menu, "GPU acceleration…", "", self.open_gpu_runtime)
        action(menu, "Settings…", "Ctrl+,", self.open_settings)
        menu.addSeparator()
        action(menu, "Quit", QKeySequence.StandardKey.Quit, self.close)
        action(edit, "New seed", "Ctrl+R", self.new_seed)
        action(edit, "Copy image", "Ctrl+Shift+C", self.copy_image)
        action(edit, "Undo stroke", QKeySequence.StandardKey.Undo, self.canvas.undo)
        action(edit, "Redo stroke", QKeySequence.StandardKey.Redo, self.canvas.redo)
        action(edit, "Clear canvas", "Ctrl+Shift+Backspace", self.canvas.clear)
        action(view, "Toggle live mode", "Ctrl+L", lambda: self.live.setChecked(not self.live.isChecked()))
        action(view, "Toggle dark theme", "Ctrl+Shift+T", self.toggle_theme)

    def _restore_settings(self) -> None:
        s = self.settings
        steps = s.steps or 2  # 0: the model's default, set when it has loaded
        self.steps.setValue(steps)
        self.steps_label.setText(f"{steps} step{'s' if steps > 1 else ''}")
        self.seed.setValue(min(s.seed, MAX_SEED))
        self.seed_mode.setCurrentText(s.seed_mode)
        self.guidance.setValue(s.guidance)
        self.strength.setValue(s.strength)
        self.live.setChecked(s.live)
        self.prompt.setPlainText(s.last_prompt)
        if s.window_geometry:
            self.restoreGeometry(QByteArray.fromHex(s.window_geometry.encode()))
        if s.window_state:
            self.main_split.restoreState(QByteArray.fromHex(s.window_state.encode()))

    def _open_gallery(self) -> Gallery:
        folder = Path(self.settings.output_dir) if self.settings.output_dir else self.data_dir / "gallery"
        try:
            return Gallery(folder)
        except (OSError, SprintError) as exc:
            fallback = self.data_dir / "gallery"
            if folder != fallback:
                self.show_error(f"Cannot use the output folder {folder} ({exc}); using {fallback}.")
                try:
                    return Gallery(fallback)
                except (OSError, SprintError) as again:
                    exc = again
            # Last resort: a private temporary folder, so the app still starts; say so.
            import tempfile

            temp = Path(tempfile.mkdtemp(prefix="sprint-gallery-"))
            self.show_error(f"The gallery folder cannot be used ({exc}); kept images go to {temp} for now.")
            return Gallery(temp)

    # ------------------------------------------------------------------------------ the model
    def model_path(self) -> str | None:
        chosen = self.model_override or self.settings.model
        if chosen:
            return chosen
        path = default_model_path()
        return str(path) if path else None

    def load_model(self) -> None:
        path = self.model_path()
        if path is None:
            self.view.set_placeholder(
                "No model is installed. Choose a SANA-Sprint model folder in File ▸ Settings."
            )
            self.model_label.setText("no model")
            return
        self.worker.load(path, backend=self.settings.backend, device=self.settings.device)

    def _on_loading(self, path: str) -> None:
        self.info = None
        self.generate_button.setEnabled(False)
        self.model_label.setText(f"loading model {Path(path).name}…")
        self.view.set_placeholder("Loading model…")

    def _on_loaded(self, info: Any) -> None:
        self.info = info
        self.model_label.setText(f"{info.backend} · {info.device} ({info.dtype}) · {info.name}")
        self.view.set_placeholder("Type a prompt and press Enter")
        self.generate_button.setEnabled(True)
        self.clear_error()
        self._fill_sizes(info)
        if self.settings.steps == 0:  # the user has not chosen: the model's own default
            self.steps.setValue(info.default_steps)
        self.canvas.set_resolution(max(info.default_width, info.default_height))
        controlnet = info.control_mode == "controlnet"
        for widget in (self.control_scale, self.control_scale_label):
            widget.setVisible(controlnet)
        self.strength.setEnabled(not controlnet)
        self.mode_label.setText(
            "Sketch mode: ControlNet"
            if info.control_mode == "controlnet"
            else "Sketch mode: image-to-image from the sketch (this model has no ControlNet)"
        )
        if self.prompt.toPlainText().strip():
            self.generate()

    def _on_load_progress(self, message: str) -> None:
        self.model_label.setText(message)
        self.view.set_placeholder(f"Loading model… {message}")

    def _on_load_failed(self, message: str) -> None:
        self.model_label.setText("no model loaded")
        self.view.set_placeholder("The model could not be loaded. Choose another in File ▸ Settings.")
        self.show_error(message)

    def _fill_sizes(self, info: Any) -> None:
        w, h, m = info.default_width, info.default_height, info.size_multiple
        presets = [(w, h)]
        for aw, ah in ((3, 4), (4, 3), (9, 16), (16, 9)):
            scale = (w * h / (aw * ah)) ** 0.5
            pw, ph = max(m, round(aw * scale / m) * m), max(m, round(ah * scale / m) * m)
            if (pw, ph) not in presets:
                presets.append((pw, ph))
        self.size_combo.blockSignals(True)
        self.size_combo.clear()
        for pw, ph in presets:
            self.size_combo.addItem(f"{pw} × {ph}", (pw, ph))
        saved = (self.settings.width, self.settings.height)
        index = next((i for i, p in enumerate(presets) if p == saved), 0)
        self.size_combo.setCurrentIndex(index)
        self.size_combo.blockSignals(False)

    # ------------------------------------------------------------------------------ requests
    def current_request(self, sketch: np.ndarray | None = None) -> GenerateRequest:
        width, height = self.size_combo.currentData() or (None, None)
        return GenerateRequest(
            prompt=self.prompt.toPlainText().strip(),
            steps=self.steps.value(),
            seed=self.seed.value(),
            width=width,
            height=height,
            guidance=round(self.guidance.value(), 3),
            control_image=sketch,
            strength=round(self.strength.value(), 3),
            control_scale=round(self.control_scale.value(), 3),
            model=self.info.name if self.info else "",
            backend=self.info.backend if self.info else self.settings.backend,  # the one running
        )

    def generate(self) -> int | None:
        """Send the prompt box's request to the worker; the result appears when it is ready."""
        self._type_timer.stop()
        if self.info is None:
            self.show_error("The model is not ready yet.")
            return None
        if self.seed_mode.currentText() == "random":
            self.seed.setValue(secrets.randbelow(MAX_SEED))
        request = self.current_request()
        try:
            request.validate()
        except SprintError as exc:
            self.show_error(str(exc))
            return None
        self.clear_error()
        self._remember_prompt(request.prompt)
        self.prompt_pending = True
        self.latest_prompt_id = self.worker.submit(request)
        self.statusBar().showMessage("generating…")
        return self.latest_prompt_id

    def _on_prompt_changed(self) -> None:
        if self.as_you_type.isChecked() and self.info is not None:
            self._type_timer.start()
        self._on_params_changed()

    def _on_params_changed(self) -> None:
        if self.tabs.currentIndex() == 1:
            self._on_canvas_changed()

    def _on_finished(self, request_id: int, result: Any) -> None:
        t = result.timings
        self.latency_label.setText(
            f"{t.total_ms:.0f} ms (encode {t.encode_ms:.0f} · denoise {t.denoise_ms:.0f} · decode {t.decode_ms:.0f})"
        )
        if request_id == self.live_id:
            self.live_result = result
            self.live_view.set_image(to_qimage(result.image))
            self._live_done()
        elif request_id == self.latest_prompt_id:
            self.last_result = result
            self.view.set_image(to_qimage(result.image))
            self.statusBar().showMessage("done", 2000)
            for w in result.warnings:
                self.show_error(w)
            self._prompt_done()
        # Otherwise the result is stale (a newer request was sent after it) and is dropped.

    def _on_failed(self, request_id: int, message: str) -> None:
        self.statusBar().clearMessage()
        self.show_error(message)
        if request_id == self.live_id:
            self._live_done(completed=False)
        elif request_id == self.latest_prompt_id:
            self._prompt_done()

    def _on_cancelled(self, request_id: int) -> None:
        if request_id == self.live_id:
            self._live_done(completed=False)
        elif request_id == self.latest_prompt_id:
            self.statusBar().clearMessage()
            self._prompt_done()

    def _prompt_done(self) -> None:
        """The prompt's request ended: the live canvas, held back meanwhile, may run again."""
        self.prompt_pending = False
        self._pump_live()

    def _on_progress(self, request_id: int, stage: str, step: int, total: int) -> None:
        if request_id == self.latest_prompt_id and stage == "denoise":
            self.statusBar().showMessage(f"step {min(step + 1, total)} of {total}")

    # ------------------------------------------------------------------------------ live canvas
    def _on_live_toggled(self, on: bool) -> None:
        if on:
            self._on_canvas_changed()

    def _on_canvas_changed(self) -> None:
        if not self.live.isChecked() or self.info is None:
            return
        sketch = self.canvas.to_array()  # once per change: it is hashed into the request as well
        if (sketch == 255).all():
            return
        request = self.current_request(sketch)
        if not request.prompt:
            return
        self.scheduler.change(request, time.monotonic())
        self._pump_live()

    def _pump_live(self) -> None:
        if self.prompt_pending:
            return  # an explicit Generate goes first; the canvas resumes when it ends
        now = time.monotonic()
        request = self.scheduler.poll(now)
        if request is not None:
            self.live_id = self.worker.submit(request)
            return
        wait = self.scheduler.next_check(now)
        if wait is not None:
            self._live_timer.start(int(wait * 1000) + 1)

    def _live_done(self, completed: bool = True) -> None:
        self.scheduler.finished(time.monotonic(), completed)
        self.live_id = 0
        self._pump_live()

    def import_sketch(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Import a picture", "", "Images (*.png *.jpg *.jpeg *.bmp *.webp)"
            )
            if not path:
                return
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            self.show_error(f"Cannot import {path}: {exc}")
            return
        self.canvas.set_array(edges_to_sketch(arr))
        self.tabs.setCurrentIndex(1)

    # ------------------------------------------------------------------------------ gallery
    def keep(self) -> GalleryItem | None:
        return self._keep(self.last_result)

    def keep_live(self) -> GalleryItem | None:
        return self._keep(self.live_result)

    def _keep(self, result: Any) -> GalleryItem | None:
        if result is None:
            self.show_error("Nothing to keep yet: generate an image first.")
            return None
        try:
            item = self.gallery.add(result.image, result.metadata())
        except SprintError as exc:
            self.show_error(str(exc))
            return None
        self.refresh_gallery()
        self.statusBar().showMessage(f"kept as {item.path.name}", 3000)
        return item

    def refresh_gallery(self) -> None:
        self.strip.clear()
        for item in self.gallery.items():
            thumb = QPixmap(str(item.path)).scaled(
                self.strip.iconSize(),
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
            entry = QListWidgetItem(QIcon(thumb), "")
            entry.setToolTip(
                f"{item.prompt}\nseed {item.params.get('seed')} · {item.params.get('steps')} step(s)"
            )
            entry.setData(Qt.ItemDataRole.UserRole, item)
            self.strip.addItem(entry)

    def _on_gallery_clicked(self, entry: QListWidgetItem) -> None:
        item: GalleryItem = entry.data(Qt.ItemDataRole.UserRole)
        self.restore_params(item.params)
        self.view.set_image(
            to_qimage(np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(item.path).convert("RGB")))
        )
        self.tabs.setCurrentIndex(0)

    def _gallery_menu(self, pos: Any) -> None:
        entry = self.strip.itemAt(pos)
        if entry is None:
            return
        item: GalleryItem = entry.data(Qt.ItemDataRole.UserRole)
        menu = QMenu(self)
        menu.addAction("Restore parameters", lambda: self.restore_params(item.params))
        menu.addAction(
            "Copy image", lambda: QGuiApplication.clipboard().setImage(QPixmap(str(item.path)).toImage())
        )
        menu.addAction("Save as…", lambda: self._save_file_as(item.path))
        menu.addAction("Open folder", self.open_folder)
        menu.addSeparator()
        menu.addAction("Delete", lambda: self.delete_item(item))
        menu.popup(self.strip.mapToGlobal(pos))

    def delete_item(self, item: GalleryItem) -> None:
        try:
            self.gallery.delete(item.id)
        except SprintError as exc:
            self.show_error(str(exc))
        self.refresh_gallery()

    def restore_params(self, params: dict[str, Any]) -> None:
        """Put an image's parameters back into the controls (the seed becomes fixed)."""
        if isinstance(params.get("prompt"), str):
            self.prompt.setPlainText(params["prompt"])
        if isinstance(params.get("steps"), int) and 1 <= params["steps"] <= 4:
            self.steps.setValue(params["steps"])
        if isinstance(params.get("seed"), int):
            self.seed.setValue(min(params["seed"], MAX_SEED))
            self.seed_mode.setCurrentText("fixed")
        if isinstance(params.get("guidance"), (int, float)):
            self.guidance.setValue(float(params["guidance"]))
        size = (params.get("width"), params.get("height"))
        for i in range(self.size_combo.count()):
            if self.size_combo.itemData(i) == size:
                self.size_combo.setCurrentIndex(i)
        self.statusBar().showMessage("parameters restored", 3000)

    def open_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.gallery.folder)))

    def copy_image(self) -> None:
        image = self.view.image() if self.tabs.currentIndex() == 0 else self.live_view.image()
        if image is not None:
            QGuiApplication.clipboard().setImage(image)
            self.statusBar().showMessage("image copied", 2000)

    def save_as(self) -> None:
        result = self.last_result if self.tabs.currentIndex() == 0 else self.live_result
        if result is None:
            self.show_error("Nothing to save yet: generate an image first.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save image", "image.png", "PNG (*.png)")
        if path:
            try:
                save_png(result.image, Path(path).with_suffix(".png"), result.metadata())
            except OSError as exc:
                self.show_error(f"Cannot save {path}: {exc}")

    def _save_file_as(self, source: Path) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save image", source.name, "PNG (*.png)")
        if path:
            try:
                Path(path).write_bytes(source.read_bytes())
            except OSError as exc:
                self.show_error(f"Cannot save {path}: {exc}")

    # ------------------------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        for url in event.mimeData().urls():
            self.restore_from_file(url.toLocalFile())
            break

    def restore_from_file(self, path: str) -> bool:
        try:
            params = read_png_params(path)
        except SprintError as exc:
            self.show_error(str(exc))
            return False
        self.restore_params(params)
        return True

    # ------------------------------------------------------------------------------ misc
    def new_seed(self) -> None:
        self.seed.setValue(secrets.randbelow(MAX_SEED))

    def reuse_seed(self) -> None:
        if self.last_result is not None:
            self.seed.setValue(min(self.last_result.request.seed, MAX_SEED))
        self.seed_mode.setCurrentText("fixed")

    def toggle_theme(self) -> None:
        self.settings.theme = "dark" if self.settings.theme == "light" else "light"
        apply_theme(self.settings.theme)

    def open_models(self) -> None:
        from .models_dialog import ModelManagerDialog

        dialog = ModelManagerDialog(self)
        dialog.model_chosen.connect(self.use_model)
        dialog.show()

    def use_model(self, folder: str) -> None:
        """Switch to the model in ``folder`` and remember it."""
        self.settings.model = folder
        self.model_override = None
        self.load_model()
        self.save_settings()

    def _maybe_offer_gpu(self, gpu: Any) -> None:
        """Offer the GPU runtime once (the first start that finds an NVIDIA GPU)."""
        if should_offer(gpu, self.settings.gpu_offer_shown, runtime_state(load_runtime_spec())):
            self.settings.gpu_offer_shown = True
            self.save_settings()
            self.open_gpu_runtime()

    def open_gpu_runtime(self) -> None:
        """File ▸ GPU acceleration: install (or remove) onnxruntime-gpu and its CUDA libraries."""
        gpu = self.gpu_probe.gpu if self.gpu_probe.done else detect_nvidia_gpu()
        try:
            dialog = GpuRuntimeDialog(gpu, parent=self)
        except SprintError as exc:
            self.show_error(str(exc))
            return
        dialog.installed.connect(self._on_gpu_runtime_installed)
        self.gpu_dialog = dialog
        dialog.show()

    def _on_gpu_runtime_installed(self, site: str) -> None:
        """Run the ONNX backend from now on; it picks the runtime up at the next model load, or at the
        next start when this process has already imported the CPU onnxruntime."""
        self.settings.backend = "onnx"
        self.save_settings()
        if "onnxruntime" in sys.modules:
            self.statusBar().showMessage("GPU runtime installed: restart Sprint Desktop to use it.")
        else:
            self.load_model()

    def open_settings(self) -> None:
        from .settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            old = (self.settings.model, self.settings.backend, self.settings.device, self.settings.output_dir)
            self.settings = dialog.result_settings()
            apply_theme(self.settings.theme)
            self.scheduler.debounce = self.settings.live_debounce_ms / 1000
            if old[3] != self.settings.output_dir:
                self.gallery = self._open_gallery()
                self.refresh_gallery()
            if old[:3] != (self.settings.model, self.settings.backend, self.settings.device):
                self.model_override = None
                self.load_model()
            self.save_settings()

    def show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()
        self.statusBar().showMessage(message, 8000)

    def clear_error(self) -> None:
        self.error_label.hide()
        self.error_label.clear()

    def _remember_prompt(self, prompt: str) -> None:
        recent = [p for p in self.settings.recent_prompts if p != prompt]
        self.settings.recent_prompts = [prompt, *recent][:50]

    def save_settings(self) -> None:
        s = self.settings
        width, height = self.size_combo.currentData() or (0, 0)
        # Steps stay "the model's default" (0) until the user picks another value.
        follows_model = s.steps == 0 and (self.info is None or self.steps.value() == self.info.default_steps)
        steps = 0 if follows_model else self.steps.value()
        self.settings = replace(
            s,
            steps=steps,
            seed=self.seed.value(),
            seed_mode=self.seed_mode.currentText(),
            guidance=round(self.guidance.value(), 3),
            strength=round(self.strength.value(), 3),
            width=width,
            height=height,
            live=self.live.isChecked(),
            last_prompt=self.prompt.toPlainText(),
            window_geometry=bytes(self.saveGeometry().toHex().data()).decode(),
            window_state=bytes(self.main_split.saveState().toHex().data()).decode(),
        )
        try:
            save_settings(self.settings, self.settings_path)
        except OSError as exc:
            self.show_error(f"Cannot save settings to {self.settings_path}: {exc}")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.save_settings()
        self.worker.stop()
        self.gallery.close()
        super().closeEvent(event)

    def grab_canvas_stroke(self, points: list[tuple[float, float]]) -> None:
        """Draw a stroke through canvas-image coordinates (self-test and tests)."""
        self.canvas.stroke([QPointF(x, y) for x, y in points])
