"""File ▸ Models: the catalog with each model's state, download with progress and stop (the next
download resumes), remove, and "use this model"."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.cancel import CancelToken
from ..core.errors import SprintError
from ..store import catalog as store
from .thread_job import Report, ThreadJob


def _download(entry: store.CatalogEntry, endpoint: str | None, cancel: CancelToken, report: Report) -> Path:
    """The download thread's work: plain values in, the model folder out (nothing of the dialog)."""
    from ..store.download import download

    return download(entry, endpoint=endpoint, cancel=cancel, progress=report)


class ModelManagerDialog(QDialog):
    """Shows the catalog; ``endpoint`` overrides the hub address (tests use a loopback hub)."""

    model_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None, endpoint: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.endpoint = endpoint
        self.entries = store.load_catalog()
        self.job: ThreadJob | None = None  # the download, kept until its thread has ended
        self.measured_from: tuple[float, int] | None = None  # (time, bytes) of the download's first report
        layout = QVBoxLayout(self)
        self.table = QTableWidget(len(self.entries), 5)
        self.table.setHorizontalHeaderLabels(["Model", "State", "On disk", "Download", "Licence"])
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setAccessibleName("models")
        layout.addWidget(self.table)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("download progress")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        row = QHBoxLayout()
        self.download_button = QPushButton("Download")
        self.stop_button = QPushButton("Stop")
        self.remove_button = QPushButton("Remove")
        self.use_button = QPushButton("Use this model")
        for b, slot in (
            (self.download_button, self.start_download),
            (self.stop_button, self.stop_download),
            (self.remove_button, self.remove_selected),
            (self.use_button, self.use_selected),
        ):
            b.clicked.connect(slot)
            row.addWidget(b)
        layout.addLayout(row)
        self.stop_button.setEnabled(False)
        self.confirming: str | None = None  # the model whose licence is shown, awaiting a yes
        self.table.itemSelectionChanged.connect(self.update_buttons)
        self.refresh()
        self.table.selectRow(0)
        self.resize(760, 320)

    def selected(self) -> store.CatalogEntry:
        return self.entries[max(0, self.table.currentRow())]

    def refresh(self) -> None:
        for i, entry in enumerate(self.entries):
            state = store.state_of(entry)
            cells = [
                entry.title,
                state.state + (f" ({state.problem})" if state.problem else ""),
                f"{state.size_bytes / 2**20:.1f} MB",
                f"{entry.download_gb:.2f} GB",
                entry.license,
            ]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if j == 4:
                    item.setToolTip(entry.license_url)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        self.update_buttons()

    def update_buttons(self) -> None:
        """Only what applies to the selected model is enabled (nothing to download or remove for
        the model that ships with the app)."""
        entry = self.selected()
        state = store.state_of(entry).state
        busy = self.busy
        hub = entry.kind == "hub"
        self.download_button.setEnabled(hub and not busy and state != "installed")
        self.remove_button.setEnabled(hub and not busy and state != "missing")
        self.use_button.setEnabled(state == "installed")
        if self.confirming != entry.name:
            self.confirming = None
            self.download_button.setText("Download")

    @property
    def busy(self) -> bool:
        """A download runs (or has not delivered its outcome yet)."""
        return self.job is not None and self.job.running

    def start_download(self) -> None:
        entry = self.selected()
        if self.busy:
            return
        if entry.kind != "hub":
            self.status.setText(f"{entry.title} ships with the app: nothing to download.")
            return
        if self.confirming != entry.name and store.state_of(entry).state == "missing":
            self.confirming = entry.name  # a first download: licence and size first, then a second click
            self.download_button.setText("Accept and download")
            self.status.setText(
                f"{entry.title} is about {entry.download_gb:.2f} GB to download and comes under the "
                f"{entry.license} licence ({entry.license_url}). Press “Accept and download” to agree "
                "to it and start."
            )
            return
        self.confirming = None
        self.download_button.setText("Download")
        if self.job is not None:
            self.job.deleteLater()  # the last download's, ended
        self.job = ThreadJob(
            functools.partial(_download, entry, self.endpoint), parent=self, name="sprint-model-download"
        )
        self.job.progress.connect(self._on_progress)
        self.job.finished.connect(self._on_done)
        self.job.failed.connect(self._on_failed)
        self.measured_from = None
        self.download_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText(f"Downloading {entry.title}…")
        self.job.start()

    def stop_download(self) -> None:
        if self.job is not None:
            self.job.cancel.cancel()

    def _on_progress(self, report: tuple[int, int]) -> None:
        done, total = report
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        now = time.monotonic()
        if self.measured_from is None:  # a resumed download starts with the bytes it kept: not speed
            self.measured_from = (now, done)
        since, before = self.measured_from
        text = f"{done / 2**20:.1f} of {total / 2**20:.1f} MB"
        if done > before and now > since:
            speed = (done - before) / (now - since)
            text += f" · {speed / 2**20:.1f} MB/s · {(total - done) / speed:.0f} s left"
        self.status.setText(text)

    def _on_done(self, folder: Path) -> None:
        self._finish()
        self.progress.setValue(self.progress.maximum())
        self.status.setText(f"Ready for offline use: {folder}")

    def _on_failed(self, exc: BaseException) -> None:
        self._finish()
        if isinstance(exc, SprintError):
            self.status.setText(str(exc))
        else:  # the thread boundary
            self.status.setText(f"the download failed: {type(exc).__name__}: {exc}")

    def _finish(self) -> None:
        self.stop_button.setEnabled(False)
        self.refresh()

    def remove_selected(self) -> None:
        try:
            folder = store.remove(self.selected())
        except SprintError as exc:
            self.status.setText(str(exc))
            return
        self.status.setText(f"Removed {folder}")
        self.refresh()

    def use_selected(self) -> None:
        entry = self.selected()
        state = store.state_of(entry)
        if state.state != "installed":
            self.status.setText(f"{entry.title} is {state.state}: download it first.")
            return
        self.model_chosen.emit(str(state.folder))

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        """Stop a download without waiting (a chunk of a slow download can take long): its thread
        holds nothing of the dialog, which shows "stopped" when it ends; finished files are kept."""
        self.stop_download()
        super().closeEvent(event)
