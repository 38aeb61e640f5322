"""The status bar and the preview: both only show what the workspace announces."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from ..core.request import Timings
from ..workspace import NO_MODEL, ModelState, Workspace
from .qimage import to_qimage
from .widgets import ImageViewWidget

PLACEHOLDERS = {
    "none": NO_MODEL,
    "loading": "Loading model…",
    "ready": "Type a prompt and press Enter",
    "failed": "The model could not be loaded. Choose another in File ▸ Settings.",
}


class StatusBarWidget(QStatusBar):
    """Messages, the model in use, and the last image's time."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_label = QLabel("loading model…")
        self.model_label.setAccessibleName("model")
        self.latency_label = QLabel("")
        self.latency_label.setAccessibleName("time of the last image")
        self.addPermanentWidget(self.model_label)
        self.addPermanentWidget(self.latency_label)
        events = workspace.events
        events.model_changed.connect(lambda state: self.model_label.setText(state.text))
        events.status.connect(self._on_status)
        events.progress.connect(lambda step, total: self.showMessage(f"step {step} of {total}"))
        events.timings.connect(self._on_timings)
        events.error.connect(lambda text: self.showMessage(text, 8000) if text else None)

    def _on_status(self, text: str, ms: int) -> None:
        if text:
            self.showMessage(text, ms)
        else:
            self.clearMessage()

    def _on_timings(self, t: Timings) -> None:
        self.latency_label.setText(
            f"{t.total_ms:.0f} ms (encode {t.encode_ms:.0f} · denoise {t.denoise_ms:.0f} · decode {t.decode_ms:.0f})"
        )


class PreviewWidget(ImageViewWidget):
    """The prompt's image; its placeholder says what the model is doing."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(PLACEHOLDERS["loading"], parent)
        workspace.events.prompt_image.connect(
            lambda image: self.set_image(None if image is None else to_qimage(image))
        )
        workspace.events.model_changed.connect(self._on_model)

    def _on_model(self, state: ModelState) -> None:
        text = PLACEHOLDERS[state.phase]
        if state.phase == "loading" and not state.text.startswith("loading model"):
            text = f"Loading model… {state.text}"  # a step of a long load (the ONNX export)
        self.set_placeholder(text)
