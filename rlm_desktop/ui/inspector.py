"""The inspector: everything about one step of the trace — its full input and output, the
model, usage, cost, latency and error, and the places in the documents it found.

Input and output each get their own pane with a Copy button; code is shown with Python
syntax highlighting. Long texts are capped so a 50 MB output never freezes the window;
"Show all" renders the rest on request. The places a grep hit, a partition chunk or the
final answer point to are listed below; activating one opens the document viewer there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QPalette,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from rlm_desktop.engine.trace import TraceNode
from rlm_desktop.ui.richtext import escape, tooltip
from rlm_desktop.ui.trace_model import KIND_LABELS, format_duration

CAP_CHARS = 200_000
LOCATION_ROLE = int(Qt.ItemDataRole.UserRole) + 1   # item.data(0, LOCATION_ROLE) -> dict

# (document name) -> (path, kind), or None when the document is not in the corpus shown.
Resolver = Callable[[str], "tuple[str, str] | None"]


def as_text(value: Any) -> str:
    """A node's input or output for people: strings as they are, code and prompts unquoted,
    everything else as indented JSON."""
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        parts = []
        for key, item in value.items():
            if isinstance(item, str) and ("\n" in item or len(item) > 60):
                parts.append(f"{key}:\n{item}")
            elif isinstance(item, (dict, list)):
                dumped = json.dumps(item, ensure_ascii=False, indent=2, default=str)
                parts.append(f"{key}:\n{dumped}")
            else:
                parts.append(f"{key}: {json.dumps(item, ensure_ascii=False, default=str)}")
        return "\n".join(parts) if parts else "{}"
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def input_text(node: TraceNode) -> str:
    """The input pane: a child call's prompt or a code cell as they were sent."""
    value = node.input
    if isinstance(value, dict) and isinstance(value.get("prompt"), str):
        return str(value["prompt"])     # the rest (batch index, model) is in the facts
    return as_text(value)


# The part of an output the "places" list shows, left out of the output pane.
_LISTED = {"grep": "sample", "partition": "sources", "final": "citations", "run": "citations"}


def output_text(node: TraceNode) -> str:
    if not node.finished:
        return "(still running)"
    value = node.output
    listed = _LISTED.get(node.kind)
    if listed and isinstance(value, dict) and isinstance(value.get(listed), list):
        value = {k: v for k, v in value.items() if k != listed}   # shown as a list below
        if node.kind == "grep":
            value.pop("first", None)
    if node.kind in ("final", "run") and isinstance(value, dict) and "answer" in value:
        rest = {k: v for k, v in value.items() if k != "answer"}
        answer = value["answer"]
        return (answer if isinstance(answer, str) else as_text(answer)) + (
            "\n\n" + as_text(rest) if rest else "")
    return as_text(value)


def meta_lines(node: TraceNode) -> list[str]:
    """Model, latency, usage, cost and error, one fact per line."""
    lines = []
    if node.model:
        lines.append(f"Model: {node.model}")
    if isinstance(node.input, dict) and isinstance(node.input.get("prompt"), str):
        index = node.input.get("index")
        if index is not None:
            lines.append(f"Batch item: {index}")
    if node.finished:
        lines.append(f"Latency: {format_duration(node.elapsed)}")
    else:
        lines.append(f"Running for {format_duration(node.elapsed)}")
    if node.usage is not None:
        estimated = " (estimated)" if node.usage.estimated else ""
        lines.append(f"Usage: {node.usage.prompt_tokens:,} prompt + "
                     f"{node.usage.completion_tokens:,} completion = "
                     f"{node.usage.total_tokens:,} tokens{estimated}")
    if node.cost_usd is not None:
        lines.append(f"Cost: ${node.cost_usd:.6f}")
    if node.extra.get("from_record"):
        lines.append("Answered from the saved record: no model was called now")
    if node.error:
        lines.append(f"Error: {node.error}")
    return lines


def title_of(node: TraceNode) -> str:
    label = KIND_LABELS.get(node.kind, node.kind)
    iteration = node.extra.get("iteration")
    turn = f", turn {iteration}" if iteration is not None else ""
    return f"{label} (#{node.id}{turn}, depth {node.depth})"


