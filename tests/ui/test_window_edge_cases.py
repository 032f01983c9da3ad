"""The window where it is easy to get wrong: a rerun being prepared while the user acts,
saved runs whose files share names with today's corpus, text that looks like HTML, code with
emoji, a record that cannot be read, a disk that stops taking writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QMessageBox

from rlm_desktop.engine.run import RunResult
from rlm_desktop.engine.trace import TraceNode
from rlm_desktop.testing import demo
from rlm_desktop.ui.inspector import LOCATION_ROLE, Inspector
from rlm_desktop.ui.main_window import MainWindow


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Message boxes the window raised (never shown: a modal box would block the test)."""
    said: list[str] = []

    def warning(parent: Any, title: str, text: str, *args: Any) -> Any:
        said.append(f"{title}: {text}")
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "warning", warning)
    return said


def test_highlighting_stays_aligned_after_an_emoji(qtbot: Any) -> None:
    inspector = Inspector()
    qtbot.addWidget(inspector)
    code = 'x = "🔍🔍🔍🔍"  # note\nimport os\n'
    node = TraceNode(id=3, parent=1, kind="code", depth=0, input=code, started=1.0)
    node.ended = 2.0
    inspector.show_node(node)
    document = inspector.input.text.document()
    first, second = document.firstBlock(), document.firstBlock().next()
    colour = {f.start: (f.length, f.format.foreground().color().name())
              for f in first.layout().formats()}
    # The string (quotes included) spans 10 UTF-16 units from column 4; the comment follows.
    string_start = 4
    assert colour[string_start][0] == 10
    comment = next(f for f in first.layout().formats() if f.format.fontItalic())
    assert comment.start == len('x = "🔍🔍🔍🔍"  '.encode("utf-16-le")) // 2
    keyword = min(second.layout().formats(), key=lambda f: f.start)
    assert (keyword.start, keyword.length) == (0, len("import"))


def test_places_show_document_text_as_written(qtbot: Any) -> None:
    inspector = Inspector()
    qtbot.addWidget(inspector)
    node = TraceNode(id=4, parent=1, kind="grep", depth=0, input={"pattern": "x"},
                     output={"hits": 1, "sample": [{"doc": "a.log", "page": None, "line": 2,
                                                    "text": "if a < b and c > d: <b>x</b>"}]},
                     started=1.0)
    node.ended = 2.0
    inspector.show_node(node)
    item = inspector.places.topLevelItem(0)
    assert item.text(3) == "if a < b and c > d: <b>x</b>"
    assert item.toolTip(3) == ('<p style="white-space:pre-wrap">if a &lt; b and c &gt; d: '
                               "&lt;b&gt;x&lt;/b&gt;</p>")


def test_nothing_else_starts_while_a_rerun_is_prepared(
        qtbot: Any, window: MainWindow, demo_result: RunResult) -> None:
    saved = window.investigation_id
    assert window.rerun_investigation(saved, True)
    # While its files are read again: no other run, no demo, no opening, no second rerun.
    assert not window.run_button.isEnabled() and not window.run_action.isEnabled()
    assert not window.start_run()
    assert not window.open_investigation(saved)
    assert not window.rerun_investigation(saved, True)
    assert not window.history.open_button.isEnabled()
    with qtbot.waitSignal(window.runFinished, timeout=120_000) as finished:
        pass
    assert finished.args[0].answer == demo_result.answer
    assert window.run_button.isEnabled()


def test_closing_while_a_rerun_is_prepared_starts_nothing(
        qtbot: Any, window: MainWindow, demo_result: RunResult) -> None:
    saved = window.investigation_id
    assert window.rerun_investigation(saved, True)
    window.close()
    qtbot.wait(1500)       # the plan arrives after the close and is dropped
    assert window.bridge.run is None
    assert window.store() is None


