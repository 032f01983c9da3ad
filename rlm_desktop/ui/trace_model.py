"""The live trace tree: a thin Qt adapter over the engine's trace nodes, fed in batches.

`TraceTreeModel.add_events` applies one flush of `TraceEvent`s (see `bridge.RunBridge`): new
nodes go in with one `beginInsertRows` per parent, ended nodes and their ancestors (whose
token and cost totals include them) get `dataChanged`. `TraceFilterProxy` filters by text and
kind while keeping the ancestors of every match visible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtGui import QBrush, QColor

from rlm_desktop.corpus.document import one_line
from rlm_desktop.engine.summary import started_summary, summarize
from rlm_desktop.engine.trace import TraceEvent, TraceNode

AnyIndex = QModelIndex | QPersistentModelIndex

NodeRole = int(Qt.ItemDataRole.UserRole) + 1  # data(index, NodeRole) -> TraceNode

COLUMNS = ("Step", "Summary", "Duration", "Tokens", "Cost")
STEP, SUMMARY, DURATION, TOKENS, COST = range(len(COLUMNS))

KIND_LABELS = {
    "run": "Run", "root_call": "Root call", "code": "Code", "peek": "Peek", "grep": "Grep",
    "partition": "Partition", "llm_query": "Child call", "rlm_query": "Recursive run",
    "final": "Final answer",
}

ERROR_COLOR = QColor("#c62828")
SUMMARY_CHARS = 200        # the view elides further; the inspector shows everything
STREAM_TAIL_CHARS = 120    # streamed root-model text shown while the reply arrives
RUNNING_REFRESH_MS = 500   # how often the Duration of running steps is repainted


class _Item:
    """One row: the node, where it sits (parent and row, so `parent()` is O(1)), the
    summary shown, and the subtree's token and cost totals."""

    __slots__ = ("children", "cost", "finished", "node", "parent", "row", "stream",
                 "summary", "tokens")

    def __init__(self, node: TraceNode | None, parent: _Item | None) -> None:
        self.node = node
        self.parent = parent
        self.row = 0
        self.children: list[_Item] = []
        self.finished = False
        self.tokens = 0
        self.cost = 0.0
        self.summary = ""
        self.stream: list[str] = []   # deltas of a running root call


def _own_usage(node: TraceNode) -> tuple[int, float]:
    """What a step itself spent. A `run` node's usage is already the sum over its run, so
    it contributes nothing of its own: its total comes from its children."""
    if node.kind == "run":
        return 0, 0.0
    tokens = node.usage.total_tokens if node.usage is not None else 0
    return tokens, node.cost_usd or 0.0