def describe(node: TraceNode) -> str:
    """The whole text of a node, as Copy all puts it on the clipboard."""
    return "\n".join([f"Step: {title_of(node)}", *meta_lines(node), "", "── Input ──",
                      input_text(node), "", "── Output ──", output_text(node)])


@dataclass(frozen=True, slots=True)
class Location:
    """A place in the documents a step points to."""

    document: str
    page: int | None
    line: int | None
    text: str
    path: str | None = None    # known for citations; looked up by name otherwise
    chunk: int | None = None   # partition: which chunk the piece belongs to


def locations(node: TraceNode) -> list[Location]:
    """The places recorded on a node: grep's first hits, partition's chunk sources, the
    final answer's citations (see trace-format.md)."""
    output = node.output if node.finished else None
    if not isinstance(output, dict):
        return []
    found: list[Location] = []
    if node.kind == "grep":
        for hit in output.get("sample") or []:
            if isinstance(hit, dict):
                found.append(Location(str(hit.get("doc", "")), hit.get("page"),
                                      hit.get("line"), str(hit.get("text") or "")))
    elif node.kind == "partition":
        for source in output.get("sources") or []:
            if isinstance(source, dict):
                found.append(Location(str(source.get("doc", "")), source.get("page"),
                                      source.get("line"), "", chunk=source.get("chunk")))
    elif node.kind in ("final", "run"):
        for citation in output.get("citations") or []:
            if isinstance(citation, dict):
                found.append(Location(str(citation.get("document", "")),
                                      citation.get("page"), citation.get("line"),
                                      str(citation.get("text") or ""),
                                      path=citation.get("path") or None))
    return found


class PythonHighlighter(QSyntaxHighlighter):
    """Python syntax colours for a code cell, from Pygments' lexer.

    The whole text is lexed once when it is set (`set_code`); `highlightBlock` applies the
    token spans that fall in each block, so strings and comments spanning lines are right.
    Colours are chosen for the palette's base colour (light or dark)."""

    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)
        self._spans: list[tuple[int, int, QTextCharFormat]] = []
        self._formats = self._make_formats()

    @staticmethod
    def _make_formats() -> dict[str, QTextCharFormat]:
        dark = QApplication.palette().color(QPalette.ColorRole.Base).lightness() < 128
        colours = {
            "Keyword": "#c678dd" if dark else "#7b1fa2",
            "Name.Builtin": "#56b6c2" if dark else "#00838f",
            "Name.Function": "#61afef" if dark else "#1565c0",
            "Literal.String": "#98c379" if dark else "#2e7d32",
            "Literal.Number": "#d19a66" if dark else "#bf360c",
            "Comment": "#7f848e" if dark else "#757575",
            "Operator.Word": "#c678dd" if dark else "#7b1fa2",
        }
        formats = {}
        for name, colour in colours.items():
            fmt = QTextCharFormat()
            fmt.setForeground(QColor(colour))
            if name == "Keyword":
                fmt.setFontWeight(QFont.Weight.DemiBold)
            if name == "Comment":
                fmt.setFontItalic(True)
            formats[name] = fmt
        return formats

    def set_code(self, code: str) -> None:
        from pygments.lexers.python import PythonLexer  # loaded when code is first shown

        # Pygments counts code points, Qt counts UTF-16 units: they differ after any
        # character outside the BMP (an emoji), so positions are mapped when there is one.
        units = None if all(ord(c) <= 0xFFFF for c in code) else _utf16_offsets(code)
        spans: list[tuple[int, int, QTextCharFormat]] = []
        for position, token, value in PythonLexer().get_tokens_unprocessed(code):
            fmt = self._format_for(str(token))
            if fmt is None or not value:
                continue
            if units is None:
                spans.append((position, len(value), fmt))
            else:
                start = units[position]
                spans.append((start, units[position + len(value)] - start, fmt))
        self._spans = spans
        self.rehighlight()

    def clear_code(self) -> None:
        self._spans = []
        self.rehighlight()

    def _format_for(self, token: str) -> QTextCharFormat | None:
        name = token.removeprefix("Token.")
        while name:
            if name in self._formats:
                return self._formats[name]
            name = name.rpartition(".")[0]
        return None

    def highlightBlock(self, text: str) -> None:
        if not self._spans:
            return
        block = self.currentBlock()
        start = block.position()
        end = start + block.length() - 1     # UTF-16 units, without the separator
        # Spans are sorted by position: skip to the first that can reach this block.
        lo, hi = 0, len(self._spans)
        while lo < hi:
            mid = (lo + hi) // 2
            position, length, _ = self._spans[mid]
            if position + length <= start:
                lo = mid + 1
            else:
                hi = mid
        for position, length, fmt in self._spans[lo:]:
            if position >= end:
                break
            first = max(position, start)
            last = min(position + length, end)
            if last > first:
                self.setFormat(first - start, last - first, fmt)


