"""File ▸ Settings: model, backend, device, output folder, theme, live-mode timing."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ..core.settings import DEVICES, THEMES, Settings


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._settings = settings
        form = QFormLayout(self)
        self.model = QLineEdit(settings.model)
        self.model.setPlaceholderText("the embedded Sprint-Shapes model")
        self.model.setAccessibleName("model folder")
        form.addRow("Model folder", self._with_browse(self.model, folder=True))
        self.backend = QComboBox()
        self.backend.addItem("Automatic", "auto")
        self.backend.addItem("PyTorch", "torch")
        self.backend.addItem("ONNX Runtime", "onnx")
        self.backend.setCurrentIndex(max(0, self.backend.findData(settings.backend)))
        self.backend.setToolTip(
            "Automatic: ONNX Runtime when the model has an ONNX export (fastest start), else PyTorch. "
            "ONNX Runtime runs an export of the model (made on first use, then cached)"
        )
        form.addRow("Backend", self.backend)
        self.device = QComboBox()
        self.device.addItems(list(DEVICES))
        self.device.setCurrentText(settings.device)
        form.addRow("Device", self.device)
        self.output = QLineEdit(settings.output_dir)
        self.output.setPlaceholderText("the app's data folder")
        form.addRow("Gallery folder", self._with_browse(self.output, folder=True))
        self.theme = QComboBox()
        self.theme.addItems(list(THEMES))
        self.theme.setCurrentText(settings.theme)
        form.addRow("Theme", self.theme)
        self.debounce = QSpinBox(minimum=0, maximum=5000, value=settings.live_debounce_ms, suffix=" ms")
        self.debounce.setToolTip(
            "Only when images take long: the longest wait after the first stroke before a live image"
        )
        form.addRow("Live debounce", self.debounce)
        self.refine = QCheckBox("Refine when I pause")
        self.refine.setChecked(settings.refine)
        self.refine.setToolTip(
            "Show a 1-step image at once, then, when you stop drawing or typing for a moment, redo the "
            "same image at the model's best step count (any new input cancels it)"
        )
        form.addRow("Instant, then refine", self.refine)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _with_browse(self, line: QLineEdit, folder: bool) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(line)
        browse = QPushButton("Browse…")
        browse.clicked.connect(lambda: self._browse(line))
        row.addWidget(browse)
        return box

    def _browse(self, line: QLineEdit) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a folder", line.text())
        if path:
            line.setText(path)

    def result_settings(self) -> Settings:
        return replace(
            self._settings,
            model=self.model.text().strip(),
            backend=self.backend.currentData(),
            device=self.device.currentText(),
            output_dir=self.output.text().strip(),
            theme=self.theme.currentText(),
            live_debounce_ms=self.debounce.value(),
            refine=self.refine.isChecked(),
        ).validated()
