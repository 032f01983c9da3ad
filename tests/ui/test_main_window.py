"""The main window as a user drives it: drop files, run against the scripted server, inspect
steps, cancel with Esc, open a citation, and the command-line automation flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication

from rlm_desktop.engine.run import RunResult
from rlm_desktop.testing.scenarios import (
    TICKETS_QUESTION,
    TICKETS_SCRIPT,
    billing_rule,
    write_tickets,
)
from rlm_desktop.testing.server import ScriptedServer, explore_script, scripted_note
from rlm_desktop.ui.answer_view import CITATION_ROLE
from rlm_desktop.ui.app import CrashDialog, install_excepthook
from rlm_desktop.ui.main_window import MainWindow, about_text, window_settings
from rlm_desktop.ui.trace_model import NodeRole

LOGS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "logs"




def drop(window: MainWindow, paths: list[Path]) -> QDropEvent:
    """What the window receives when files are dropped on it."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(QPoint(50, 50)), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    return event


def ingest_by_drop(qtbot: Any, window: MainWindow, paths: list[Path]) -> None:
    with qtbot.waitSignal(window.ingestionFinished, timeout=120_000):
        event = drop(window, paths)
        assert event.isAccepted()
        assert window.corpus.is_ingesting()


def start(qtbot: Any, window: MainWindow, server: ScriptedServer, question: str,
          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    window.question.setPlainText(question)
    assert window.start_run()


def test_window_shows_with_its_parts(window: MainWindow) -> None:
    assert window.isVisible()
    assert window.windowTitle() == "RLM Desktop"
    menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert menus == ["File", "Edit", "Run", "View", "Help"]
    assert not window.cancel_button.isEnabled()
    assert "Qt" in about_text() and "PySide" in about_text() and "Python" in about_text()


def test_dropped_files_are_ingested_and_listed(qtbot: Any, window: MainWindow,
                                               tmp_path: Path) -> None:
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"not a pdf at all")
    ingest_by_drop(qtbot, window, [LOGS / "Apache_2k.log", LOGS / "Linux_2k.log", bad])
    rows = {window.corpus.list.topLevelItem(i).text(1): window.corpus.list.topLevelItem(i)
            for i in range(window.corpus.list.topLevelItemCount())}
    assert set(rows) == {"Apache_2k.log", "Linux_2k.log", "broken.pdf"}
    assert rows["Apache_2k.log"].text(2) == "2,000 lines"
    assert rows["broken.pdf"].text(4).startswith("✗ ")           # the reason, inline
    assert "2 documents" in window.corpus.summary.text()
    assert "tokens" in window.corpus.summary.text()
    assert not window.corpus.progress.isVisible()
    # Dropping the same file again does not list it twice.
    ingest_by_drop(qtbot, window, [LOGS / "Apache_2k.log"])
    assert window.corpus.list.topLevelItemCount() == 3