def test_a_saved_run_opens_its_own_files_not_same_named_ones(
        qtbot: Any, window: MainWindow, demo_result: RunResult, tmp_path: Path) -> None:
    saved = window.investigation_id
    window.leave_demo()
    other = tmp_path / "other"
    other.mkdir()
    decoy = other / "approvals.log"
    decoy.write_text("an unrelated log with the same name\n", encoding="utf-8")
    fresh = MainWindow()
    qtbot.addWidget(fresh)
    with qtbot.waitSignal(fresh.ingestionFinished, timeout=120_000):
        assert fresh.add_paths([str(decoy)])
    assert fresh.open_investigation(saved)
    grep = next(n for n in fresh.model_nodes() if n.kind == "grep"
                and n.input["target"] == "approvals.log")
    assert fresh.select_node(grep.id)
    place = fresh.inspector.places.topLevelItem(0).data(0, LOCATION_ROLE)
    assert Path(place["path"]) == demo.bundled_corpus()[0]
    fresh.close()


def test_saved_model_names_are_shown_as_text(qtbot: Any, window: MainWindow,
                                              demo_result: RunResult) -> None:
    saved = window.investigation_id
    store = window.store()
    assert store is not None
    store.submit(lambda conn: conn.execute(
        "UPDATE investigations SET settings = json_set(settings, '$.model', '<b>m</b>') "
        "WHERE id = ?", (saved,)), wait=True)
    assert window.open_investigation(saved)
    assert "&lt;b&gt;m&lt;/b&gt;" in window.record_banner.text()
    assert window.model_label.text() == "model: <b>m</b> (saved run)"


def test_a_record_that_cannot_be_read_gets_a_message_not_a_crash(
        qtbot: Any, window: MainWindow, demo_result: RunResult, warnings: list[str]) -> None:
    saved = window.investigation_id
    store = window.store()
    assert store is not None
    store.submit(lambda conn: conn.execute(
        "UPDATE investigations SET settings = '{not json' WHERE id = ?", (saved,)), wait=True)
    assert not window.open_investigation(saved)
    assert warnings and warnings[0].startswith("Investigation: This investigation cannot")


def test_a_run_the_disk_would_not_take_says_so(
        qtbot: Any, window: MainWindow, warnings: list[str]) -> None:
    with qtbot.waitSignal(window.ingestionFinished, timeout=120_000):
        assert window.start_demo()
    store = window.store()
    assert store is not None
    with qtbot.waitSignal(window.runFinished, timeout=120_000) as finished:
        assert window.start_run()
        # Like a disk that fills up once the run is under way: every later write fails.
        store.submit(lambda conn: conn.execute("PRAGMA query_only = ON"), wait=True)
    assert finished.args[0].status == "completed"
    qtbot.waitUntil(lambda: bool(warnings))
    assert warnings[0].startswith("Saving the investigation: The steps of this run could")
    assert "not saved completely" in window.statusBar().currentMessage()


def test_the_sandbox_level_shows_while_the_run_goes_on(qtbot: Any, window: MainWindow) -> None:
    with qtbot.waitSignal(window.ingestionFinished, timeout=120_000):
        assert window.start_demo()
    seen: list[str] = []
    window.bridge.events.connect(lambda _events: seen.append(window.sandbox_label.text()))
    with qtbot.waitSignal(window.runFinished, timeout=120_000) as finished:
        assert window.start_run()
    level = finished.args[0].sandbox["level"]
    during = [text for text in seen if text != "sandbox: starting…"]
    assert during and during[0] == f"sandbox: {level}"
    # Shown while steps were still arriving, not only once the run was over.
    assert seen.index(during[0]) < len(seen) - 3


def test_unlabelled_parts_have_names_for_screen_readers(window: MainWindow) -> None:
    assert window.question.accessibleName() == "Question"
    assert window.tree.accessibleName() == "Steps of the run"
    assert window.inspector.output.text.accessibleName() == "Output of the selected step"
    assert window.history.list.accessibleName() == "Saved investigations"
