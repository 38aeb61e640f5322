"""`sprint-desktop`: the GUI entry point.

For now a placeholder window that says where the app stands and how to generate from the command
line; the real window (prompt box, worker thread, live canvas, gallery) is the GUI issue's work.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

from .. import __version__
from ..core.paths import default_model_path

PLACEHOLDER_TEXT = (
    "<h2>Sprint Desktop {version}</h2>"
    "<p>The desktop window is being built. Until it lands, generate from a terminal:</p>"
    '<pre>sprint generate "a red circle left of a blue square" -o out.png</pre>'
    "<p>Model: {model}</p>"
)


class PlaceholderWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("Sprint Desktop")
        model = default_model_path()
        label = QLabel(PLACEHOLDER_TEXT.format(version=__version__, model=model or "none installed yet"))
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setWordWrap(True)
        label.setAccessibleName("status")
        self.setCentralWidget(label)
        self.resize(640, 360)


def main(argv: Sequence[str] | None = None) -> int:
    app = QApplication.instance() or QApplication(list(argv if argv is not None else sys.argv))
    window = PlaceholderWindow()
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
