"""File ▸ Models: the catalog with each model's state, download with progress and stop (the next
download resumes), remove, and "use this model"."""

from __future__ import annotations

import threading
import time
from typing import Any

from PySide6.QtCore import QObject, Signal
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


class _DownloadSignals(QObject):
    progress = Signal(int, int)
    done = Signal(str)
    failed = Signal(str)


class ModelManagerDialog(QDialog):
    """Shows the catalog; ``endpoint`` overrides the hub address (tests use a loopback hub)."""

    model_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None, endpoint: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.endpoint = endpoint
        self.entries = store.load_catalog()
        self.cancel: CancelToken | None = None
        self.download_thread: threading.Thread | None = None
        self.signals = _DownloadSignals()
        self.signals.progress.connect(self._on_progress)
        self.signals.done.connect(self._on_done)
        self.signals.failed.connect(self._on_failed)
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
        busy = self.download_thread is not None and self.download_thread.is_alive()
        hub = entry.kind == "hub"
        self.download_button.setEnabled(hub and not busy and state != "installed")
        self.remove_button.setEnabled(hub and not busy and state != "missing")
        self.use_button.setEnabled(state == "installed")
        if self.confirming != entry.name:
            self.confirming = None
            self.download_button.setText("Download")

    def start_download(self) -> None:
        entry = self.selected()
        if self.download_thread is not None and self.download_thread.is_alive():
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
        self.cancel = CancelToken()
        self.started = time.monotonic()
        self.download_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText(f"Downloading {entry.title}…")
        self.download_thread = threading.Thread(target=self._run, args=(entry, self.cancel), daemon=True)
        self.download_thread.start()

    def _run(self, entry: store.CatalogEntry, cancel: CancelToken) -> None:
        from ..store.download import download

        try:
            folder = download(
                entry,
                endpoint=self.endpoint,
                cancel=cancel,
                progress=lambda done, total: self.signals.progress.emit(done, total),
            )
        except SprintError as exc:
            self.signals.failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - the thread boundary
            self.signals.failed.emit(f"the download failed: {type(exc).__name__}: {exc}")
        else:
            self.signals.done.emit(str(folder))

    def stop_download(self) -> None:
        if self.cancel is not None:
            self.cancel.cancel()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        speed = done / max(time.monotonic() - self.started, 1e-6)
        left = (total - done) / speed if speed else 0
        self.status.setText(
            f"{done / 2**20:.1f} of {total / 2**20:.1f} MB · {speed / 2**20:.1f} MB/s · {left:.0f} s left"
        )

    def _on_done(self, folder: str) -> None:
        self._finish()
        self.progress.setValue(self.progress.maximum())
        self.status.setText(f"Ready for offline use: {folder}")

    def _on_failed(self, message: str) -> None:
        self._finish()
        self.status.setText(message)

    def _finish(self) -> None:
        self.download_thread = None
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
        self.stop_download()
        super().closeEvent(event)
