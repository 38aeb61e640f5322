"""File ▸ Settings: model, backend, device, compiling (PyTorch), gallery folder, theme, start-up and
live-canvas timing."""

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

from ..core.settings import COMPILE_MODES, THEMES, Settings

DEVICE_LABELS = {
    "auto": "automatic (the GPU when there is one)",
    "cpu": "CPU",
    "cuda": "NVIDIA GPU (CUDA)",
}


COMPILE_LABELS = {
    "off": "Off",
    "default": "On: faster images after a slow first one",
    "reduce-overhead": "On, with CUDA graphs (NVIDIA GPU: fastest)",
}
COMPILE_TIP = (
    "PyTorch only (ONNX Runtime ignores it): torch.compile makes kernels for this computer when the "
    "first image is made (a minute or more; again for a new image size), then images come faster. "
    "The compiled code is kept in the app's cache folder, so the next launch compiles in seconds. "
    "CUDA graphs cut the GPU's launch overhead further; on the CPU they are left out"
)


def devices_to_offer(current: str, has_nvidia_gpu: bool | None) -> list[str]:
    """The devices this machine has: "cuda" only with an NVIDIA GPU (or while it is the setting,
    so that opening the dialog does not change it behind the user's back)."""
    devices = ["auto", "cpu"]
    if has_nvidia_gpu or current == "cuda":
        devices.append("cuda")
    return devices


class SettingsDialog(QDialog):
    """``has_nvidia_gpu``: whether the GPU probe found one (None: not known yet, treated as no)."""

    def __init__(
        self, settings: Settings, parent: QWidget | None = None, has_nvidia_gpu: bool | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._settings = settings
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.model = self._line(settings.model, "the embedded Sprint-Shapes model", "model folder")
        form.addRow("Model folder", self._with_browse(self.model))
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
        self.device.setAccessibleName("device")
        for name in devices_to_offer(settings.device, has_nvidia_gpu):
            label = DEVICE_LABELS[name]
            if name == "cuda" and not has_nvidia_gpu:
                label += " — not found on this computer"
            self.device.addItem(label, name)
        self.device.setCurrentIndex(max(0, self.device.findData(settings.device)))
        form.addRow("Device", self.device)
        self.compile = QComboBox()
        self.compile.setAccessibleName("compile")
        for name in COMPILE_MODES:
            self.compile.addItem(COMPILE_LABELS[name], name)
        self.compile.setCurrentIndex(max(0, self.compile.findData(settings.compile)))
        self.compile.setToolTip(COMPILE_TIP)
        form.addRow("Compile (PyTorch)", self.compile)
        self.backend.currentIndexChanged.connect(self._offer_compile)
        self._offer_compile()
        self.output = self._line(settings.output_dir, "the app's data folder", "gallery folder")
        form.addRow("Gallery folder", self._with_browse(self.output))
        self.theme = QComboBox()
        self.theme.addItems(list(THEMES))
        self.theme.setCurrentText(settings.theme)
        form.addRow("Theme", self.theme)
        self.generate_on_start = QCheckBox("Make the last prompt's image again when the app starts")
        self.generate_on_start.setChecked(settings.generate_on_start)
        form.addRow("At start", self.generate_on_start)
        self.refine = QCheckBox("Show a quick image at once, then a finer one when I pause")
        self.refine.setChecked(settings.refine)
        self.refine.setToolTip(
            "Instant, then refine: a 1-step image at once, then, when you stop drawing or typing for a "
            "moment, the same image at the model's best step count (any new input cancels it)"
        )
        form.addRow("Live canvas", self.refine)
        self.debounce = QSpinBox(minimum=0, maximum=5000, value=settings.live_debounce_ms, suffix=" ms")
        self.debounce.setToolTip(
            "Only when images take long to make: how long the live canvas waits after your first "
            "stroke before it starts one"
        )
        form.addRow("Live canvas: wait on a slow computer", self.debounce)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _offer_compile(self) -> None:
        """Compiling is the PyTorch engine's: not offered while ONNX Runtime is chosen."""
        self.compile.setEnabled(self.backend.currentData() != "onnx")

    @staticmethod
    def _line(text: str, placeholder: str, name: str) -> QLineEdit:
        """A text field wide enough for its placeholder."""
        line = QLineEdit(text)
        line.setPlaceholderText(placeholder)
        line.setAccessibleName(name)
        line.setMinimumWidth(line.fontMetrics().horizontalAdvance(placeholder) + 24)
        return line

    def _with_browse(self, line: QLineEdit) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(line, 1)
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
            device=self.device.currentData(),
            compile=self.compile.currentData(),
            output_dir=self.output.text().strip(),
            theme=self.theme.currentText(),
            generate_on_start=self.generate_on_start.isChecked(),
            live_debounce_ms=self.debounce.value(),
            refine=self.refine.isChecked(),
        ).validated()
