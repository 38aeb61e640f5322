"""Entry point of the frozen app (PyInstaller needs a script; the app is `sprint_desktop.ui.app`)."""

import sys

from sprint_desktop.ui.app import main

if __name__ == "__main__":
    sys.exit(main())