def test_run_fills_tree_shows_answer_citations_and_inspector(
        qtbot: Any, window: MainWindow, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    tickets = write_tickets(tmp_path / "tickets.csv")
    ingest_by_drop(qtbot, window, [tickets.path])
    with (ScriptedServer(TICKETS_SCRIPT, [billing_rule()]) as server,
          qtbot.waitSignal(window.runFinished, timeout=120_000) as finished):
        start(qtbot, window, server, TICKETS_QUESTION, monkeypatch)
        assert window.cancel_button.isEnabled() and not window.run_button.isEnabled()
    result: RunResult = finished.args[0]
    assert result.status == "completed", result.error
    assert window.model.node_count() > 10
    kinds = {window.model.data(window.model.index(r, 0, window.model.index(0, 0)), NodeRole).kind
             for r in range(window.model.rowCount(window.model.index(0, 0)))}
    assert {"root_call", "code", "final"} <= kinds
    assert window.answer.answer == f"{len(tickets.billing_lines)} billing questions"
    assert window.answer.citations.count() == len(tickets.billing_lines)
    first = window.answer.citations.item(0)
    assert first.text().startswith("[1] tickets.csv (line ")
    assert window.answer.browser.toPlainText().startswith(window.answer.answer)
    assert f"tokens: {result.usage.total_tokens:,}" == window.tokens_label.text()
    assert window.sandbox_label.text().startswith("sandbox: ")
    assert "starting" not in window.sandbox_label.text()
    assert window.run_button.isEnabled() and not window.cancel_button.isEnabled()

    # Selecting a child call shows its full prompt and reply.
    child = next(n for n in window.model_nodes() if n.kind == "llm_query")
    assert window.select_node(child.id)
    inspector = window.inspector
    assert "Child call" in inspector.title.text()
    assert inspector.input.text.toPlainText().startswith(
        "Is this support ticket a billing question")
    assert inspector.output.text.toPlainText() in ("yes", "no")
    assert "Usage:" in inspector.meta.text() and "Latency:" in inspector.meta.text()
    assert "── Output ──" in inspector.full_text

    # The filter keeps matching steps (and their ancestors) only.
    window.filter_action.trigger()
    assert window.filter.hasFocus()
    qtbot.keyClicks(window.filter, "Final")
    assert window.proxy.rowCount(window.proxy.index(0, 0)) == 1

    # A citation click opens the document viewer at the cited line.
    with qtbot.waitSignal(window.answer.citationActivated):
        window.answer.citations.itemClicked.emit(first)
    assert window.viewer_dock is not None and window.viewer_dock.isVisible()
    assert first.data(CITATION_ROLE)["line"] >= 1




def test_answer_never_loads_remote_resources(window: MainWindow) -> None:
    window.answer.show_answer("See ![x](http://example.com/pixel.png) and "
                              "[a link](https://example.com/)", [])
    window.answer.browser.grab()
    assert set(window.answer.browser.remote_requests) == {"http://example.com/pixel.png"}
    assert not window.answer.browser.openLinks()
    assert not window.answer.browser.openExternalLinks()


def test_escape_cancels_a_run(qtbot: Any, window: MainWindow, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    ingest_by_drop(qtbot, window, [write_tickets(tmp_path / "tickets.csv").path])
    with ScriptedServer(TICKETS_SCRIPT, [billing_rule()], child_latency=30.0) as server:
        start(qtbot, window, server, TICKETS_QUESTION, monkeypatch)
        qtbot.waitUntil(lambda: any(n.kind == "llm_query" for n in window.model_nodes()),
                        timeout=60_000)
        window.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5_000)
        with qtbot.waitSignal(window.runFinished, timeout=10_000) as finished:
            qtbot.keyClick(window.question, Qt.Key.Key_Escape)
    assert finished.args[0].status == "cancelled"
    assert window.run_button.isEnabled()


def test_geometry_and_splitters_are_restored(qtbot: Any, window: MainWindow,
                                             app_home: Path) -> None:
    window.resize(760, 560)  # inside the offscreen screen, which restoreGeometry respects
    window.top_splitter.setSizes([150, 400, 200])
    window.main_splitter.setSizes([300, 150])
    sizes = window.top_splitter.sizes(), window.main_splitter.sizes()
    window.close()
    assert Path(window_settings().fileName()).is_relative_to(app_home)
    again = MainWindow()
    qtbot.addWidget(again)
    again.show()
    qtbot.waitExposed(again)
    assert (again.width(), again.height()) == (760, 560)
    assert (again.top_splitter.sizes(), again.main_splitter.sizes()) == sizes


def test_an_exception_in_a_slot_shows_the_crash_dialog(qtbot: Any, window: MainWindow) -> None:
    previous = install_excepthook()
    try:
        try:
            raise ValueError("boom in a slot")
        except ValueError:
            sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]
    finally:
        sys.excepthook = previous
    dialogs = [w for w in QApplication.topLevelWidgets()
               if isinstance(w, CrashDialog) and w.isVisible()]
    assert dialogs and "boom in a slot" in dialogs[0].detailedText()
    dialogs[0].close()


def test_command_line_runs_and_saves_a_screenshot(tmp_path: Path, app_home: Path) -> None:
    shot = tmp_path / "shot.png"
    with ScriptedServer(explore_script, scripted_note) as server:
        env = {**os.environ, "RLM_DESKTOP_HOME": str(app_home), "QT_QPA_PLATFORM": "offscreen",
               "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "k"}
        done = subprocess.run(
            [sys.executable, "-m", "rlm_desktop", str(LOGS / "Apache_2k.log"),
             "--question", "Which errors appear?", "--run", "--screenshot", str(shot),
             "--exit-when-done"], env=env, capture_output=True, text=True, timeout=180,
            check=False)
        assert done.returncode == 0, done.stderr
        assert any(r.role == "root" for r in server.requests)
    assert shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
