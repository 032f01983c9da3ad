"""The first launch, the demo, the step-kind filter and the inspector's clickable places, as
a user meets them: the welcome page, `--demo` answered by the scripted server (and saying
so), highlighted code, and hits, chunks and citations that open the document at the line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tree_support import walk

from rlm_desktop.corpus.ingest import ingest
from rlm_desktop.engine.run import RunResult
from rlm_desktop.engine.trace import TraceNode
from rlm_desktop.testing import demo
from rlm_desktop.ui.inspector import LOCATION_ROLE, Inspector, locations
from rlm_desktop.ui.main_window import MainWindow
from rlm_desktop.ui.trace_model import NodeRole

RESOURCES = Path(demo.__file__).resolve().parents[1] / "resources" / "demo"








def test_bundled_demo_corpus_is_what_the_generator_writes(tmp_path: Path) -> None:
    written = demo.write_corpus(tmp_path)
    for made in written:
        assert (RESOURCES / made.name).read_bytes() == made.read_bytes(), made.name
    assert [p.name for p in demo.bundled_corpus()] == list(demo.CORPUS_FILES)
    # The known answer is really in the data: three orders above the limit, one approval.
    log = (RESOURCES / "approvals.log").read_text(encoding="utf-8")
    for po, approver in demo.SINGLE_APPROVAL.items():
        approvals = [line for line in log.splitlines()
                     if f"po={po} " in line and "event=approval" in line]
        assert [line.split("approver=")[1].split()[0] for line in approvals] == [approver]
    policy = ingest([RESOURCES / "procurement-policy.pdf"]).documents[0]
    assert policy.meta.get("pages") == 2 or len(policy.page_starts) == 2
    assert "above EUR 10,000 require approval by two different" in policy.text


def test_first_launch_shows_the_welcome_page_until_a_run(qtbot: Any,
                                                         window: MainWindow) -> None:
    assert window.trace_stack.currentWidget() is window.welcome
    assert window.welcome.isVisible() and not window.tree.isVisible()
    assert not window.demo_row.isVisible()
    assert "scripted" not in window.model_label.text()
    with qtbot.waitSignal(window.ingestionFinished, timeout=120_000):
        window.welcome.demo_button.click()
    assert window.welcome.documents_status.text() == "✓ 9 documents ready"
    assert window.trace_stack.currentWidget() is window.welcome
    with qtbot.waitSignal(window.runFinished, timeout=120_000):
        assert window.start_run()
    assert window.tree.isVisible() and not window.welcome.isVisible()


def test_demo_says_it_is_scripted_and_answers_with_citations(
        qtbot: Any, window: MainWindow, demo_result: RunResult) -> None:
    result = demo_result
    # Plainly not a language model, everywhere the model is named.
    assert window.demo_row.isVisible()
    assert "scripted stand-in server" in window.demo_banner.text()
    assert "not from a language model" in window.demo_banner.text()
    assert window.model_label.text() == "model: scripted demo (not a language model)"
    assert window.question.toPlainText() == demo.QUESTION
    for po in demo.SINGLE_APPROVAL:
        assert po in result.answer
    assert result.answer.startswith("3 purchase orders above EUR 10,000")
    cited = {(c["document"], c["page"]) for c in result.citations}
    assert ("procurement-policy.pdf", 2) in cited
    kinds = {node.kind for node in window.model_nodes()}
    assert {"root_call", "code", "peek", "grep", "partition", "llm_query", "final"} <= kinds
    # Leaving the demo goes back to the configured model and stops the server.
    server = window._demo_server
    window.leave_demo()
    assert not window.demo_row.isVisible() and not window.in_demo
    assert "scripted" not in window.model_label.text()
    assert server.stopping.is_set()


def test_an_other_question_in_the_demo_is_answered_honestly(qtbot: Any,
                                                            window: MainWindow) -> None:
    with qtbot.waitSignal(window.ingestionFinished, timeout=120_000):
        assert window.start_demo()
    window.question.setPlainText("Who is the CEO?")
    with qtbot.waitSignal(window.runFinished, timeout=120_000) as finished:
        assert window.start_run()
    assert finished.args[0].answer == demo.OTHER_QUESTION_ANSWER


def test_kind_filter_hides_other_steps_but_keeps_the_run(
        qtbot: Any, window: MainWindow, demo_result: RunResult) -> None:
    for kind, action in window.kind_actions.items():
        action.setChecked(kind == "llm_query")
    assert window.kinds_button.text() == "1 of 8 kinds"
    run = window.proxy.index(0, 0)
    shown = [window.proxy.data(index, NodeRole).kind for index in walk(window.proxy, run)]
    # The child calls, and the code cells that made them, so they are seen in place.
    assert "llm_query" in shown and "grep" not in shown and "root_call" not in shown
    assert set(shown) <= {"llm_query", "code"}
    window.show_all_kinds()
    assert window.kinds_button.text() == "All steps"
    assert window.proxy.kinds is None


def test_code_is_highlighted_and_grep_hits_open_the_document_at_the_line(
        qtbot: Any, window: MainWindow, demo_result: RunResult) -> None:
    nodes = window.model_nodes()
    code = next(n for n in nodes if n.kind == "code")
    assert window.select_node(code.id)
    inspector = window.inspector
    assert inspector.input.label.text() == "<b>Code</b>"
    assert inspector.input.text.toPlainText() == code.input
    block = inspector.input.text.document().firstBlock()
    formats = block.layout().formats()
    assert formats, "the code cell has no syntax colours"
    colours = {f.format.foreground().color().name() for f in formats}
    assert len(colours) >= 2      # e.g. builtins and strings differ
    assert inspector.output.text.toPlainText().startswith("9 documents")

    # A grep over the log: its hits are listed and one opens the log at that line.
    grep = next(n for n in nodes if n.kind == "grep"
                and n.input["target"] == "approvals.log")
    assert window.select_node(grep.id)
    assert inspector.places_box.isVisible()
    assert inspector.places.topLevelItemCount() == 20
    item = inspector.places.topLevelItem(4)
    place = item.data(0, LOCATION_ROLE)
    assert place["path"].endswith("approvals.log") and place["line"] >= 1
    inspector.places.itemActivated.emit(item, 0)
    viewer = window.viewer_dock.widget()
    assert window.viewer_dock.isVisible()
    assert viewer.header.text() == f"approvals.log — line {place['line']}"
    [selection] = viewer.text_view.extraSelections()
    assert selection.cursor.blockNumber() == place["line"] - 1
    assert selection.cursor.selectedText() == place["text"]


def test_partition_sources_and_answer_citations_open_mail_and_pdf(
        qtbot: Any, window: MainWindow, demo_result: RunResult) -> None:
    result = demo_result
    nodes = window.model_nodes()
    partition = next(n for n in nodes if n.kind == "partition")
    found = locations(partition)
    assert [p.chunk for p in found] == [0, 0, 0, 1, 1, 1, 2]
    assert [p.document for p in found][:2] == ["procurement.mbox#1", "procurement.mbox#2"]

    # Clicking a mail citation in the answer lands on the cited line of that message.
    mail = next(c for c in result.citations if c["document"] == "procurement.mbox#2"
                and "Dana is on leave" in c["text"])
    window.open_citation(mail)
    viewer = window.viewer_dock.widget()
    [selection] = viewer.text_view.extraSelections()
    assert selection.cursor.blockNumber() == mail["line"] - 1
    assert "Dana is on leave" in selection.cursor.selectedText()
    cursor = viewer.text_view.textCursor()
    assert cursor.blockNumber() == mail["line"] - 1

    # The final step lists the citations; the PDF one opens the policy at page 2.
    final = next(n for n in nodes if n.kind == "final")
    assert window.select_node(final.id)
    first = window.inspector.places.topLevelItem(0)
    assert first.text(0) == "procurement-policy.pdf" and first.text(1) == "2"
    window.inspector.places.itemActivated.emit(first, 0)
    if viewer.pdf_view is not None:
        assert viewer.pdf_view.pageNavigator().currentPage() == 1
    assert "page 2" in viewer.header.text() or "procurement-policy.pdf" in viewer.header.text()


def test_inspector_caps_long_outputs_and_shows_all_on_request(qtbot: Any) -> None:
    inspector = Inspector()
    qtbot.addWidget(inspector)
    node = TraceNode(id=5, parent=1, kind="code", depth=0, input="print('x' * 10**6)",
                     started=100.0, output="x" * 1_000_000)
    node.ended = node.started + 0.25
    inspector.show_node(node)
    assert inspector.output.text.document().characterCount() - 1 == 200_000
    assert inspector.show_all_button.isVisibleTo(inspector)
    inspector.show_all()
    assert inspector.output.text.document().characterCount() - 1 == 1_000_000
    assert not inspector.places_box.isVisibleTo(inspector)
    inspector.show_node(None)
    assert not inspector.splitter.isVisibleTo(inspector)


def test_errors_are_red_in_the_inspector(qtbot: Any) -> None:
    inspector = Inspector()
    qtbot.addWidget(inspector)
    node = TraceNode(id=2, parent=1, kind="llm_query", depth=0,
                     input={"prompt": "Summarise <this>", "index": 3}, started=100.0,
                     error="RateLimitError: slow down")
    node.ended = node.started + 1.0
    inspector.show_node(node)
    assert "Batch item: 3" in inspector.meta.text()
    assert 'color:#c62828">Error: RateLimitError' in inspector.meta.text()
    assert inspector.input.text.toPlainText() == "Summarise <this>"
    assert inspector.input.label.text() == "<b>Prompt</b>"
    assert not inspector.highlighter._spans


def test_demo_from_the_command_line(tmp_path: Path, app_home: Path) -> None:
    shot = tmp_path / "demo.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-m", "rlm_desktop", "--demo", "--run", "--screenshot", str(shot),
         "--exit-when-done"], env=env, capture_output=True, text=True, timeout=180,
        check=False)
    assert done.returncode == 0, done.stderr
    assert shot.stat().st_size > 10_000
