"""Saved investigations in the window: every run is recorded, listed in the history, and
reopens exactly as it was; a rerun from the record costs no model call; exports and delete
work from the app; changed files are pointed out."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from rlm_desktop.engine.run import RunResult
from rlm_desktop.testing import demo
from rlm_desktop.ui.history import ID_ROLE
from rlm_desktop.ui.main_window import MainWindow


def history_ids(window: MainWindow) -> list[str]:
    listing = window.history.list
    return [listing.topLevelItem(i).data(0, ID_ROLE) for i in range(listing.topLevelItemCount())]


def test_a_run_is_saved_and_reopens_exactly_as_it_was(qtbot: Any, window: MainWindow,
                                                      demo_result: RunResult) -> None:
    result = demo_result
    saved = window.investigation_id
    assert saved is not None
    qtbot.waitUntil(lambda: history_ids(window) == [saved])
    row = window.history.list.topLevelItem(0)
    assert row.text(1) == demo.QUESTION and row.text(3) == "completed"
    assert row.text(2).startswith("3 files")
    steps = [(n.id, n.kind, n.input, n.output, n.error) for n in window.model_nodes()]

    again = MainWindow()
    qtbot.addWidget(again)
    again.show()
    qtbot.waitUntil(lambda: history_ids(again) == [saved])
    assert again.open_investigation(saved)
    assert again.trace_stack.currentWidget() is not again.welcome
    assert [(n.id, n.kind, n.input, n.output, n.error) for n in again.model_nodes()] == steps
    assert again.answer.answer == result.answer
    assert again.answer.citations.count() == len(result.citations)
    assert again.question.toPlainText() == demo.QUESTION
    assert again.inspector.node is not None and again.inspector.node.kind == "final"
    assert again.record_banner.isVisible()
    qtbot.waitUntil(lambda: len(again.file_checks) == 3)
    assert "all 3 files unchanged since" in again.record_banner.text()
    # Its grep hits still open the files (the corpus panel of this window is empty).
    grep = next(n for n in again.model_nodes() if n.kind == "grep")
    assert again.select_node(grep.id)
    item = again.inspector.places.topLevelItem(0)
    assert not item.isDisabled()
    again.inspector.places.itemActivated.emit(item, 0)
    assert again.viewer_dock is not None and again.viewer_dock.isVisible()
    # "Load its documents" puts the files back in the corpus, to ask more.
    assert "Load its documents" in again.record_banner.text()
    with qtbot.waitSignal(again.ingestionFinished, timeout=120_000):
        again.record_banner.linkActivated.emit("load-documents")
    assert len(again.corpus.documents()) == 9
    assert "Load its documents" not in again.record_banner.text()
    again.close()


def test_rerun_from_the_record_makes_no_model_call(qtbot: Any, window: MainWindow,
                                                   demo_result: RunResult) -> None:
    result = demo_result
    original = window.investigation_id
    server = window._demo_server
    calls = len(server.requests)
    window.leave_demo()              # the server is gone: only the record can answer
    with qtbot.waitSignal(window.runFinished, timeout=120_000) as finished:
        assert window.rerun_investigation(original, True)
    replayed: RunResult = finished.args[0]
    assert replayed.status == "completed", replayed.error
    assert replayed.answer == result.answer
    assert replayed.citations == result.citations
    assert len(server.requests) == calls
    qtbot.waitUntil(lambda: len(history_ids(window)) == 2)
    assert window.history.list.topLevelItem(0).text(3) == "completed (replay)"
    assert window.investigation_id != original


def test_exports_and_delete_from_the_app(qtbot: Any, window: MainWindow,
                                         demo_result: RunResult, tmp_path: Path) -> None:
    result = demo_result
    saved = window.investigation_id
    assert window.export_menu.isEnabled()
    html_file, json_file, csv_file = (tmp_path / f"report.{f}" for f in ("html", "json",
                                                                          "csv"))
    assert window.export_investigation(saved, "html", html_file)
    assert window.export_investigation(saved, "json", json_file)
    assert window.export_investigation(saved, "csv", csv_file)
    html = html_file.read_text(encoding="utf-8")
    HTMLParser().feed(html)
    for node in window.model_nodes():
        assert f'id="node-{node.id}"' in html
    assert json.loads(json_file.read_text(encoding="utf-8"))["answer"] == result.answer
    rows = list(csv.reader(io.StringIO(csv_file.read_text(encoding="utf-8"))))
    assert len(rows) == 1 + len(result.citations)
    assert oct(html_file.stat().st_mode & 0o777) == "0o600"

    assert window.delete_investigation(saved, confirm=False)
    qtbot.waitUntil(lambda: history_ids(window) == [])
    assert window.investigation_id is None
    assert not window.export_menu.isEnabled()
    assert window.history.empty.isVisibleTo(window.history)


def test_changed_and_missing_files_are_pointed_out(qtbot: Any, window: MainWindow,
                                                   tmp_path: Path) -> None:
    copies = []
    for path in demo.bundled_corpus():
        copies.append(Path(shutil.copy(path, tmp_path / path.name)))
    with qtbot.waitSignal(window.ingestionFinished, timeout=120_000):
        assert window.start_demo()
    # A fresh window on the copies, answered by the demo server.
    other = MainWindow()
    qtbot.addWidget(other)
    other._demo_server = window._demo_server
    other.question.setPlainText(demo.QUESTION)
    with qtbot.waitSignal(other.ingestionFinished, timeout=120_000):
        assert other.add_paths([str(p) for p in copies])
    with qtbot.waitSignal(other.runFinished, timeout=120_000):
        assert other.start_run()
    saved = other.investigation_id
    other._demo_server = None
    other.close()

    with copies[0].open("a", encoding="utf-8") as log:
        log.write("2026-03-09T00:00:00Z INFO procurement po=PO-9999 event=created\n")
    copies[2].unlink()
    assert window.open_investigation(saved)
    qtbot.waitUntil(lambda: len(window.file_checks) == 3)
    states = {Path(c.path).name: c.state for c in window.file_checks}
    assert states == {"approvals.log": "changed", "procurement-policy.pdf": "ok",
                      "procurement.mbox": "missing"}
    banner = window.record_banner.text()
    assert "1 changed since: approvals.log" in banner
    assert "1 missing: procurement.mbox" in banner


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX")
def test_app_killed_mid_run_leaves_an_interrupted_investigation(
        qtbot: Any, app_home: Path, tmp_path: Path) -> None:
    """The window itself, killed with SIGKILL while the demo runs: on the next launch the
    history lists the run as interrupted, and it reopens with every step up to the kill."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "RLM_DESKTOP_HOME": str(app_home)}
    app = subprocess.Popen([sys.executable, "-m", "rlm_desktop", "--demo", "--run"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    database = app_home / "data" / "investigations.sqlite3"
    try:
        # Wait until the recording has reached the child calls (turn 4 of 5), then kill.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if database.exists() and _recorded(database, "llm_query"):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the app never recorded a child call")
        app.send_signal(signal.SIGKILL)
        app.wait(30)
    finally:
        if app.poll() is None:
            app.kill()

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.history.list.topLevelItemCount() == 1)
    row = window.history.list.topLevelItem(0)
    assert row.text(3) == "interrupted"
    assert window.open_investigation(row.data(0, ID_ROLE))
    kinds = [n.kind for n in window.model_nodes()]
    assert kinds.count("root_call") >= 4 and "llm_query" in kinds and "final" not in kinds
    assert "Interrupted" in window.record_banner.text() or "interrupted" in (
        window.record_banner.text())
    # Steps cut short are shown as interrupted, not as still running.
    assert all(n.finished for n in window.model_nodes())
    window.close()


def _recorded(database: Path, kind: str) -> bool:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as conn:
            return bool(conn.execute("SELECT 1 FROM nodes WHERE kind = ? LIMIT 1",
                                     (kind,)).fetchone())
    except sqlite3.Error:
        return False


def test_a_cancelled_run_is_resumed_from_the_history(qtbot: Any, window: MainWindow) -> None:
    with qtbot.waitSignal(window.ingestionFinished, timeout=120_000):
        assert window.start_demo()
    stopped: list[bool] = []

    def stop_after_two_turns(events: list[Any]) -> None:
        turns = [n for n in window.model_nodes() if n.kind == "root_call" and n.finished]
        if len(turns) >= 2 and not stopped:
            stopped.append(True)
            window.cancel_run()

    window.bridge.events.connect(stop_after_two_turns)
    with qtbot.waitSignal(window.runFinished, timeout=120_000) as finished:
        assert window.start_run()
    window.bridge.events.disconnect(stop_after_two_turns)
    assert finished.args[0].status == "cancelled"
    cut = window.investigation_id
    server = window._demo_server
    asked = len(server.requests)

    with qtbot.waitSignal(window.runFinished, timeout=120_000) as finished:
        assert window.rerun_investigation(cut, "resume")
    result = finished.args[0]
    assert result.status == "completed", result.error
    assert result.answer.startswith("3 purchase orders above EUR 10,000")
    # Only what the record lacks is asked again: the turns answered before the cancel come
    # from the record (a turn in flight when it stopped was never answered, so it is asked).
    store = window.store()
    assert store is not None
    answered = sum(1 for n in store.load(cut).nodes
                   if n.kind == "root_call" and n.finished and not n.error)
    live_turns = sum(1 for r in server.requests[asked:] if r.role == "root")
    assert answered >= 2 and live_turns == 5 - answered
    qtbot.waitUntil(lambda: window.history.list.topLevelItemCount() == 2)
    assert window.history.list.topLevelItem(0).text(3) == "completed (resumed)"
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("Resumed: "))
    assert f"{answered} model calls from the record" in window.statusBar().currentMessage()
    # Resume is offered for the run cut short, not for the completed one.
    window.history.select(window.investigation_id)
    assert not window.history.resume_action.isEnabled()
    window.history.select(cut)
    assert window.history.resume_action.isEnabled()


