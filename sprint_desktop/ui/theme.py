"""Light and dark themes (Fusion style with a palette), applied to the whole application."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication


def apply_theme(theme: str) -> None:
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        return
    app.setStyle("Fusion")
    if theme != "dark":
        app.setPalette(app.style().standardPalette())
        return
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#2b2b2b",
        QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1f1f1f",
        QPalette.ColorRole.AlternateBase: "#2b2b2b",
        QPalette.ColorRole.Text: "#e6e6e6",
        QPalette.ColorRole.Button: "#353535",
        QPalette.ColorRole.ButtonText: "#e6e6e6",
        QPalette.ColorRole.Highlight: "#3d7bd9",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#353535",
        QPalette.ColorRole.ToolTipText: "#e6e6e6",
        QPalette.ColorRole.PlaceholderText: "#8a8a8a",
        QPalette.ColorRole.Link: "#7fb2ff",  # the default dark blue is unreadable on #2b2b2b
        QPalette.ColorRole.LinkVisited: "#b99cff",
    }
    for role, color in roles.items():
        p.setColor(role, QColor(color))
    # Disabled controls must look disabled: dim text and buttons (the active colours are the default).
    disabled = {
        QPalette.ColorRole.WindowText: "#7a7a7a",
        QPalette.ColorRole.Text: "#7a7a7a",
        QPalette.ColorRole.ButtonText: "#7a7a7a",
        QPalette.ColorRole.Button: "#2e2e2e",
        QPalette.ColorRole.Base: "#262626",
        QPalette.ColorRole.Highlight: "#505050",
    }
    for role, color in disabled.items():
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(color))
    app.setPalette(p)
