"""The offer to install the GPU runtime (onnxruntime-gpu + CUDA libraries) into the user's data
folder: what was found, what it costs, then install with progress and Stop (the next install
resumes), or remove. The work is `store.gpu_runtime`; nothing here imports onnxruntime or torch."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.cancel import CancelToken
from ..core.errors import SprintError
from ..core.nvidia import NvidiaGpu, detect_nvidia_gpu, driver_at_least
from ..store import gpu_runtime

# The download size shown before the index is asked (the plan's exact size replaces it).
APPROX_DOWNLOAD_GB = 1.5


class _InstallSignals(QObject):
    progress = Signal(object, object)  # bytes done, bytes total (Python ints: may exceed 2**31)
    done = Signal(str)
    failed = Signal(str)


class GpuProbe(QObject):
    """Looks for an NVIDIA GPU in a thread (nvidia-smi can take a moment); ``found`` carries the
    `NvidiaGpu` or None."""

    found = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.gpu: NvidiaGpu | None = None
        self.done = False

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            gpu = detect_nvidia_gpu()
        except Exception:  # noqa: BLE001 - detection must never break the app: no GPU then
            gpu = None
        self.gpu, self.done = gpu, True
        with contextlib.suppress(RuntimeError):  # the window closed meanwhile
            self.found.emit(gpu)


def should_offer(gpu: NvidiaGpu | None, already_offered: bool, state: gpu_runtime.RuntimeState) -> bool:
    """Offer once: a GPU is there, it was never offered, and the runtime is not installed."""
    return gpu is not None and not already_offered and state.state != "installed"


class GpuRuntimeDialog(QDialog):
    """``root``/``index_url`` override the install folder and the package index (tests use a
    temporary folder and a loopback index)."""

    installed = Signal(str)  # the site folder

    def __init__(
        self,
        gpu: NvidiaGpu | None,
        spec: gpu_runtime.RuntimeSpec | None = None,
        root: Path | None = None,
        index_url: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("GPU acceleration")
        self.gpu = gpu
        self.spec = spec or gpu_runtime.load_runtime_spec()
        self.root = root or gpu_runtime.runtime_root()
        self.index_url = index_url
        self.cancel: CancelToken | None = None
        self.install_thread: threading.Thread | None = None
        self.signals = _InstallSignals()
        self.signals.progress.connect(self._on_progress)
        self.signals.done.connect(self._on_done)
        self.signals.failed.connect(self._on_failed)
        layout = QVBoxLayout(self)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAccessibleName("offer")
        layout.addWidget(self.message)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("install progress")
        self.progress.setMaximum(1000)
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("install status")
        layout.addWidget(self.status)
        row = QHBoxLayout()
        self.install_button = QPushButton("Install")
        self.stop_button = QPushButton("Stop")
        self.remove_button = QPushButton("Remove")
        self.close_button = QPushButton("Not now")
        for button, slot in (
            (self.install_button, self.start_install),
            (self.stop_button, self.stop_install),
            (self.remove_button, self.remove),
            (self.close_button, self.close),
        ):
            button.clicked.connect(slot)
            row.addWidget(button)
        layout.addLayout(row)
        self.stop_button.setEnabled(False)
        self.refresh()
        self.resize(560, 240)

    def refresh(self) -> None:
        state = gpu_runtime.runtime_state(self.spec, self.root)
        busy = self.install_thread is not None and self.install_thread.is_alive()
        self.message.setText(self._describe(state))
        self.install_button.setText("Reinstall" if state.state == "installed" else "Install")
        driver_ok = self.gpu is not None and driver_at_least(self.gpu.driver, self.spec.min_driver)
        self.install_button.setEnabled(not busy and driver_ok)
        for button in (self.install_button, self.stop_button):
            button.setVisible(self.gpu is not None)  # nothing to install on a computer without one
        self.progress.setVisible(busy or self.progress.value() > 0)  # no empty bar before anything ran
        self.remove_button.setEnabled(not busy and state.state != "missing")
        self.remove_button.setVisible(self.gpu is not None or state.state != "missing")
        self.close_button.setText(
            "Not now" if self.gpu is not None and state.state != "installed" else "Close"
        )

    def _describe(self, state: gpu_runtime.RuntimeState) -> str:
        folder = self.root / self.spec.name
        if self.gpu is None:
            text = (
                "This computer has no NVIDIA GPU (none was found), so GPU acceleration does not apply "
                "here: Sprint Desktop generates on the CPU."
            )
            if state.state != "missing":
                text += f" A GPU runtime installed earlier is in {folder}; Remove frees its disk space."
            return text
        found = f"Sprint Desktop found an NVIDIA GPU: {self.gpu.describe()}."
        if state.state == "installed":
            what = f"{self.spec.title} is installed in {folder} and is used from the next model load."
        else:
            what = (
                f"To generate on it, install {self.spec.title}: about {APPROX_DOWNLOAD_GB:.1f} GB to "
                f"download, about {APPROX_DOWNLOAD_GB * (1 + gpu_runtime.UNPACK_FACTOR):.1f} GB of disk "
                f"while installing, into {folder}. Until then (and if you say no) the app runs on the CPU."
            )
            if state.state in ("partial", "stale") and state.problem:
                what += f" ({state.problem}.)"
        if not driver_at_least(self.gpu.driver, self.spec.min_driver):
            what += (
                f" Your NVIDIA driver {self.gpu.driver} is older than {self.spec.min_driver}, which "
                "this runtime needs: update the driver first (nvidia.com/drivers)."
            )
        return f"{found} {what}"

    def start_install(self) -> None:
        if self.install_thread is not None and self.install_thread.is_alive():
            return
        self.cancel = CancelToken()
        self.started = time.monotonic()
        self.install_button.setEnabled(False)
        self.remove_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.progress.show()
        self.status.setText("Asking the package index for the files…")
        self.install_thread = threading.Thread(target=self._run, args=(self.cancel,), daemon=True)
        self.install_thread.start()

    def _run(self, cancel: CancelToken) -> None:
        try:
            site = gpu_runtime.install_runtime(
                self.spec,
                root=self.root,
                index_url=self.index_url,
                cancel=cancel,
                progress=lambda done, total: self.signals.progress.emit(done, total),
            )
        except SprintError as exc:
            self.signals.failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - the thread boundary: report, keep the app running
            self.signals.failed.emit(
                f"Installing the GPU runtime failed ({type(exc).__name__}: {exc}). "
                "Sprint Desktop keeps working on the CPU."
            )
        else:
            self.signals.done.emit(str(site))

    def stop_install(self) -> None:
        if self.cancel is not None:
            self.cancel.cancel()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setValue(int(1000 * done / total) if total else 0)
        speed = done / max(time.monotonic() - self.started, 1e-6)
        left = (total - done) / speed if speed else 0
        self.status.setText(
            f"{done / 2**20:.1f} of {total / 2**20:.1f} MB · {speed / 2**20:.1f} MB/s · {left:.0f} s left"
        )

    def _on_done(self, site: str) -> None:
        self._finish()
        self.progress.setValue(self.progress.maximum())
        self.status.setText("Installed: the next model load runs on the GPU.")
        self.installed.emit(site)

    def _on_failed(self, message: str) -> None:
        self._finish()
        self.status.setText(message)

    def _finish(self) -> None:
        self.install_thread = None
        self.stop_button.setEnabled(False)
        self.refresh()

    def remove(self) -> None:
        folder = gpu_runtime.remove_runtime(self.spec, self.root)
        self.progress.setValue(0)
        self.status.setText(f"Removed {folder}; the app uses the CPU from its next start.")
        self.refresh()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop an install and wait for its thread, so that no thread emits into a dialog that is
        being destroyed (under load that crashed the test run's event processing)."""
        self.stop_install()
        thread = self.install_thread
        if thread is not None and thread.is_alive():
            thread.join(timeout)

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)
