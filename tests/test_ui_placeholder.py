from __future__ import annotations

import pytest

pytest.importorskip("PySide6")


def test_placeholder_window_opens_offscreen():
    from PySide6.QtWidgets import QApplication, QLabel

    from sprint_desktop.ui.app import PlaceholderWindow

    app = QApplication.instance() or QApplication([])
    window = PlaceholderWindow()
    window.show()
    app.processEvents()
    assert window.windowTitle() == "Sprint Desktop"
    label = window.centralWidget()
    assert isinstance(label, QLabel) and "sprint generate" in label.text()
    window.close()
