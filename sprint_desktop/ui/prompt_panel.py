"""The prompt panel: prompt, what the model knows, sampling parameters, Generate and Keep."""

from __future__ import annotations

import html

from PySide6.QtCore import QRegularExpression, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ..core.vocabulary import Vocabulary
from ..workspace import ModelState, Params, Workspace

TYPE_PAUSE_MS = 400
"""With "Generate as you type", how long after the last key the image is made."""


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


def _wrapped_label(name: str, style: str = "") -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setAccessibleName(name)
    if style:
        label.setStyleSheet(style)
    label.hide()
    return label


class PromptPanel(QWidget):
    """Binds to a `Workspace`: widgets show its `Params` and send every edit to `set_params`."""

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        self._type_timer = QTimer(self, singleShot=True, interval=TYPE_PAUSE_MS)
        self._type_timer.timeout.connect(self.ws.generate)
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_prompt())
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self._build_parameters(form)
        layout.addLayout(form)
        layout.addLayout(self._build_buttons())
        self.error_label = _wrapped_label("error message", "color: #c0392b")
        layout.addWidget(self.error_label)
        layout.addStretch(1)
        self._bind()
        self.show_params(workspace.params)

    # ------------------------------------------------------------------------------ building
    def _build_prompt(self) -> QVBoxLayout:
        box = QVBoxLayout()
        self.prompt = PromptEdit()
        self.prompt.setPlaceholderText("Describe an image, then press Enter")
        self.prompt.setAccessibleName("prompt")
        self.prompt.setToolTip("Enter generates; Shift+Enter starts a new line")
        self.prompt.setMaximumHeight(90)
        self.prompt.submitted.connect(self.ws.generate)
        self.prompt.textChanged.connect(self._on_text)
        box.addWidget(self.prompt)
        self.hint = _wrapped_label("prompt hint", "color: #b9770e")
        box.addWidget(self.hint)
        self.examples = _wrapped_label("example prompts")
        self.examples.setTextFormat(Qt.TextFormat.RichText)
        self.examples.linkActivated.connect(self._on_link)
        box.addWidget(self.examples)
        self.words = _wrapped_label("words the model knows")
        box.addWidget(self.words)
        self.as_you_type = QCheckBox("Generate as you type")
        self.as_you_type.setToolTip("Generate a short moment after you stop typing")
        box.addWidget(self.as_you_type)
        return box

    def _build_parameters(self, form: QFormLayout) -> None:
        self.steps = QSlider(Qt.Orientation.Horizontal)
        self.steps.setRange(1, 4)
        self.steps.setPageStep(1)
        self.steps.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.steps.setAccessibleName("steps")
        self.steps.setToolTip("Sampling steps: 1 is fastest, 4 adds detail")
        self.steps.valueChanged.connect(lambda v: self.ws.set_params(steps=v))
        self.steps_label = QLabel()
        form.addRow("Steps", _row(self.steps, self.steps_label))
        self.seed = QLineEdit()
        self.seed.setValidator(QRegularExpressionValidator(QRegularExpression(r"\d{1,18}"), self.seed))
        self.seed.setAccessibleName("seed")
        self.seed.setToolTip(
            "The noise the image starts from: the same seed and settings give the same image"
        )
        self.seed.editingFinished.connect(self._on_seed_edited)
        self.seed_mode = QComboBox()
        self.seed_mode.addItem("random", "random")
        self.seed_mode.addItem("fixed", "fixed")
        self.seed_mode.setToolTip("random: a new seed for every image; fixed: keep this seed")
        self.seed_mode.setAccessibleName("seed mode")
        self.seed_mode.currentIndexChanged.connect(
            lambda: self.ws.set_params(seed_mode=self.seed_mode.currentData())
        )
        new_seed = _button("New", "A new random seed (Ctrl+R)", self.ws.new_seed)
        reuse = _button("Reuse", "Use the seed of the image shown, and keep it fixed", self.ws.reuse_seed)
        form.addRow("Seed", _row(self.seed, self.seed_mode))
        form.addRow("", _row(new_seed, reuse))
        self.guidance = QDoubleSpinBox(minimum=0.0, maximum=20.0, singleStep=0.5, decimals=1)
        self.guidance.setAccessibleName("guidance")
        self.guidance.setToolTip("How closely the image follows the prompt")
        self.guidance.valueChanged.connect(lambda v: self.ws.set_params(guidance=v))
        form.addRow("Guidance", self.guidance)
        self.size_combo = QComboBox()
        self.size_combo.setAccessibleName("size")
        self.size_combo.setToolTip("Image sizes this model supports")
        self.size_combo.currentIndexChanged.connect(self._on_size)
        form.addRow("Size", self.size_combo)

    def _build_buttons(self) -> QHBoxLayout:
        self.generate_button = _button(
            "Generate", "Generate (Enter in the prompt, or Ctrl+Enter)", self.ws.generate
        )
        self.generate_button.setDefault(True)
        self.generate_button.setEnabled(False)
        self.keep_button = _button(
            "Keep", "Keep the image on screen in the gallery below (Ctrl+K)", self.ws.keep
        )
        return _row_layout(self.generate_button, self.keep_button)

    # ------------------------------------------------------------------------------ binding
    def _bind(self) -> None:
        events = self.ws.events
        events.params_changed.connect(self.show_params)
        events.model_changed.connect(self._on_model)
        events.hint.connect(lambda text: _show(self.hint, text))
        events.error.connect(lambda text: _show(self.error_label, text))

    def show_params(self, params: Params) -> None:
        """Put ``params`` into the widgets without sending them back."""
        widgets = (self.prompt, self.steps, self.seed, self.seed_mode, self.guidance, self.size_combo)
        for widget in widgets:
            widget.blockSignals(True)
        if self.prompt.toPlainText() != params.prompt:
            self.prompt.setPlainText(params.prompt)
        self.steps.setValue(params.steps)
        self.steps_label.setText(f"{params.steps} step{'s' if params.steps > 1 else ''}")
        if self.seed.text() != str(params.seed):
            self.seed.setText(str(params.seed))
        self.seed_mode.setCurrentIndex(max(0, self.seed_mode.findData(params.seed_mode)))
        self.guidance.setValue(params.guidance)
        index = self.size_combo.findData((params.width, params.height))
        if index >= 0:
            self.size_combo.setCurrentIndex(index)
        for widget in widgets:
            widget.blockSignals(False)

    def _on_model(self, state: ModelState) -> None:
        self.generate_button.setEnabled(state.phase == "ready")
        if state.phase != "ready":
            return
        self.size_combo.blockSignals(True)
        self.size_combo.clear()
        for w, h in self.ws.size_presets():
            self.size_combo.addItem(f"{w} × {h}", (w, h))
        self.size_combo.blockSignals(False)
        self.show_params(self.ws.params)
        self.show_vocabulary(self.ws.vocabulary)

    def show_vocabulary(self, vocabulary: Vocabulary | None) -> None:
        """Example prompts as links, and a link to the model's word list when it has one."""
        self.words.hide()
        if vocabulary is None or not (vocabulary.examples or vocabulary.words):
            self.examples.hide()
            return
        links = [f'<a href="example:{html.escape(p)}">{html.escape(p)}</a>' for p in vocabulary.examples]
        text = "This model draws what it was trained on. Try: " + " · ".join(links)
        if vocabulary.words:
            text += ' · <a href="words:">the words it knows</a>'
        self.examples.setText(text)
        self.examples.show()
        if vocabulary.words:
            limit = f" It reads up to {vocabulary.max_words} words." if vocabulary.max_words else ""
            self.words.setText("Words it knows: " + ", ".join(sorted(vocabulary.words)) + "." + limit)

    def _on_link(self, link: str) -> None:
        kind, _, value = link.partition(":")
        if kind == "example":
            self.ws.set_params(prompt=html.unescape(value))
        elif kind == "words":
            self.words.setVisible(not self.words.isVisible())

    def _on_text(self) -> None:
        self.ws.set_params(prompt=self.prompt.toPlainText())
        if self.as_you_type.isChecked() and self.ws.info is not None:
            self._type_timer.start()

    def _on_seed_edited(self) -> None:
        text = self.seed.text()
        if text.isdigit():
            self.ws.set_params(seed=int(text))
        else:
            self.seed.setText(str(self.ws.params.seed))

    def _on_size(self) -> None:
        size = self.size_combo.currentData()
        if size:
            self.ws.set_params(width=size[0], height=size[1])


def _show(label: QLabel, text: str) -> None:
    label.setText(text)
    label.setVisible(bool(text))


def _button(text: str, tip: str, slot: object) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    button.clicked.connect(slot)
    return button


def _row_layout(*widgets: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    for widget in widgets:
        row.addWidget(widget)
    return row


def _row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    row = _row_layout(*widgets)
    row.setContentsMargins(0, 0, 0, 0)
    box.setLayout(row)
    return box
