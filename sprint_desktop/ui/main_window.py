"""The main window: assembles the panels around one `Workspace`, the menus and the dialogs.

The state and every action live in `workspace.Workspace`; the worker thread runs its jobs; the
panels (prompt, preview, live canvas, gallery strip, status bar) bind to its events.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QMainWindow,
    QMenu,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import SprintError
from ..core.metadata import save_png
from ..core.nvidia import detect_nvidia_gpu
from ..core.paths import user_config_dir, user_data_dir
from ..store.gpu_runtime import load_runtime_spec, runtime_state
from ..workspace import Workspace
from .canvas_panel import LiveCanvasPanel
from .gallery_strip import GalleryStripWidget
from .gpu_dialog import GpuProbe, GpuRuntimeDialog, should_offer
from .prompt_panel import PromptPanel
from .status_bar import PreviewWidget, StatusBarWidget
from .theme import apply_theme
from .worker import EngineWorker

NO_GPU_OFFER_ENV = "SPRINT_NO_GPU_OFFER"  # "1": never offer the GPU runtime at start (CI, self-test)
MIN_SIZE = (760, 560)
"""Below this the controls no longer fit beside a useful image."""
QUIT_WAIT_S = 0.1
"""How long closing waits for the engine thread (a running job is cancelled, not awaited)."""


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
        self.worker = EngineWorker(self)
        self.workspace = ws = Workspace(
            self.worker,
            (config_dir or user_config_dir()) / "settings.json",
            data_dir or user_data_dir(),
            model_override=model,
        )
        self._connect_worker()
        self._build()
        self._build_menus()
        apply_theme(ws.settings.theme)
        self._restore_geometry()
        for notice in (ws.settings_notice, *ws.gallery_notices):
            if notice:
                ws.events.error.emit(notice)
        ws.load_model()
        self.gpu_dialog: GpuRuntimeDialog | None = None
        self.models_dialog: Any = None  # a ModelManagerDialog, made on first use
        self.offer_gpu = offer_gpu and os.environ.get(NO_GPU_OFFER_ENV) != "1"
        self.gpu_probe = GpuProbe(self)
        self.gpu_probe.found.connect(self._maybe_offer_gpu)
        if self.offer_gpu:
            self.gpu_probe.start()  # nvidia-smi may take a moment: off the GUI thread

    def _connect_worker(self) -> None:
        ws, worker = self.workspace, self.worker
        worker.loading.connect(ws.on_loading)
        worker.load_progress.connect(ws.on_load_progress)
        worker.loaded.connect(ws.on_loaded)
        worker.load_failed.connect(ws.on_load_failed)
        worker.finished.connect(ws.on_finished)
        worker.failed.connect(ws.on_failed)
        worker.cancelled.connect(ws.on_cancelled)
        worker.progress.connect(ws.on_progress)
        self._wake = QTimer(self, singleShot=True)
        self._wake.timeout.connect(ws.pump)
        ws.events.wake.connect(lambda s: self._wake.start(int(s * 1000) + 1))

    # ------------------------------------------------------------------------------ building
    def _build(self) -> None:
        ws = self.workspace
        self.prompt_panel = PromptPanel(ws)
        controls = QScrollArea()  # on a small screen the controls scroll instead of clipping
        controls.setWidget(self.prompt_panel)
        controls.setWidgetResizable(True)
        controls.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        controls.setMinimumWidth(300)
        self.preview = PreviewWidget(ws)
        self.canvas_panel = LiveCanvasPanel(ws)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.preview, "Prompt")
        self.tabs.addTab(self.canvas_panel, "Live canvas")
        self.tabs.currentChanged.connect(lambda i: ws.set_canvas_shown(i == 1))
        self.strip = GalleryStripWidget(ws)
        self.strip.open_folder_requested.connect(self.open_folder)
        self.main_split = QSplitter()
        self.main_split.addWidget(controls)
        self.main_split.addWidget(self.tabs)
        self.main_split.setStretchFactor(1, 1)
        self.main_split.setChildrenCollapsible(False)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.main_split, 1)
        layout.addWidget(self.strip)
        self.setCentralWidget(central)
        self.setStatusBar(StatusBarWidget(ws))
        self.setMinimumSize(*MIN_SIZE)
        self.resize(1100, 720)

    def _build_menus(self) -> None:
        ws, canvas = self.workspace, self.canvas_panel.canvas
        file = self.menuBar().addMenu("&File")
        self._action(file, "Generate", "Ctrl+Return", ws.generate)
        self._action(file, "Keep in gallery", "Ctrl+K", ws.keep)
        self._action(file, "Save image as…", QKeySequence.StandardKey.Save, self.save_as)
        self._action(file, "Open gallery folder", "Ctrl+Shift+O", self.open_folder)
        self._action(file, "Models…", "Ctrl+Shift+M", self.open_models)
        self._action(file, "GPU acceleration…", "", self.open_gpu_runtime)
        self._action(file, "Settings…", "Ctrl+,", self.open_settings)
        file.addSeparator()
        self._action(file, "Quit", QKeySequence.StandardKey.Quit, self.close)
        edit = self.menuBar().addMenu("&Edit")
        self._action(edit, "New seed", "Ctrl+R", ws.new_seed)
        self._action(edit, "Copy image", "Ctrl+Shift+C", self.copy_image)
        self._action(edit, "Undo stroke", QKeySequence.StandardKey.Undo, canvas.undo)
        self._action(edit, "Redo stroke", QKeySequence.StandardKey.Redo, canvas.redo)
        self._action(edit, "Clear canvas", "Ctrl+Shift+Backspace", canvas.clear)
        view = self.menuBar().addMenu("&View")
        self.live_action = self._action(
            view, "Live mode", "Ctrl+L", self.canvas_panel.set_live, checkable=True
        )
        self.live_action.setChecked(self.canvas_panel.live.isChecked())
        self.canvas_panel.live.toggled.connect(self.live_action.setChecked)
        self.dark_action = self._action(view, "Dark theme", "Ctrl+Shift+T", self.set_dark, checkable=True)
        self.dark_action.setChecked(ws.settings.theme == "dark")

    def _action(
        self, menu: QMenu, text: str, shortcut: Any, slot: Callable[..., Any], checkable: bool = False
    ) -> QAction:
        action = QAction(text, self, checkable=checkable)
        action.setShortcut(QKeySequence(shortcut))
        (action.toggled if checkable else action.triggered).connect(slot)
        menu.addAction(action)
        self.addAction(action)
        return action

    def _restore_geometry(self) -> None:
        s = self.workspace.settings
        if s.window_geometry:
            self.restoreGeometry(QByteArray.fromHex(s.window_geometry.encode()))
        if s.window_state:
            self.main_split.restoreState(QByteArray.fromHex(s.window_state.encode()))

    def _window_fields(self) -> dict[str, str]:
        return {
            "window_geometry": bytes(self.saveGeometry().toHex().data()).decode(),
            "window_state": bytes(self.main_split.saveState().toHex().data()).decode(),
        }

    # ------------------------------------------------------------------------------ actions
    def set_dark(self, on: bool) -> None:
        self.workspace.settings.theme = "dark" if on else "light"
        apply_theme(self.workspace.settings.theme)
        self.strip.refresh()  # thumbnail frames take the palette's colour

    def open_folder(self) -> bool:
        """Open the gallery folder in the file manager; say where it is when that is not possible."""
        folder = self.workspace.gallery.folder
        if QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            return True
        self.workspace.events.error.emit(
            f"No file manager could be opened on this system. The gallery folder is {folder}"
        )
        return False

    def copy_image(self) -> None:
        view = self.preview if self.tabs.currentIndex() == 0 else self.canvas_panel.live_view
        image = view.image()
        if image is not None:
            QGuiApplication.clipboard().setImage(image)
            self.workspace.events.status.emit("image copied", 2000)

    def save_as(self) -> None:
        ws = self.workspace
        result = ws.live_result if self.tabs.currentIndex() == 1 else ws.prompt_result
        if result is None:
            ws.events.error.emit("Nothing to save yet: generate an image first.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save image", "image.png", "PNG (*.png)")
        if path:
            try:
                save_png(result.image, Path(path).with_suffix(".png"), result.metadata())
            except OSError as exc:
                ws.events.error.emit(f"Cannot save {path}: {exc}")

    def import_sketch(self, path: str | None = None) -> None:
        if self.canvas_panel.import_sketch(path):
            self.tabs.setCurrentIndex(1)

    def draw_stroke(self, points: list[tuple[float, float]]) -> None:
        """Draw a stroke through canvas-image coordinates (self-test and tests)."""
        self.canvas_panel.canvas.stroke([QPointF(x, y) for x, y in points])

    # ------------------------------------------------------------------------------ dialogs
    def open_models(self) -> None:
        """File ▸ Models: one dialog for the window's life, shown again (a closed one is hidden,
        not deleted: a new one each time stayed behind as a hidden child)."""
        if self.models_dialog is None:
            from .models_dialog import ModelManagerDialog

            self.models_dialog = ModelManagerDialog(self)
            self.models_dialog.model_chosen.connect(self.workspace.use_model)
        else:
            self.models_dialog.refresh()
        _show(self.models_dialog)

    def _maybe_offer_gpu(self, gpu: Any) -> None:
        """Offer the GPU runtime once (the first start that finds an NVIDIA GPU)."""
        ws = self.workspace
        if self.offer_gpu and should_offer(
            gpu, ws.settings.gpu_offer_shown, runtime_state(load_runtime_spec())
        ):
            ws.settings.gpu_offer_shown = True
            ws.save_settings()
            self.open_gpu_runtime()

    def open_gpu_runtime(self) -> None:
        """File ▸ GPU acceleration: install (or remove) onnxruntime-gpu and its CUDA libraries. One
        dialog for the window's life, as the Models dialog."""
        if self.gpu_dialog is None:
            gpu = self.gpu_probe.gpu if self.gpu_probe.done else detect_nvidia_gpu()
            try:
                self.gpu_dialog = GpuRuntimeDialog(gpu, parent=self)
            except SprintError as exc:
                self.workspace.events.error.emit(str(exc))
                return
            self.gpu_dialog.installed.connect(self._on_gpu_runtime_installed)
        else:
            self.gpu_dialog.refresh()
        _show(self.gpu_dialog)

    def _on_gpu_runtime_installed(self, site: str) -> None:
        """Run the ONNX backend from now on; it picks the runtime up at the next model load, or at the
        next start when this process has already imported the CPU onnxruntime."""
        ws = self.workspace
        ws.settings.backend = "onnx"
        ws.save_settings()
        if "onnxruntime" in sys.modules:
            ws.events.status.emit("GPU runtime installed: restart Sprint Desktop to use it.", 0)
        else:
            ws.load_model()

    def open_settings(self) -> None:
        from .settings_dialog import SettingsDialog

        gpu = self.gpu_probe.gpu if self.gpu_probe.done else detect_nvidia_gpu()
        dialog = SettingsDialog(self.workspace.settings, self, has_nvidia_gpu=gpu is not None)
        try:
            if dialog.exec():
                settings = dialog.result_settings()
                apply_theme(settings.theme)
                self.dark_action.setChecked(settings.theme == "dark")
                self.workspace.apply_settings(settings)
        finally:
            dialog.deleteLater()  # made anew from the current settings each time

    # ------------------------------------------------------------------------------ window events
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        """A PNG made by this app dropped on the window: its parameters come back (the values no
        control can take are named in one line and left as they are)."""
        urls = event.mimeData().urls()
        if not urls:
            return
        if not urls[0].isLocalFile():
            self.workspace.events.error.emit(
                f"Only a file can be dropped here, not {urls[0].toDisplayString()[:200]}"
            )
            return
        self.workspace.restore_from_file(urls[0].toLocalFile())

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self._wake.stop()
        self.workspace.close(**self._window_fields())
        self.worker.stop(timeout=QUIT_WAIT_S)
        super().closeEvent(event)


def _show(dialog: QWidget) -> None:
    """Show a non-modal dialog, or bring it to the front when it is already open."""
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
