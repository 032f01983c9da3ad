"""The live trace tree: a thin Qt adapter over the engine's trace nodes, fed in batches.

`TraceTreeModel.add_events` applies one slice of `TraceEvent`s (see `bridge.RunBridge`): new
nodes go in with one `beginInsertRows` per parent, ended nodes and their ancestors (whose
token and cost totals include them) get `dataChanged`, one range per parent. `TraceFilterProxy`
filters by text and kind while keeping the ancestors of every match visible.

The view calls `index()`, `hasChildren()` and `data()` thousands of times per layout and
paint, so those are kept to a few attribute look-ups, and summaries are made only when shown.
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
    Signal,
)
from PySide6.QtGui import QBrush, QColor

from rlm_desktop.corpus.document import one_line
from rlm_desktop.engine.summary import CODE_MARKER, started_summary, summarize
from rlm_desktop.engine.trace import TraceEvent, TraceNode
from rlm_desktop.ui.icons import kind_icon, running_icon
from rlm_desktop.ui.richtext import tooltip

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
RUNNING_REFRESH_MS = 250   # how often running steps' Duration (and its spinner) is repainted

_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_DECORATION = int(Qt.ItemDataRole.DecorationRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole)
_ANSWERED_ROLES = frozenset({_DISPLAY, _DECORATION, _TOOLTIP, _FOREGROUND, _ALIGNMENT, NodeRole})
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_NUMBERS = (DURATION, TOKENS, COST)


class _Item:
    """One row: the node, where it sits (parent and row, so `parent()` is O(1)), the
    summary shown (made when first asked for), and the subtree's token and cost totals."""

    __slots__ = ("children", "cost", "finished", "id", "node", "parent", "row", "stream",
                 "summary_text", "tokens")

    def __init__(self, node: TraceNode | None, parent: _Item | None) -> None:
        self.node = node
        self.id = node.id if node is not None else 0
        self.parent = parent
        self.row = 0
        self.children: list[_Item] = []
        self.finished = False
        self.tokens = 0
        self.cost = 0.0
        self.summary_text: str | None = None   # None: not made yet, or out of date
        self.stream: list[str] = []   # deltas of a running root call

    @property
    def summary(self) -> str:
        text = self.summary_text
        if text is None:
            text = self.summary_text = _summary(self)
        return text


def _own_usage(node: TraceNode) -> tuple[int, float]:
    """What a step itself spent. A `run` node's usage is already the sum over its run, so
    it contributes nothing of its own: its total comes from its children."""
    if node.kind == "run":
        return 0, 0.0
    tokens = node.usage.total_tokens if node.usage is not None else 0
    return tokens, node.cost_usd or 0.0


def _summary(item: _Item) -> str:
    node = item.node
    assert node is not None
    if item.finished:
        # Trace.end fills the node before it publishes; the node is final now.
        text = summarize(node)
    else:
        # A running node: only what its start said (the engine may be filling it).
        # The terminal's cell marker is the kind icon here (and not in every font).
        text = started_summary(node).removeprefix(CODE_MARKER)
        if item.stream:
            streamed = one_line("".join(item.stream)[-STREAM_TAIL_CHARS * 2:],
                                STREAM_TAIL_CHARS * 2)
            text = f"{text}: {streamed[-STREAM_TAIL_CHARS:]}"
    return one_line(text, SUMMARY_CHARS)


class TraceTreeModel(QAbstractItemModel):
    """Trace nodes as a tree, fed by `add_events`. Item ids in indexes are node ids
    (0 is the invisible root), so `index()` and `parent()` are dictionary look-ups."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._root = _Item(None, None)
        self._items: dict[int, _Item] = {0: self._root}
        self._running: set[_Item] = set()
        self._frame = 0                            # of the running indicator
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
                item.summary_text = None
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
                item.summary_text = None
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
        self._frame += 1
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

    def nodes(self) -> list[TraceNode]:
        """Every step in the model, by id."""
        return sorted((item.node for item in self._items.values() if item.node is not None),
                      key=lambda node: node.id)

    def is_running(self, node_id: int) -> bool:
        """True while the step has started and not yet ended (False for unknown ids)."""
        item = self._items.get(node_id)
        return item is not None and item.node is not None and not item.finished

    def _item(self, index: AnyIndex) -> _Item:
        if not index.isValid():
            return self._root
        return self._items[index.internalId()]

    def _index_of(self, item: _Item) -> QModelIndex:
        if item is self._root:
            return QModelIndex()
        return self.createIndex(item.row, 0, item.id)

    # -- QAbstractItemModel ------------------------------------------------------------------------

    # The views call these per row on every layout: few calls into Qt, no helpers.

    def index(self, row: int, column: int, parent: AnyIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        if parent.isValid():
            if parent.column():
                return QModelIndex()
            children = self._items[parent.internalId()].children
        else:
            children = self._root.children
        if 0 <= row < len(children) and 0 <= column < _COLUMN_COUNT:
            return self.createIndex(row, column, children[row].id)
        return QModelIndex()

    def parent(self, index: AnyIndex | None = None) -> Any:  # type: ignore[override]
        if index is None:                  # QObject.parent(), which this name shadows
            return super().parent()
        if not index.isValid():
            return QModelIndex()
        parent = self._items[index.internalId()].parent
        if parent is None or parent is self._root:
            return QModelIndex()
        return self.createIndex(parent.row, 0, parent.id)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        if not parent.isValid():
            return len(self._root.children)
        if parent.column():
            return 0
        return len(self._items[parent.internalId()].children)

    def hasChildren(self, parent: AnyIndex = QModelIndex()) -> bool:  # noqa: B008
        # One call instead of the base class's rowCount() and columnCount().
        return self.rowCount(parent) > 0

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
        # A painted cell asks for ~8 roles; most are answered by the first test.
        if role not in _ANSWERED_ROLES or not index.isValid():
            return None
        item = self._items.get(index.internalId())
        if item is None or item.node is None:
            return None
        node = item.node
        column = index.column()
        if role == _DISPLAY:
            return self._display(item, node, column)
        if role == _DECORATION:
            if column == STEP:
                return kind_icon(node.kind, error=item.finished and bool(node.error))
            if column == DURATION and not item.finished:
                return running_icon(self._frame)
            return None
        if role == _FOREGROUND:
            return _ERROR_BRUSH if item.finished and node.error else None
        if role == _ALIGNMENT:
            return _RIGHT if column in _NUMBERS else None
        if role == NodeRole:
            return node
        # tool tip
        if item.finished and node.error:
            return tooltip(node.error)
        return tooltip(item.summary) if column == SUMMARY else None

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


_COLUMN_COUNT = len(COLUMNS)
_ERROR_BRUSH = QBrush(ERROR_COLOR)


class TraceFilterProxy(QSortFilterProxyModel):
    """Shows the steps whose label, summary or error contain the text and whose kind is
    chosen; the ancestors of every match stay visible so it is seen in place.

    `filterChanged(bool)` follows every change of the filter: True while one is active."""

    filterChanged = Signal(bool)

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

    @property
    def active(self) -> bool:
        """True when some step may be hidden (a text or a choice of kinds is set)."""
        return bool(self._text) or self._kinds is not None

    def _change(self, apply: Any) -> None:
        self.beginFilterChange()
        apply()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        self.filterChanged.emit(self.active)

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
