"""The citation viewer: a PDF at its page with the quote found, a log at its line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QTextFormat
from PySide6.QtPdf import QPdfSearchModel

from rlm_desktop.corpus.ingest import ingest
from rlm_desktop.ui.viewer import DocumentViewer

# Showing a top-level widget on the offscreen platform always logs this one.
pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


@pytest.fixture
def viewer(qtbot: Any) -> DocumentViewer:
    made = DocumentViewer()
    qtbot.addWidget(made)
    made.resize(900, 700)
    made.show()
    qtbot.waitExposed(made)
    return made


def test_pdf_opens_at_the_cited_page_with_the_quote_found(
    viewer: DocumentViewer, corpus: Path, qtbot: Any
) -> None:
    pdf = corpus / "pdf" / "f1040nr.pdf"
    document = ingest([pdf]).documents[0]
    assert document.pages == 5
    quote = next(line for line in document.page_text(3).splitlines()
                 if line.startswith("Schedule A"))
    viewer.show_location(str(pdf), "pdf", 3, None, quote)

    assert viewer.pdf_view is not None
    assert viewer.search_model is not None
    navigator = viewer.pdf_view.pageNavigator()
    assert navigator.currentPage() == 2
    assert viewer.stack.currentWidget() is viewer.pdf_view
    assert viewer.header.text() == "f1040nr.pdf — page 3 of 5"

    model = viewer.search_model
    qtbot.waitUntil(lambda: viewer.pdf_view.currentSearchResultIndex() >= 0)
    index = model.index(viewer.pdf_view.currentSearchResultIndex(), 0)
    assert model.data(index, int(QPdfSearchModel.Role.Page.value)) == 2
    assert model.resultsOnPage(2)
    qtbot.wait(50)  # layout settles; the cited page stays current
    assert navigator.currentPage() == 2


def test_log_opens_at_the_cited_line_highlighted(
    viewer: DocumentViewer, corpus: Path
) -> None:
    log = corpus / "logs" / "OpenSSH_2k.log"
    viewer.show_location(str(log), "log", None, 1500, "")

    assert viewer.stack.currentWidget() is viewer.text_view
    assert viewer.header.text() == "OpenSSH_2k.log — line 1500"
    assert viewer.text_view.isReadOnly()
    assert viewer.text_view.textCursor().blockNumber() == 1499
    [selection] = viewer.text_view.extraSelections()
    assert selection.cursor.blockNumber() == 1499
    assert selection.format.property(QTextFormat.Property.FullWidthSelection)
    expected = ingest([log]).documents[0].text.split("\n")[1499]
    assert selection.cursor.selectedText() == expected
    # The cited line is on screen, near the middle.
    rect = viewer.text_view.cursorRect()
    height = viewer.text_view.viewport().height()
    assert height * 0.25 < rect.center().y() < height * 0.75


def test_mailbox_message_is_picked_by_name(viewer: DocumentViewer, corpus: Path) -> None:
    mbox = next((corpus / "mail" / "mbox").iterdir())
    documents = ingest([mbox]).documents
    if len(documents) < 2:
        pytest.skip("the mailbox holds one message")
    wanted = documents[1]
    viewer.show_location(str(mbox), wanted.kind, None, 1, "", name=wanted.name)
    assert viewer.text_view.toPlainText() == wanted.text


def test_missing_file_shows_a_message(viewer: DocumentViewer, tmp_path: Path) -> None:
    gone = tmp_path / "gone.pdf"
    viewer.show_location(str(gone), "pdf", 2, None, "anything")
    assert "no longer available" in viewer.message_text()
    assert viewer.stack.currentWidget() is viewer.message


def test_password_protected_pdf_shows_a_message(viewer: DocumentViewer, corpus: Path) -> None:
    locked = corpus / "pdf" / "encrypted" / "libreoffice-writer-password.pdf"
    viewer.show_location(str(locked), "pdf", 1, None, "x")
    assert "password-protected" in viewer.message_text()


def test_big_files_load_in_the_background(
    viewer: DocumentViewer, corpus: Path, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rlm_desktop.ui.viewer.BACKGROUND_BYTES", 0)
    log = corpus / "logs" / "OpenSSH_2k.log"
    viewer.show_location(str(log), "log", None, 20, "")
    assert viewer.message_text() == "Loading…"
    qtbot.waitUntil(lambda: viewer.stack.currentWidget() is viewer.text_view)
    assert viewer.text_view.textCursor().blockNumber() == 19
