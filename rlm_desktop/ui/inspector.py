"""The inspector: everything about one step of the trace — its full input and output, the
model, usage, cost, latency and error. Long texts are capped so a 50 MB output never
freezes the window; "Show all" renders the rest on request."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Slot
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from rlm_desktop.engine.trace import TraceNode
from rlm_desktop.ui.trace_model import KIND_LABELS, format_duration

CAP_CHARS = 200_000


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


def describe(node: TraceNode) -> str:
    """The full text shown for a node."""
    lines = [f"Step: {KIND_LABELS.get(node.kind, node.kind)} (#{node.id}, depth {node.depth})"]
    if node.model:
        lines.append(f"Model: {node.model}")
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
    if node.error:
        lines.append(f"Error: {node.error}")
    lines += ["", "── Input ──", as_text(node.input), "", "── Output ──",
              as_text(node.output) if node.finished else "(still running)"]
    return "\n".join(lines)


class Inspector(QWidget):
    """Read-only details of the selected node, with Copy and Show all."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._node: TraceNode | None = None
        self._full = ""
        self.title = QLabel("<b>Inspector</b>")
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        font: QFont = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.text.setFont(font)
        self.text.setPlaceholderText("Select a step in the tree to see its full input and "
                                     "output.")
        self.capped_label = QLabel()
        self.show_all_button = QPushButton("Show all")
        self.show_all_button.clicked.connect(self.show_all)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the whole text of this step")
        self.copy_button.clicked.connect(self.copy)
        self.copy_button.setEnabled(False)
        self.show_all_button.hide()
        self.capped_label.hide()

        buttons = QHBoxLayout()
        buttons.addWidget(self.capped_label, 1)
        buttons.addStretch(0)
        buttons.addWidget(self.show_all_button)
        buttons.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.text, 1)
        layout.addLayout(buttons)

    @property
    def node(self) -> TraceNode | None:
        return self._node

    @property
    def full_text(self) -> str:
        return self._full

    def show_node(self, node: TraceNode | None) -> None:
        self._node = node
        if node is None:
            self._full = ""
            self.text.clear()
            self.copy_button.setEnabled(False)
            self.show_all_button.hide()
            self.capped_label.hide()
            return
        self._full = describe(node)
        self.copy_button.setEnabled(True)
        capped = len(self._full) > CAP_CHARS
        self.text.setPlainText(self._full[:CAP_CHARS] if capped else self._full)
        self.show_all_button.setVisible(capped)
        self.capped_label.setVisible(capped)
        if capped:
            self.capped_label.setText(f"Showing {CAP_CHARS:,} of {len(self._full):,} "
                                      "characters")

    @Slot()
    def show_all(self) -> None:
        self.text.setPlainText(self._full)
        self.show_all_button.hide()
        self.capped_label.hide()

    @Slot()
    def copy(self) -> None:
        QApplication.clipboard().setText(self._full)