class TraceTreeModel(QAbstractItemModel):
    """Trace nodes as a tree, fed by `add_events`. Item ids in indexes are node ids
    (0 is the invisible root), so `index()` and `parent()` are dictionary look-ups."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._root = _Item(None, None)
        self._items: dict[int, _Item] = {0: self._root}
        self._running: set[_Item] = set()
        self._timer = QTimer(self)
        self._timer.setInterval(RUNNING_REFRESH_MS)
        self._timer.timeout.connect(self.refresh_running)

    # -- feeding -----------------------------------------------------------------------------

    def clear(self) -> None:
        self.beginResetModel()
        self._root = _Item(None, None)
        self._items = {0: self._root}
        self._running.clear()
        self._timer.stop()
        self.endResetModel()

    def add_events(self, events: Sequence[TraceEvent]) -> None:
        """Apply one batch: inserts first (one per parent), then the rows that changed."""
        fresh: set[_Item] = set()                  # created in this batch, not yet shown
        pending: dict[_Item, list[_Item]] = {}     # shown parent -> new children, in order
        changed: set[_Item] = set()
        streamed: set[_Item] = set()
        for event in events:
            node = event.node
            item = self._items.get(node.id)
            if event.type == "start":
                if item is not None:
                    continue                       # a repeated start: nothing new
                parent = self._items.get(node.parent or 0, self._root)
                item = _Item(node, parent)
                item.summary = self._summary(item)
                self._items[node.id] = item
                fresh.add(item)
                self._running.add(item)
                if parent in fresh:                # inserted together with its parent
                    item.row = len(parent.children)
                    parent.children.append(item)
                else:
                    pending.setdefault(parent, []).append(item)
            elif item is None:
                continue                           # an event for a node we never saw start
            elif event.type == "end":
                if item.finished:
                    continue
                item.finished = True
                item.stream.clear()
                self._running.discard(item)
                item.summary = self._summary(item)
                changed.add(item)
                tokens, cost = _own_usage(node)
                walk: _Item | None = item
                while walk is not None and walk is not self._root:
                    walk.tokens += tokens
                    walk.cost += cost
                    changed.add(walk)
                    walk = walk.parent
            elif not item.finished:                # a delta of a running root call
                if event.reset:
                    item.stream.clear()
                if event.text:
                    item.stream.append(event.text)
                streamed.add(item)
        for item in streamed:
            if not item.finished:
                item.summary = self._summary(item)
                changed.add(item)
        for parent, new in pending.items():
            first = len(parent.children)
            self.beginInsertRows(self._index_of(parent), first, first + len(new) - 1)
            for row, item in enumerate(new, first):
                item.row = row
            parent.children.extend(new)
            self.endInsertRows()
        self._emit_changed(item for item in changed if item not in fresh)
        if self._running and not self._timer.isActive():
            self._timer.start()

    def refresh_running(self) -> None:
        """Repaint the Duration of running steps (their elapsed time grows)."""
        if not self._running:
            self._timer.stop()
            return
        self._emit_changed(self._running, DURATION, DURATION)

    def _emit_changed(self, items: Iterable[_Item], first: int = STEP,
                      last: int = COST) -> None:
        """One dataChanged per parent, spanning the changed rows."""
        spans: dict[_Item, list[int]] = {}
        for item in items:
            parent = item.parent
            assert parent is not None
            span = spans.get(parent)
            if span is None:
                spans[parent] = [item.row, item.row]
            else:
                span[0] = min(span[0], item.row)
                span[1] = max(span[1], item.row)
        for parent, (top, bottom) in spans.items():
            parent_index = self._index_of(parent)
            self.dataChanged.emit(self.index(top, first, parent_index),
                                  self.index(bottom, last, parent_index))

    @staticmethod
    def _summary(item: _Item) -> str:
        node = item.node
        assert node is not None
        if item.finished:
            # Trace.end fills the node before it publishes; the node is final now.
            text = summarize(node)
        else:
            # A running node: only what its start said (the engine may be filling it).
            text = started_summary(node)
            if item.stream:
                streamed = one_line("".join(item.stream)[-STREAM_TAIL_CHARS * 2:],
                                    STREAM_TAIL_CHARS * 2)
                text = f"{text}: {streamed[-STREAM_TAIL_CHARS:]}"
        return one_line(text, SUMMARY_CHARS)

    # -- look-ups ------------------------------------------------------------------------------

    def node(self, index: AnyIndex) -> TraceNode | None:
        return self._item(index).node if index.isValid() else None

    def index_of_node(self, node_id: int, column: int = 0) -> QModelIndex:
        item = self._items.get(node_id)
        if item is None or item is self._root or item.parent is None:
            return QModelIndex()
        return self.createIndex(item.row, column, node_id)

    def node_count(self) -> int:
        return len(self._items) - 1

    def _item(self, index: AnyIndex) -> _Item:
        if not index.isValid():
            return self._root
        return self._items[index.internalId()]

    def _index_of(self, item: _Item) -> QModelIndex:
        if item is self._root or item.node is None:
            return QModelIndex()
        return self.createIndex(item.row, 0, item.node.id)

    # -- QAbstractItemModel ------------------------------------------------------------------------

    def index(self, row: int, column: int, parent: AnyIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        if column < 0 or column >= len(COLUMNS) or row < 0:
            return QModelIndex()
        if parent.isValid() and parent.column() != 0:
            return QModelIndex()
        item = self._item(parent)
        if row >= len(item.children):
            return QModelIndex()
        child = item.children[row]
        assert child.node is not None
        return self.createIndex(row, column, child.node.id)

    def parent(self, index: AnyIndex | None = None) -> Any:  # type: ignore[override]
        if index is None:                  # QObject.parent(), which this name shadows
            return super().parent()
        if not index.isValid():
            return QModelIndex()
        parent = self._item(index).parent
        if parent is None or parent is self._root:
            return QModelIndex()
        return self._index_of(parent)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid() and parent.column() != 0:
            return 0
        return len(self._item(parent).children)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return len(COLUMNS)

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole
                and 0 <= section < len(COLUMNS)):
            return COLUMNS[section]
        return None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        item = self._item(index)
        node = item.node
        if node is None:
            return None
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(item, node, column)
        if role == NodeRole:
            return node
        if role == Qt.ItemDataRole.ToolTipRole:
            if item.finished and node.error:
                return node.error
            return item.summary if column == SUMMARY else None
        if role == Qt.ItemDataRole.ForegroundRole:
            return QBrush(ERROR_COLOR) if item.finished and node.error else None
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (DURATION, TOKENS, COST):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _display(item: _Item, node: TraceNode, column: int) -> str:
        if column == STEP:
            label = KIND_LABELS.get(node.kind, node.kind)
            iteration = node.extra.get("iteration")
            if node.kind == "root_call" and iteration is not None:
                label = f"{label} {iteration}"
            return label
        if column == SUMMARY:
            return item.summary
        if column == DURATION:
            if not item.finished:
                return f"{node.elapsed:.1f} s …"
            return format_duration(node.elapsed)
        if column == TOKENS:
            return f"{item.tokens:,}" if item.tokens else ""
        if column == COST:
            return f"${item.cost:.4f}" if item.cost else ""
        return ""


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s"


class TraceFilterProxy(QSortFilterProxyModel):
    """Shows the steps whose label, summary or error contain the text and whose kind is
    chosen; the ancestors of every match stay visible so it is seen in place."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._kinds: frozenset[str] | None = None
        self.setRecursiveFilteringEnabled(True)

    @property
    def text(self) -> str:
        return self._text

    @property
    def kinds(self) -> frozenset[str] | None:
        return self._kinds

    def set_text(self, text: str) -> None:
        self._change(lambda: setattr(self, "_text", text.strip().casefold()))

    def set_kinds(self, kinds: Iterable[str] | None) -> None:
        """None shows every kind."""
        chosen = frozenset(kinds) if kinds is not None else None
        self._change(lambda: setattr(self, "_kinds", chosen))

    def _change(self, apply: Any) -> None:
        self.beginFilterChange()
        apply()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: AnyIndex) -> bool:
        if not self._text and self._kinds is None:
            return True
        model = self.sourceModel()
        index = model.index(source_row, 0, source_parent)
        node = model.data(index, NodeRole)
        if not isinstance(node, TraceNode):
            return False
        if self._kinds is not None and node.kind not in self._kinds:
            return False
        if not self._text:
            return True
        summary = model.data(index.siblingAtColumn(SUMMARY), Qt.ItemDataRole.DisplayRole)
        haystack = " ".join((KIND_LABELS.get(node.kind, node.kind), node.kind,
                             str(summary or ""), node.error or ""))
        return self._text in haystack.casefold()