def _utf16_offsets(text: str) -> list[int]:
    """offsets[i]: where code point i of `text` starts in UTF-16 units (len(text) + 1)."""
    offsets = [0] * (len(text) + 1)
    total = 0
    for index, char in enumerate(text):
        offsets[index] = total
        total += 2 if ord(char) > 0xFFFF else 1
    offsets[len(text)] = total
    return offsets


class _Pane(QWidget):
    """A titled, read-only text pane with a Copy button, capped at CAP_CHARS."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.label = QLabel(f"<b>{title}</b>")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip(f"Copy the whole {title.lower()}")
        self.copy_button.clicked.connect(self.copy)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.label)
        head.addStretch(1)
        head.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(head)
        layout.addWidget(self.text, 1)

    @property
    def full(self) -> str:
        return self._full

    def set_text(self, text: str) -> bool:
        """Show `text` (capped); True when it was cut."""
        self._full = text
        capped = len(text) > CAP_CHARS
        self.text.setPlainText(text[:CAP_CHARS] if capped else text)
        self.copy_button.setEnabled(bool(text))
        return capped

    def show_all(self) -> None:
        if self.text.document().characterCount() - 1 < len(self._full):
            self.text.setPlainText(self._full)

    @Slot()
    def copy(self) -> None:
        QApplication.clipboard().setText(self._full)


class Inspector(QWidget):
    """Read-only details of the selected node: facts, input, output, locations."""

    locationActivated = Signal(dict)   # {"document", "path", "page", "line", "text"}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._node: TraceNode | None = None
        self._full = ""
        self._resolve: Resolver = lambda name: None
        self.title = QLabel("<b>Inspector</b>")
        self.meta = QLabel("Select a step in the tree to see its full input and output.")
        self.meta.setWordWrap(True)
        self.meta.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.input = _Pane("Input")
        self.output = _Pane("Output")
        self.highlighter = PythonHighlighter(self.input.text.document())

        self.places_label = QLabel()
        self.places = QTreeWidget()
        self.places.setHeaderLabels(["Document", "Page", "Line", "Text"])
        self.places.setRootIsDecorated(False)
        self.places.setUniformRowHeights(True)
        self.places.setAlternatingRowColors(True)
        self.places.setToolTip("Double-click (or Enter) to open the document at this place")
        header = self.places.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(0, 150)
        header.resizeSection(1, 44)
        header.resizeSection(2, 52)
        self.places.itemActivated.connect(self._on_place_activated)
        places = QWidget()
        places_layout = QVBoxLayout(places)
        places_layout.setContentsMargins(0, 4, 0, 0)
        places_layout.setSpacing(2)
        places_layout.addWidget(self.places_label)
        places_layout.addWidget(self.places, 1)
        self.places_box = places

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("inspectorSplitter")
        self.splitter.setChildrenCollapsible(False)
        for pane in (self.input, self.output, places):
            self.splitter.addWidget(pane)
        self.splitter.setSizes([300, 300, 160])

        self.capped_label = QLabel()
        self.show_all_button = QPushButton("Show all")
        self.show_all_button.setToolTip("Render the whole text (may take a moment)")
        self.show_all_button.clicked.connect(self.show_all)
        self.copy_button = QPushButton("Copy all")
        self.copy_button.setToolTip("Copy everything about this step")
        self.copy_button.clicked.connect(self.copy)
        buttons = QHBoxLayout()
        buttons.addWidget(self.capped_label, 1)
        buttons.addWidget(self.show_all_button)
        buttons.addWidget(self.copy_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.meta)
        layout.addWidget(self.splitter, 1)
        layout.addStretch(0)
        layout.addLayout(buttons)
        self.show_node(None)

    def set_resolver(self, resolve: Resolver) -> None:
        """How a document name becomes a file to open (the window knows its corpus)."""
        self._resolve = resolve

    @property
    def node(self) -> TraceNode | None:
        return self._node

    @property
    def full_text(self) -> str:
        return self._full

    def show_node(self, node: TraceNode | None) -> None:
        self._node = node
        self.splitter.setVisible(node is not None)
        if node is None:
            self._full = ""
            self.title.setText("<b>Inspector</b>")
            self.meta.setText("Select a step in the tree to see its full input and output.")
            for pane in (self.input, self.output):
                pane.set_text("")
            self.highlighter.clear_code()
            self._fill_places([])
            self.copy_button.setEnabled(False)
            self.copy_button.hide()
            self.show_all_button.hide()
            self.capped_label.hide()
            return
        self._full = describe(node)
        self.title.setText(f"<b>{escape(title_of(node))}</b>")
        facts = meta_lines(node)
        self.meta.setText("<br>".join(
            f'<span style="color:#c62828">{escape(line)}</span>'
            if line.startswith("Error:") else escape(line) for line in facts))
        code = node.kind == "code" and isinstance(node.input, str)
        self.input.label.setText("<b>Code</b>" if code else
                                 "<b>Prompt</b>" if node.kind == "llm_query" else
                                 "<b>Input</b>")
        self.output.label.setText("<b>Printed output</b>" if code else
                                  "<b>Response</b>" if node.kind in ("llm_query", "root_call")
                                  else "<b>Output</b>")
        self.input.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap if code else
                                        QPlainTextEdit.LineWrapMode.WidgetWidth)
        capped = self.input.set_text(input_text(node))
        capped = self.output.set_text(output_text(node)) or capped
        if code:
            self.highlighter.set_code(self.input.text.toPlainText())
        else:
            self.highlighter.clear_code()
        self._fill_places(locations(node))
        self.copy_button.setEnabled(True)
        self.copy_button.show()
        self.show_all_button.setVisible(capped)
        self.capped_label.setVisible(capped)
        if capped:
            self.capped_label.setText(f"Long text: the first {CAP_CHARS:,} characters of "
                                      "each part are shown")

    def _fill_places(self, found: list[Location]) -> None:
        self.places.clear()
        self.places_box.setVisible(bool(found))
        if not found:
            return
        items = []
        for place in found:
            resolved = (place.path, "") if place.path else self._resolve(place.document)
            item = QTreeWidgetItem([
                place.document + (f"  (chunk {place.chunk + 1})"
                                  if place.chunk is not None else ""),
                str(place.page) if place.page else "",
                str(place.line) if place.line else "", place.text])
            item.setToolTip(3, tooltip(place.text))
            if resolved is None:
                item.setDisabled(True)
                item.setToolTip(0, "This document is not in the corpus shown")
            else:
                item.setData(0, LOCATION_ROLE, {
                    "document": place.document, "path": resolved[0],
                    "page": place.page, "line": place.line, "text": place.text})
            items.append(item)
        self.places.addTopLevelItems(items)
        kind = self._node.kind if self._node is not None else ""
        what = {"grep": "First hits", "partition": "Chunk sources"}.get(kind, "Citations")
        self.places_label.setText(f"<b>{what}</b> ({len(found)}) — double-click to open")

    def _on_place_activated(self, item: QTreeWidgetItem, column: int = 0) -> None:
        location = item.data(0, LOCATION_ROLE)
        if isinstance(location, dict):
            self.locationActivated.emit(location)

    @Slot()
    def show_all(self) -> None:
        self.input.show_all()
        self.output.show_all()
        if self._node is not None and self._node.kind == "code":
            self.highlighter.set_code(self.input.text.toPlainText())
        self.show_all_button.hide()
        self.capped_label.hide()

    @Slot()
    def copy(self) -> None:
        QApplication.clipboard().setText(self._full)
