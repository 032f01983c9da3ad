"""The answer of a run, rendered as Markdown, and its numbered citations.

The answer is model output: links are never followed and nothing remote is ever loaded
(a remote image in an answer could tell a third party that, and when, it was read).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QUrl, Signal, Slot
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from rlm_desktop.corpus.document import one_line
from rlm_desktop.ui.richtext import tooltip

CITATION_ROLE = 0x0100 + 7  # Qt.UserRole + 7: the citation dict of a list item


class AnswerBrowser(QTextBrowser):
    """A QTextBrowser that loads only what is inside the document itself."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenExternalLinks(False)
        self.setOpenLinks(False)
        self.remote_requests: list[str] = []   # what the answer tried to load, for tests

    def loadResource(self, type: int, name: QUrl) -> Any:
        if name.scheme().lower() in ("", "data", "qrc"):
            return super().loadResource(type, name)
        self.remote_requests.append(name.toString())
        return None


def citation_label(number: int, citation: dict[str, Any]) -> str:
    where = []
    if citation.get("page"):
        where.append(f"page {citation['page']}")
    if citation.get("line"):
        where.append(f"line {citation['line']}")
    place = f" ({', '.join(where)})" if where else ""
    quote = one_line(str(citation.get("text") or ""), 160)
    return f"[{number}] {citation.get('document', '?')}{place} — {quote}"


class AnswerView(QWidget):
    """The answer (left) and its citations (right); activating a citation emits it."""

    citationActivated = Signal(dict)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._answer = ""
        self.title = QLabel("<b>Answer</b>")
        self.browser = AnswerBrowser()
        self.browser.setPlaceholderText("The answer appears here when a run finishes.")
        self.citations = QListWidget()
        self.citations.setAlternatingRowColors(True)
        self.citations.setWordWrap(False)
        self.citations.setToolTip("Click a citation to open the document at that place")
        self.citations.itemActivated.connect(self._activate)
        self.citations.itemClicked.connect(self._activate)
        self.citations_title = QLabel("<b>Citations</b>")
        self.copy_button = QPushButton("Copy answer")
        self.copy_button.setEnabled(False)
        self.copy_button.clicked.connect(self.copy_answer)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addStretch(1)
        head.addWidget(self.copy_button)
        left_layout.addLayout(head)
        left_layout.addWidget(self.browser, 1)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.citations_title)
        right_layout.addWidget(self.citations, 1)

        self.splitter = QSplitter()
        self.splitter.setObjectName("answerSplitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)

    @property
    def answer(self) -> str:
        return self._answer

    def clear(self) -> None:
        self._answer = ""
        self.browser.clear()
        self.citations.clear()
        self.citations_title.setText("<b>Citations</b>")
        self.copy_button.setEnabled(False)

    def show_answer(self, answer: str, citations: list[dict[str, Any]],
                    note: str | None = None) -> None:
        self._answer = answer
        text = answer or "_(no answer)_"
        if note:
            text = f"{text}\n\n---\n\n*{note}*"
        self.browser.document().setMarkdown(
            text, QTextDocument.MarkdownFeature.MarkdownDialectGitHub)
        self.citations.clear()
        for number, citation in enumerate(citations, 1):
            item = QListWidgetItem(citation_label(number, citation))
            item.setToolTip(tooltip(f"{citation.get('path', '')}\n\n{citation.get('text', '')}"))
            item.setData(CITATION_ROLE, citation)
            self.citations.addItem(item)
        self.citations_title.setText(f"<b>Citations</b> ({len(citations):,})")
        self.copy_button.setEnabled(bool(answer))

    @Slot()
    def copy_answer(self) -> None:
        QApplication.clipboard().setText(self._answer)

    def _activate(self, item: QListWidgetItem) -> None:
        citation = item.data(CITATION_ROLE)
        if isinstance(citation, dict):
            self.citationActivated.emit(citation)
