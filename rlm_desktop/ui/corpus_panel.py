"""The corpus panel: the documents of this investigation, how they were read, and adding more.

Ingestion runs through `run_in_background`; its progress callback fires on the worker thread
and reaches the progress bar through a queued signal.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from rlm_desktop.corpus.document import Document
from rlm_desktop.corpus.ingest import IngestResult, Progress, SourceFile, ingest
from rlm_desktop.ui.bridge import run_in_background
from rlm_desktop.ui.icons import document_icon
from rlm_desktop.ui.richtext import tooltip

COLUMNS = ("Kind", "Name", "Content", "Size", "Status")
KIND, NAME, CONTENT, SIZE, STATUS = range(len(COLUMNS))
ERROR_COLOR = QColor("#c62828")
CHARS_PER_TOKEN = 4  # the rough estimate the CLI uses too


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def content_of(file: SourceFile) -> str:
    """Pages, messages or lines: what a person counts in this kind of file."""
    if file.error is not None:
        return ""
    if file.pages is not None:
        return plural(file.pages, "page")
    if file.messages is not None:
        return plural(file.messages, "message")
    if file.format == "zip":
        return plural(len(file.documents), "document")
    return plural(file.lines, "line")


class _ProgressRelay(QObject):
    """Lives on the GUI thread; the ingest worker emits, the queued connection delivers."""

    progressed = Signal(object)


class CorpusPanel(QWidget):
    """Lists every file read (or failed), with a summary line and the add/cancel controls."""

    ingestionStarted = Signal()
    ingestionFinished = Signal(object)   # IngestResult of this batch
    documentsChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._files: list[SourceFile] = []
        self._cancel: threading.Event | None = None
        self._relay = _ProgressRelay(self)
        self._relay.progressed.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)

        title = QLabel("<b>Documents</b>")
        self.list = QTreeWidget()
        self.list.setHeaderLabels(COLUMNS)
        self.list.setRootIsDecorated(False)
        self.list.setUniformRowHeights(True)
        self.list.setAlternatingRowColors(True)
        self.list.setSelectionMode(QTreeWidget.SelectionMode.ExtendedSelection)
        header = self.list.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        for column in (KIND, CONTENT, SIZE, STATUS):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.summary = QLabel("No documents yet: add files or drop them on the window.")
        self.summary.setWordWrap(True)

        self.add_files_button = QPushButton("Add files…")
        self.add_folder_button = QPushButton("Add folder…")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected documents from this investigation")
        self.remove_button.setEnabled(False)
        self.add_files_button.clicked.connect(self.choose_files)
        self.add_folder_button.clicked.connect(self.choose_folder)
        self.remove_button.clicked.connect(self.remove_selected)
        self.list.itemSelectionChanged.connect(self._update_buttons)

        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress_label = QLabel()
        self.progress_label.setWordWrap(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_ingestion)
        self._progress_row = QWidget()
        row = QHBoxLayout(self._progress_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        self._progress_row.hide()
        self.progress_label.hide()

        buttons = QHBoxLayout()
        buttons.addWidget(self.add_files_button)
        buttons.addWidget(self.add_folder_button)
        buttons.addStretch(1)
        buttons.addWidget(self.remove_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        layout.addLayout(buttons)
        layout.addWidget(self.list, 1)
        layout.addWidget(self._progress_row)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.summary)

    # -- what the window asks --------------------------------------------------------------

    @property
    def files(self) -> list[SourceFile]:
        return list(self._files)

    def documents(self) -> list[Document]:
        return [doc for file in self._files for doc in file.documents]

    def is_ingesting(self) -> bool:
        return self._cancel is not None

    # -- adding ---------------------------------------------------------------------------

    @Slot()
    def choose_files(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(
            self, "Add files", "",
            "Documents (*.pdf *.docx *.mbox *.eml *.msg *.log *.txt *.md *.csv *.json *.zip);;"
            "All files (*)")
        if names:
            self.add_paths(names)

    @Slot()
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add folder")
        if folder:
            self.add_paths([folder])

    def add_paths(self, paths: Sequence[str]) -> bool:
        """Read these files or folders in the background; False while another batch runs."""
        if self._cancel is not None or not paths:
            return False
        cancel = threading.Event()
        self._cancel = cancel
        relay = self._relay
        inputs = [str(p) for p in paths]
        self.progress.setRange(0, 0)
        self.progress.setFormat("Starting…")
        self.progress_label.setText("Looking for files…")
        self._progress_row.show()
        self.progress_label.show()
        self.cancel_button.setEnabled(True)
        self.ingestionStarted.emit()

        def op() -> IngestResult:    # worker thread: compute only, never touch widgets
            return ingest(inputs, progress=relay.progressed.emit, cancel=cancel)

        run_in_background(op, self._on_ingested, self._on_ingest_failed, name="rlm-ingest")
        return True

    @Slot()
    def cancel_ingestion(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.cancel_button.setEnabled(False)
            self.progress_label.setText("Cancelling…")

    @Slot()
    def remove_selected(self) -> None:
        rows = sorted({self.list.indexOfTopLevelItem(i) for i in self.list.selectedItems()},
                      reverse=True)
        for row in rows:
            del self._files[row]
            self.list.takeTopLevelItem(row)
        self._update_summary()
        self.documentsChanged.emit()

    def _update_buttons(self) -> None:
        self.remove_button.setEnabled(bool(self.list.selectedItems()) and not self._cancel)

    @Slot(object)
    def _on_progress(self, progress: Progress) -> None:
        if self._cancel is None:
            return     # a late report of a batch that already ended
        total = max(progress.bytes_total, 1)
        # The bar counts bytes (a big PDF takes longer than a small log); the text says both.
        scale = 1024 if total > 2**31 - 1 else 1
        self.progress.setRange(0, total // scale)
        self.progress.setValue(progress.bytes_done // scale)
        self.progress.setFormat(
            f"{progress.files_done:,}/{progress.files_total:,} files · "
            f"{human_size(progress.bytes_done)} of {human_size(progress.bytes_total)}")
        current = Path(progress.current).name if progress.current else ""
        errors = f" · {plural(progress.errors, 'error')}" if progress.errors else ""
        self.progress_label.setText(f"Reading {current}{errors}" if current else errors)

    def _on_ingested(self, result: IngestResult) -> None:
        self._end_ingestion()
        known = {file.path for file in self._files}
        fresh = [file for file in result.files if file.path not in known]
        self._files.extend(fresh)
        self._add_rows(fresh)
        self._update_summary(cancelled=result.cancelled)
        self.documentsChanged.emit()
        self.ingestionFinished.emit(result)

    def _on_ingest_failed(self, error: BaseException, details: str) -> None:
        self._end_ingestion()
        self.ingestionFinished.emit(IngestResult([], cancelled=True))
        raise RuntimeError(f"reading the documents failed: {error}\n{details}")

    def _end_ingestion(self) -> None:
        self._cancel = None
        self._progress_row.hide()
        self.progress_label.hide()
        self._update_buttons()

    def _add_rows(self, files: Iterable[SourceFile]) -> None:
        for file in files:
            failed = file.error is not None
            status = f"✗ {file.error}" if failed else ("✓ read" + (
                f" ({plural(len(file.warnings), 'warning')})" if file.warnings else ""))
            item = QTreeWidgetItem([file.kind, file.name, content_of(file),
                                    human_size(file.size), status])
            item.setIcon(KIND, document_icon(file.kind, error=failed))
            item.setToolTip(NAME, tooltip(file.path))
            item.setToolTip(STATUS, tooltip(file.error or "\n".join(file.warnings) or "read"))
            item.setData(NAME, Qt.ItemDataRole.UserRole, file.path)
            for column in (CONTENT, SIZE):
                item.setTextAlignment(column, Qt.AlignmentFlag.AlignRight
                                      | Qt.AlignmentFlag.AlignVCenter)
            if failed:
                for column in range(len(COLUMNS)):
                    item.setForeground(column, QBrush(ERROR_COLOR))
            self.list.addTopLevelItem(item)

    def _update_summary(self, cancelled: bool = False) -> None:
        files = self._files
        if not files:
            self.summary.setText("No documents yet: add files or drop them on the window.")
            return
        documents = sum(len(f.documents) for f in files)
        pages = sum(f.pages or 0 for f in files)
        messages = sum(f.messages or 0 for f in files)
        chars = sum(f.chars for f in files)
        failed = sum(1 for f in files if f.error is not None)
        text = (f"{plural(documents, 'document')} · {plural(pages, 'page')} · "
                f"{plural(messages, 'message')} · {chars:,} characters · "
                f"~{chars // CHARS_PER_TOKEN:,} tokens")
        if failed:
            text += f" · {plural(failed, 'file')} not readable"
        if cancelled:
            text += " · reading was cancelled"
        self.summary.setText(text)
