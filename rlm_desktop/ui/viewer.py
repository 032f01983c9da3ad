"""The document viewer a citation opens: a PDF at its page with the quote highlighted, or
the extracted text of anything else scrolled to the cited line.

PDFs are drawn by QtPdf from the local file; everything else shows the text exactly as the
app extracted it (through the text cache), so line numbers match what grep and the model saw.
Nothing here touches the network.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QPointF, QRect, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QPainter,
    QPaintEvent,
    QPalette,
    QResizeEvent,
    QShowEvent,
    QTextCursor,
    QTextFormat,
)
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QPlainTextEdit,
    QStackedWidget,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

try:  # QtPdf (PySide6-Addons; its own wheel from 6.12): without it PDFs fall back to text.
    from PySide6.QtPdf import QPdfDocument, QPdfSearchModel
    from PySide6.QtPdfWidgets import QPdfView
except ImportError:  # pragma: no cover - depends on the installed wheels
    QPdfDocument = QPdfSearchModel = QPdfView = None  # type: ignore[assignment,misc]

# Files above this are read off the GUI thread (first extraction of a big mailbox or log
# can take seconds; a cached one is quick, but the text itself is large).
BACKGROUND_BYTES = 20 * 1024 * 1024
SEARCH_CHARS = 60
LINE_HIGHLIGHT = QColor(255, 236, 140)


@dataclass(slots=True)
class _Loaded:
    text: str | None = None
    error: str | None = None
    line_index: int | None = None  # 0-based line in `text`


def _load_text(path: str, name: str | None, page: int | None, line: int | None) -> _Loaded:
    """The app's extracted text of `path` (the document called `name` in a mailbox), and
    the 0-based index of the cited line. Never raises."""
    from rlm_desktop.corpus.ingest import ingest

    try:
        result = ingest([path])
    except Exception as exc:  # defensive: ingest itself does not raise for bad files
        return _Loaded(error=f"Could not read this file: {exc}")
    documents = result.documents
    if not documents:
        reasons = [f.error for f in result.files if f.error]
        reason = reasons[0] if reasons else "no readable text was found"
        return _Loaded(error=f"Could not read this file: {reason}")
    document = documents[0]
    if name is not None:
        document = next((d for d in documents if d.name == name), None) or next(
            (d for d in documents if name in d.name), documents[0])
    try:
        text = document.text
    except Exception as exc:
        return _Loaded(error=f"Could not read the extracted text: {exc}")
    index: int | None = None
    if line is not None:
        try:
            offset = document.offset(page if document.page_starts else None, line)
            index = text.count("\n", 0, offset)
        except (IndexError, ValueError):
            index = max(0, min(line - 1, text.count("\n")))
    elif page is not None and document.page_starts:  # a PDF shown as text (no QtPdf)
        start = document.page_starts[max(0, min(page, len(document.page_starts)) - 1)]
        index = text.count("\n", 0, start)
    return _Loaded(text=text, line_index=index)


class _LoadSignals(QObject):
    """Carries a background load's result to the GUI thread (queued across threads)."""

    loaded = Signal(int, object)


class _Gutter(QWidget):
    """Line numbers beside the text view."""

    def __init__(self, view: _TextView) -> None:
        super().__init__(view)
        self._view = view

    def sizeHint(self) -> QSize:
        return QSize(self._view.gutter_width(), 0)

    def paintEvent(self, event: QPaintEvent) -> None:
        self._view.paint_gutter(self, event)


