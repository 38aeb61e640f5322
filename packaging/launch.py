"""Entry point of the frozen app (PyInstaller needs a script; the app is `sprint_desktop.ui.app`).

The GPU runtime installed on first use is activated before PySide6 is imported: on Windows its
CUDA/cuDNN DLLs must be loaded before Qt's (MISSION.md: import the GPU stack before Qt)."""

import sys

from sprint_desktop.store.gpu_runtime import preload_before_qt

preload_before_qt()

from sprint_desktop.ui.app import main  # noqa: E402 - after the GPU runtime, on purpose

if __name__ == "__main__":
    sys.exit(main())
