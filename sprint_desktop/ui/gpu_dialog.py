"""The offer to install the GPU runtime (onnxruntime-gpu + CUDA libraries) into the user's data
folder: what was found, what it costs, then install with progress and Stop (the next install
resumes), or remove. The work is `store.gpu_runtime`; nothing here imports onnxruntime or torch."""

from __future__ import annotations

import functools
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
from .thread_job import Report, ThreadJob

# The download size shown before the index is asked (the plan's exact size replaces it).
APPROX_DOWNLOAD_GB = 1.5


class GpuProbe(QObject):
    """Looks for an NVIDIA GPU in a thread (nvidia-smi can take a moment); ``found`` carries the
    `NvidiaGpu` or None, on the GUI thread."""

    found = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.gpu: NvidiaGpu | None = None
        self.done = False
        self.job: ThreadJob | None = None

    def start(self) -> None:
        self.job = ThreadJob(_detect, parent=self, name="sprint-gpu-probe")
        self.job.finished.connect(self._on_found)
        self.job.start()

    def _on_found(self, gpu: NvidiaGpu | None) -> None:
        self.gpu, self.done = gpu, True
        self.found.emit(gpu)


def _detect(cancel: CancelToken, report: Report) -> NvidiaGpu | None:
    try:
        return detect_nvidia_gpu()
    except Exception:  # noqa: BLE001 - detection must never break the app: no GPU then
        return None


def _install(
    spec: gpu_runtime.RuntimeSpec, root: Path, index_url: str | None, cancel: CancelToken, report: Report
) -> str:
    """The install thread's work: plain values in, the site folder out (nothing of the dialog)."""
    return str(
        gpu_runtime.install_runtime(spec, root=root, index_url=index_url, cancel=cancel, progress=report)
    )


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
        self.job: ThreadJob | None = None  # the install, kept until its thread has ended
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
        busy = self.busy
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

    @property
    def busy(self) -> bool:
        """An install runs (or has not delivered its outcome yet)."""
        return self.job is not None and self.job.running

    @property
    def install_thread(self) -> threading.Thread | None:
        return self.job.worker_thread if self.job is not None else None

    def start_install(self) -> None:
        if self.busy:
            return
        if self.job is not None:
            self.job.deleteLater()  # the last install's, ended
        self.job = ThreadJob(
            functools.partial(_install, self.spec, self.root, self.index_url),
            parent=self,
            name="sprint-gpu-install",
        )
        self.job.progress.connect(self._on_progress)
        self.job.finished.connect(self._on_done)
        self.job.failed.connect(self._on_failed)
        self.started = time.monotonic()
        self.install_button.setEnabled(False)
        self.remove_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.progress.show()
        self.status.setText("Asking the package index for the files…")
        self.job.start()

    def stop_install(self) -> None:
        if self.job is not None:
            self.job.cancel.cancel()

    def _on_progress(self, report: tuple[int, int]) -> None:
        done, total = report
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

    def _on_failed(self, exc: BaseException) -> None:
        self._finish()
        if isinstance(exc, SprintError):
            self.status.setText(str(exc))
        else:  # the thread boundary: report, keep the app running
            self.status.setText(
                f"Installing the GPU runtime failed ({type(exc).__name__}: {exc}). "
                "Sprint Desktop keeps working on the CPU."
            )

    def _finish(self) -> None:
        self.stop_button.setEnabled(False)
        self.refresh()

    def remove(self) -> None:
        folder = gpu_runtime.remove_runtime(self.spec, self.root)
        self.progress.setValue(0)
        self.status.setText(f"Removed {folder}; the app uses the CPU from its next start.")
        self.refresh()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop an install and wait (up to ``timeout`` seconds) for its thread to end: what it
        downloaded is on disk and the next install continues from it. A thread still in a slow
        read past that holds nothing of the dialog and ends at its next check."""
        if self.job is not None:
            self.job.stop(timeout)

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)