class _TextView(QPlainTextEdit):
    """A read-only monospace text view with line numbers."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.gutter = _Gutter(self)
        self.blockCountChanged.connect(self._update_margin)
        self.updateRequest.connect(self._update_gutter)
        self._update_margin()

    def gutter_width(self) -> int:
        digits = max(3, len(str(self.blockCount())))
        return 16 + self.fontMetrics().horizontalAdvance("9") * digits

    def _update_margin(self, _count: int = 0) -> None:
        self.setViewportMargins(self.gutter_width(), 0, 0, 0)

    def _update_gutter(self, rect: QRect, dy: int) -> None:
        if dy:
            self.gutter.scroll(0, dy)
        else:
            self.gutter.update(0, rect.y(), self.gutter.width(), rect.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        area = self.contentsRect()
        self.gutter.setGeometry(QRect(area.left(), area.top(), self.gutter_width(),
                                      area.height()))

    def paint_gutter(self, gutter: QWidget, event: QPaintEvent) -> None:
        painter = QPainter(gutter)
        palette = self.palette()
        painter.fillRect(event.rect(), palette.color(QPalette.ColorRole.AlternateBase))
        current = self.textCursor().blockNumber()
        block = self.firstVisibleBlock()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        height = self.fontMetrics().height()
        width = gutter.width() - 8
        while block.isValid() and top <= event.rect().bottom():
            bottom = top + round(self.blockBoundingRect(block).height())
            if block.isVisible() and bottom >= event.rect().top():
                number = block.blockNumber()
                role = (QPalette.ColorRole.Text if number == current
                        else QPalette.ColorRole.PlaceholderText)
                painter.setPen(palette.color(role))
                painter.drawText(0, top, width, height, Qt.AlignmentFlag.AlignRight,
                                 str(number + 1))
            block = block.next()
            top = bottom
        painter.end()


class DocumentViewer(QWidget):
    """Shows one cited location: `show_location(path, kind, page, line, text, name=...)`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._request = 0
        self._search_page: int | None = None  # 0-based page whose first hit to select

        self.header = QLabel(self)
        self.header.setTextFormat(Qt.TextFormat.PlainText)
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.header.font()
        font.setBold(True)
        self.header.setFont(font)
        self.header.setContentsMargins(8, 6, 8, 6)

        self.stack = QStackedWidget(self)

        self.message = QLabel(self.stack)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setMargin(24)
        self.stack.addWidget(self.message)

        self.text_view = _TextView(self.stack)
        self.text_view.setReadOnly(True)
        self.text_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text_view.gutter.setFont(self.text_view.font())
        self.text_view.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.stack.addWidget(self.text_view)

        self.pdf_document = None
        self.pdf_view = None
        self.search_model = None
        if QPdfView is not None:
            self.pdf_document = QPdfDocument(self)
            self.search_model = QPdfSearchModel(self)
            self.search_model.setDocument(self.pdf_document)
            self.search_model.countChanged.connect(self._select_search_result)
            self.pdf_view = QPdfView(self.stack)
            self.pdf_view.setDocument(self.pdf_document)
            self.pdf_view.setPageMode(QPdfView.PageMode.MultiPage)
            self.pdf_view.setZoomMode(QPdfView.ZoomMode.FitToWidth)
            self.pdf_view.setPageSpacing(12)
            self.pdf_view.setSearchModel(self.search_model)
            self.stack.addWidget(self.pdf_view)

        self._signals = _LoadSignals(self)
        self._signals.loaded.connect(self._on_loaded)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.header)
        rule = QFrame(self)
        rule.setFrameShape(QFrame.Shape.HLine)
        rule.setFrameShadow(QFrame.Shadow.Sunken)
        layout.addWidget(rule)
        layout.addWidget(self.stack, 1)
        self.resize(900, 700)

    # -- public ----------------------------------------------------------------------------

    def show_location(
        self,
        path: str,
        kind: str,
        page: int | None,
        line: int | None,
        text: str,
        *,
        name: str | None = None,
    ) -> None:
        """Open `path` at the 1-based `page` / `line`, highlighting the quoted `text`."""
        self._request += 1
        self._search_page = None
        shown = name or Path(path).name
        file = Path(path)
        if not file.is_file():
            self.header.setText(shown)
            self._show_message(f"The file is no longer available:\n{path}")
            return
        is_pdf = kind == "pdf" or path.lower().endswith(".pdf")
        if is_pdf and self.pdf_view is not None:
            self._show_pdf(path, shown, page, text)
            return
        where = f" — page {page}" if page and is_pdf else ""
        where += f" — line {line}" if line else ""
        self.header.setText(shown + where)
        try:
            size = file.stat().st_size
        except OSError as exc:
            self._show_message(f"The file cannot be read:\n{exc.strerror or exc}")
            return
        # Logs keep one record per row; prose (mail, documents) wraps to the width.
        self.text_view.setLineWrapMode(
            QPlainTextEdit.LineWrapMode.NoWrap if kind == "log"
            else QPlainTextEdit.LineWrapMode.WidgetWidth)
        if size < BACKGROUND_BYTES:
            self._on_loaded(self._request, _load_text(path, name, page, line))
            return
        self._show_message("Loading…")
        request = self._request
        signals = self._signals

        def work() -> None:
            loaded = _load_text(path, name, page, line)
            with contextlib.suppress(RuntimeError):  # the viewer was closed meanwhile
                signals.loaded.emit(request, loaded)

        threading.Thread(target=work, name="viewer-load", daemon=True).start()

    def message_text(self) -> str:
        """The message shown instead of a document ("" when a document is shown)."""
        return self.message.text() if self.stack.currentWidget() is self.message else ""

    # -- PDF -------------------------------------------------------------------------------

    def _show_pdf(self, path: str, shown: str, page: int | None, text: str) -> None:
        assert self.pdf_document is not None
        assert self.pdf_view is not None
        assert self.search_model is not None
        self.search_model.setSearchString("")
        self.pdf_document.close()
        error = self.pdf_document.load(path)
        if error != QPdfDocument.Error.None_:
            self.header.setText(shown)
            self._show_message(_pdf_error(error, path))
            return
        count = self.pdf_document.pageCount()
        target = max(1, min(page or 1, count)) if count else 1
        self.header.setText(f"{shown} — page {target}" + (f" of {count}" if count else ""))
        self.stack.setCurrentWidget(self.pdf_view)
        self.pdf_view.pageNavigator().jump(target - 1, QPointF(), 0)
        needle = _search_string(text)
        if needle:
            self._search_page = target - 1
            self.search_model.setSearchString(needle)
            self._select_search_result()

    def _select_search_result(self) -> None:
        """Make the first hit on the cited page the current (strongly highlighted) one."""
        if self._search_page is None or self.search_model is None or self.pdf_view is None:
            return
        model = self.search_model
        role = int(QPdfSearchModel.Role.Page.value)
        for row in range(model.count()):
            if model.data(model.index(row, 0), role) == self._search_page:
                page = self._search_page
                self._search_page = None
                self.pdf_view.setCurrentSearchResultIndex(row)
                # Selecting a hit scrolls to it; keep the cited page current.
                navigator = self.pdf_view.pageNavigator()
                if navigator.currentPage() != page:
                    navigator.jump(page, QPointF(), 0)
                return

    # -- text ------------------------------------------------------------------------------

    def _on_loaded(self, request: int, loaded: _Loaded) -> None:
        if request != self._request:
            return  # a newer location was asked for meanwhile
        if loaded.error is not None or loaded.text is None:
            self._show_message(loaded.error or "Could not read this file.")
            return
        view = self.text_view
        view.setExtraSelections([])
        view.setPlainText(loaded.text)
        self.stack.setCurrentWidget(view)
        if loaded.line_index is None:
            view.moveCursor(QTextCursor.MoveOperation.Start)
            return
        block = view.document().findBlockByNumber(loaded.line_index)
        if not block.isValid():
            block = view.document().lastBlock()
        cursor = QTextCursor(block)
        view.setTextCursor(cursor)
        selection = QTextEdit.ExtraSelection()
        selection.format.setBackground(LINE_HIGHLIGHT)
        selection.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
        line_cursor = QTextCursor(block)
        line_cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock,
                                 QTextCursor.MoveMode.KeepAnchor)
        selection.cursor = line_cursor
        view.setExtraSelections([selection])
        view.centerCursor()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        # Centring needs the real viewport height, known only once shown.
        if self.stack.currentWidget() is self.text_view:
            self.text_view.centerCursor()

    def _show_message(self, message: str) -> None:
        self.message.setText(message)
        self.stack.setCurrentWidget(self.message)


def _search_string(text: str) -> str:
    """The first ~60 characters of the quote's first non-empty line, whitespace collapsed."""
    for line in text.splitlines():
        flat = " ".join(line.split())
        if flat:
            return flat[:SEARCH_CHARS].rstrip()
    return ""


def _pdf_error(error: object, path: str) -> str:
    name = Path(path).name
    errors = QPdfDocument.Error
    if error in (errors.IncorrectPassword, errors.UnsupportedSecurityScheme):
        return f"{name} is password-protected and cannot be opened here."
    if error == errors.FileNotFound:
        return f"The file is no longer available:\n{path}"
    if error == errors.InvalidFileFormat:
        return f"{name} is not a readable PDF (the file may be damaged)."
    return f"{name} could not be opened."
