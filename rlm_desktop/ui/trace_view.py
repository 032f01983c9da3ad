"""The live trace tree's view: follows the newest step while the user is at the bottom, and
keeps only the live part of the tree open, so a run of tens of thousands of steps stays
cheap to lay out.

QTreeView lays out every open row again after each insert into an open parent, asking the
(Python) model for each of them; with everything open that is all the steps, every slice.
So the view opens the path to the newest step only, and folds what it opened itself once
that step has ended, is behind the newest one and has many children (a batch of child
calls). Steps a person opened or closed are never touched.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QModelIndex
from PySide6.QtWidgets import QHeaderView, QTreeView, QWidget

from rlm_desktop.engine.trace import TraceEvent
from rlm_desktop.ui.trace_model import (
    COST,
    DURATION,
    STEP,
    SUMMARY,
    TOKENS,
    TraceFilterProxy,
    TraceTreeModel,
)

FOLD_CHILDREN = 8   # an ended step the view opened folds once left behind with more children
BOTTOM_SLACK = 2    # pixels from the end that still count as "at the bottom"


class TraceView(QTreeView):
    """The tree of steps over `proxy` (which filters `model`). Feed it with `add_events`."""

    def __init__(self, model: TraceTreeModel, proxy: TraceFilterProxy,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._source = model
        self._proxy = proxy
        self.setModel(proxy)
        self.setUniformRowHeights(True)   # no per-row size hints: crucial for big trees
        self.setAlternatingRowColors(True)
        self.setAllColumnsShowFocus(True)
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(SUMMARY, QHeaderView.ResizeMode.Stretch)
        header.resizeSection(STEP, 180)   # room for labels three levels deep
        for column in (DURATION, TOKENS, COST):
            header.resizeSection(column, 80)
        self._opened: set[int] = set()       # steps this view opened (node ids)
        self._user_opened: set[int] = set()  # steps the user opened: never folded
        self._kept_closed: set[int] = set()  # steps the user closed: never reopened
        self._tail: int | None = None       # the newest step
        self._toggling = False              # inside the view's own expand/collapse
        self.expanded.connect(self._on_expanded)
        self.collapsed.connect(self._on_collapsed)
        proxy.filterChanged.connect(self._on_filter_changed)
        proxy.rowsInserted.connect(self._on_rows_inserted)
        model.modelReset.connect(self._forget)

    # -- feeding ---------------------------------------------------------------------------

    def at_bottom(self) -> bool:
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - BOTTOM_SLACK

    def add_events(self, events: Sequence[TraceEvent]) -> None:
        """Apply one slice to the model; while the user is at the bottom, open the path to
        the newest step, fold what was left behind, and scroll to the end (once)."""
        following = self.at_bottom()
        self._source.add_events(events)
        for event in reversed(events):
            if event.type == "start":
                self._tail = event.node.id
                break
        if following:
            self._follow()

    def _follow(self) -> None:
        path = self._path_to(self._tail)
        self._toggling = True
        try:
            for node_id in self._opened - path if not self._proxy.active else ():
                if self._source.is_running(node_id):
                    continue
                index = self._view_index(node_id)
                if index.isValid() and self._proxy.rowCount(index) > FOLD_CHILDREN:
                    self.collapse(index)
                self._opened.discard(node_id)
            for node_id in sorted(path):            # parents before children
                if node_id in self._kept_closed:
                    continue
                index = self._view_index(node_id)
                if index.isValid() and not self.isExpanded(index):
                    self.expand(index)
                    self._opened.add(node_id)
        finally:
            self._toggling = False
        self.scrollToBottom()

    def _path_to(self, node_id: int | None) -> set[int]:
        """The ids of the ancestors of a step (not the step itself)."""
        path: set[int] = set()
        model = self._source
        index = model.index_of_node(node_id) if node_id is not None else QModelIndex()
        index = model.parent(index) if index.isValid() else index
        while index.isValid():
            path.add(index.internalId())
            index = model.parent(index)
        return path

    def _view_index(self, node_id: int) -> QModelIndex:
        return self._proxy.mapFromSource(self._source.index_of_node(node_id))

    # -- filter, user and reset -------------------------------------------------------------

    def _on_rows_inserted(self, parent: QModelIndex, first: int, last: int) -> None:
        # While filtering, the matches are few and the point: show them all.
        if self._proxy.active and parent.isValid() and not self.isExpanded(parent):
            self.expand(parent)

    def _on_filter_changed(self, active: bool) -> None:
        # Filtering shows every match opened; clearing the filter goes back to what the
        # user opened and the path to the newest step.
        self._toggling = True
        try:
            if active:
                self.expandAll()
            else:
                self.collapseAll()
                self._opened.clear()
                for node_id in sorted(self._user_opened):
                    self.expand(self._view_index(node_id))
        finally:
            self._toggling = False
        if not active:
            self._follow()
            current = self.currentIndex()
            if current.isValid():
                self.scrollTo(current)

    def _on_expanded(self, index: QModelIndex) -> None:
        if not self._toggling and not self._proxy.active:
            node_id = self._proxy.mapToSource(index).internalId()
            self._kept_closed.discard(node_id)
            self._opened.discard(node_id)
            self._user_opened.add(node_id)

    def _on_collapsed(self, index: QModelIndex) -> None:
        if not self._toggling and not self._proxy.active:
            node_id = self._proxy.mapToSource(index).internalId()
            self._kept_closed.add(node_id)
            self._opened.discard(node_id)
            self._user_opened.discard(node_id)

    def _forget(self) -> None:
        self._opened.clear()
        self._user_opened.clear()
        self._kept_closed.clear()
        self._tail = None