def test_a_live_rerun_with_other_models(qtbot: Any, window: MainWindow,
                                        demo_result: RunResult) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QLineEdit

    saved = window.investigation_id

    def choose() -> None:
        dialog = window.models_dialog
        assert dialog is not None
        root, child = dialog.findChildren(QLineEdit)
        assert root.text() == demo.MODEL          # prefilled with the models in use
        root.setText("bigger-model")
        child.setText("smaller-model")
        dialog.accept()

    QTimer.singleShot(100, choose)
    with qtbot.waitSignal(window.runFinished, timeout=120_000) as finished:
        assert window.rerun_investigation(saved, "choose")
    assert finished.args[0].status == "completed"
    store = window.store()
    assert store is not None
    rerun = store.load(window.investigation_id)
    assert (rerun.model, rerun.sub_model) == ("bigger-model", "smaller-model")
    assert rerun.replay_of == saved and rerun.settings["rerun"] == "live"
    qtbot.waitUntil(lambda: window.history.list.topLevelItemCount() == 2)
    assert window.history.list.topLevelItem(0).text(3) == "completed (live rerun)"
    # Cancelling the choice starts nothing.
    QTimer.singleShot(100, lambda: window.models_dialog.reject())  # noqa: PLW0108 - made later
    assert not window.rerun_investigation(saved, "choose")
    assert window.bridge.run is None
