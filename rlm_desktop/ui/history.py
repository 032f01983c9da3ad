"""The history of investigations: every question asked, with its corpus, date, status and
cost, to reopen exactly as it was, rerun (from the record for free, or live with the model
of the settings), export or delete. The window owns the store; this panel lists and asks."""

from __future__ import annotations

import time
from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from rlm_desktop.sessions.investigation import InvestigationSummary
from rlm_desktop.sessions.replay import RESUMABLE
from rlm_desktop.ui.richtext import tooltip

ID_ROLE = int(Qt.ItemDataRole.UserRole) + 1
STATUS_LABELS = {
    "running": "running", "completed": "completed", "interrupted": "interrupted",
    "cancelled": "cancelled", "error": "failed", "timeout": "time limit",
    "max_iterations": "iteration limit", "budget_exhausted": "budget exhausted",
}
COLUMNS = ("Date", "Question", "Documents", "Status", "Cost")
DATE, QUESTION, DOCUMENTS, STATUS, COST = range(len(COLUMNS))


def when(created: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(created))


class HistoryPanel(QWidget):
    """The list of saved investigations and what can be done with one."""

    openRequested = Signal(str)
    rerunRequested = Signal(str, str)      # id, "replay" | "live" | "resume"
    exportRequested = Signal(str, str)     # id, "html" | "json" | "csv"
    deleteRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._busy = False
        self.list = QTreeWidget()
        self.list.setHeaderLabels(list(COLUMNS))
        self.list.setRootIsDecorated(False)
        self.list.setUniformRowHeights(True)
        self.list.setAlternatingRowColors(True)
        self.list.setSortingEnabled(False)
        header = self.list.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QUESTION, QHeaderView.ResizeMode.Stretch)
        header.resizeSection(DATE, 118)
        header.resizeSection(DOCUMENTS, 150)
        header.resizeSection(STATUS, 96)
        header.resizeSection(COST, 70)
        self.list.itemActivated.connect(self._on_activated)
        self.list.itemSelectionChanged.connect(self._update_buttons)
        self.empty = QLabel("No investigations yet. Every run is saved here as it happens.")
        self.empty.setWordWrap(True)

        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Show this investigation's steps, inspector and answer "
                                    "exactly as they were (Enter)")
        self.open_button.clicked.connect(lambda: self._emit_selected(self.openRequested))
        self.rerun_button = QToolButton()
        self.rerun_button.setText("Rerun")
        self.rerun_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        rerun_menu = QMenu(self.rerun_button)
        self.replay_action = rerun_menu.addAction("From the record (no model calls, free)")
        self.replay_action.setToolTip("Reproduce the run from its saved responses: the proof "
                                      "that the record is complete")
        self.replay_action.triggered.connect(lambda: self._rerun("replay"))
        self.resume_action = rerun_menu.addAction("Resume: the record, then live")
        self.resume_action.setToolTip("For a run cut short (interrupted, cancelled, out of "
                                      "time or budget): its recorded steps at no cost, then "
                                      "the same models live from where it stopped")
        self.resume_action.triggered.connect(lambda: self._rerun("resume"))
        self.live_action = rerun_menu.addAction("Live, with the current model")
        self.live_action.setToolTip("Run it again against the model in use now (Settings, "
                                    "or the scripted server in the demo)")
        self.live_action.triggered.connect(lambda: self._rerun("live"))
        self.other_models_action = rerun_menu.addAction("Live, with other models…")
        self.other_models_action.setToolTip("Choose the root and child models for this run "
                                            "(same endpoint and key as now)")
        self.other_models_action.triggered.connect(lambda: self._rerun("choose"))
        self.rerun_button.setMenu(rerun_menu)
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        export_menu = QMenu(self.export_button)
        for label, fmt in (("HTML report…", "html"), ("JSON…", "json"),
                           ("CSV of citations…", "csv")):
            action = export_menu.addAction(label)
            action.triggered.connect(lambda _=False, f=fmt: self._export(f))
        self.export_button.setMenu(export_menu)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(lambda: self._emit_selected(self.deleteRequested))

        buttons = QHBoxLayout()
        for widget in (self.open_button, self.rerun_button, self.export_button):
            buttons.addWidget(widget)
        buttons.addStretch(1)
        buttons.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.empty)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.set_investigations([])

    def set_investigations(self, summaries: Sequence[InvestigationSummary],
                           current: str | None = None) -> None:
        """Fill the list (newest first), keeping `current` (or the selection) selected."""
        keep = current or self.selected_id()
        self.list.clear()
        items = []
        for summary in summaries:
            status = STATUS_LABELS.get(summary.status, summary.status)
            status += summary.rerun_label
            item = QTreeWidgetItem([
                when(summary.created), summary.question.replace("\n", " "),
                summary.corpus, status,
                f"${summary.cost_usd:.4f}" if summary.cost_usd else "—"])
            item.setData(DATE, ID_ROLE, summary.id)
            item.setData(STATUS, ID_ROLE, summary.status)
            item.setToolTip(QUESTION, tooltip(summary.question))
            item.setToolTip(DOCUMENTS, f"{summary.documents:,} documents in "
                                       f"{summary.files:,} files")
            item.setToolTip(STATUS, tooltip(f"model: {summary.model or 'unknown'} · id "
                                            f"{summary.id}"))
            item.setTextAlignment(COST, Qt.AlignmentFlag.AlignRight
                                  | Qt.AlignmentFlag.AlignVCenter)
            items.append(item)
        self.list.addTopLevelItems(items)
        self.empty.setVisible(not items)
        self.list.setVisible(bool(items))
        for item in items:
            if item.data(DATE, ID_ROLE) == keep:
                self.list.setCurrentItem(item)
                break
        self._update_buttons()

    def selected_id(self) -> str | None:
        item = self.list.currentItem()
        if item is None or not item.isSelected():
            return None
        value = item.data(DATE, ID_ROLE)
        return value if isinstance(value, str) else None

    def select(self, investigation_id: str) -> bool:
        for row in range(self.list.topLevelItemCount()):
            item = self.list.topLevelItem(row)
            if item.data(DATE, ID_ROLE) == investigation_id:
                self.list.setCurrentItem(item)
                return True
        return False

    def set_busy(self, busy: bool) -> None:
        """While a run or a rerun is under way nothing can be opened, rerun or deleted."""
        self._busy = busy
        self._update_buttons()

    def _update_buttons(self) -> None:
        chosen = self.selected_id() is not None
        for widget in (self.open_button, self.rerun_button, self.delete_button):
            widget.setEnabled(chosen and not self._busy)
        self.export_button.setEnabled(chosen)
        item = self.list.currentItem()
        status = item.data(STATUS, ID_ROLE) if item is not None and chosen else None
        self.resume_action.setEnabled(status in RESUMABLE)
        self.resume_action.setText("Resume: the record, then live" if status in RESUMABLE
                                   else "Resume (only for a run cut short)")

    def _emit_selected(self, signal: Signal) -> None:
        chosen = self.selected_id()
        if chosen is not None:
            signal.emit(chosen)  # type: ignore[attr-defined]

    @Slot()
    def _on_activated(self, item: QTreeWidgetItem, column: int = 0) -> None:
        value = item.data(DATE, ID_ROLE)
        if isinstance(value, str):
            self.openRequested.emit(value)

    def _rerun(self, mode: str) -> None:
        chosen = self.selected_id()
        if chosen is not None:
            self.rerunRequested.emit(chosen, mode)

    def _export(self, fmt: str) -> None:
        chosen = self.selected_id()
        if chosen is not None:
            self.exportRequested.emit(chosen, fmt)
