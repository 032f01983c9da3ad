"""The live trace model: checked by Qt's model tester while batches stream in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QSize, Qt
from tree_support import walk

from rlm_desktop.engine.summary import summarize
from rlm_desktop.engine.trace import Trace, TraceEvent, TraceNode, Usage
from rlm_desktop.ui.trace_model import (
    COST,
    DURATION,
    STEP,
    SUMMARY,
    TOKENS,
    NodeRole,
    TraceFilterProxy,
    TraceTreeModel,
)


class Recorder:
    """A trace whose events are collected, to be fed to the model in chosen batches."""

    def __init__(self) -> None:
        self.trace = Trace()
        self.events: list[TraceEvent] = []
        self.trace.subscribe(self.events.append)

    def take(self) -> list[TraceEvent]:
        batch = list(self.events)
        self.events.clear()
        return batch

    def call(self, kind: str, parent: TraceNode, tokens: int, cost: float,
             **kw: Any) -> TraceNode:
        node = self.trace.start(kind, parent, **kw)
        node.usage, node.cost_usd = Usage(tokens, 0), cost
        return node


def nested_run(rec: Recorder, feed: Callable[[], None]) -> dict[str, TraceNode]:
    """A run with a streamed root call, a code cell with grep and a batch of child calls
    (one failing), and a nested rlm_query run; `feed` is called between steps."""
    t = rec.trace
    run = t.start("run", None, input={"question": "how many?", "documents": 2})
    root = rec.call("root_call", run, 100, 0.01, input={"messages": 1, "last": "q"},
                    iteration=1)
    feed()
    for piece in ("Let me ", "look ", "at it."):
        t.delta(root, piece)
    feed()
    t.delta(root, "", reset=True)
    t.delta(root, "Retried reply")
    t.end(root, output="Retried reply")
    code = t.start("code", run, input="hits = grep('x')\nprint(len(hits))", iteration=1)
    t.record("grep", code, input={"pattern": "x", "target": "all"},
             output={"hits": 3, "documents": 1}, started=1.0, ended=1.5)
    feed()
    children = [rec.call("llm_query", code, 10, 0.001, input={"prompt": f"p{i}", "index": i})
                for i in range(5)]
    feed()
    for i, child in enumerate(children):
        t.end(child, output="yes", error="rate limited" if i == 3 else None)
    query = t.start("rlm_query", code, input={"question": "sub?", "target": "a.log"})
    sub = t.start("run", query, input={"question": "sub?", "depth": 1})
    feed()
    sub_root = rec.call("root_call", sub, 50, 0.005, input={"messages": 1}, iteration=1)
    t.end(sub_root, output="FINAL")
    sub_final = t.start("final", sub, input={"sources": 0})
    t.end(sub_final, output={"answer": "two", "citations": []})
    t.end(sub, output={"answer": "two", "status": "completed"})
    t.end(query, output="two")
    feed()
    t.end(code, output="3")
    final = t.start("final", run, input={"sources": 3})
    t.end(final, output={"answer": "3", "citations": []})
    t.end(run, output={"answer": "3", "status": "completed"}, usage=Usage(200, 0),
          cost_usd=0.02)
    feed()
    return {"run": run, "root": root, "code": code, "query": query, "sub": sub,
            "failed": children[3]}


def test_model_passes_the_model_tester_while_batches_stream(
        qtbot: Any, qtmodeltester: Any) -> None:
    model = TraceTreeModel()
    qtmodeltester.check(model)
    rec = Recorder()
    nodes = nested_run(rec, lambda: model.add_events(rec.take()))
    qtmodeltester.check(model)
    # Every node is in the tree once, under its parent, in start order.
    indexes = walk(model)
    shown = [model.data(i, NodeRole) for i in indexes]
    assert [n.id for n in shown] == sorted(rec.trace.nodes)
    for index in indexes:
        node = model.data(index, NodeRole)
        parent = model.parent(index)
        assert (model.data(parent, NodeRole).id if parent.isValid() else None) == node.parent
    run_index = model.index_of_node(nodes["run"].id)
    assert model.data(run_index, Qt.ItemDataRole.DisplayRole) == "Run"
    sub_index = model.index_of_node(nodes["sub"].id)
    assert model.data(model.parent(sub_index), NodeRole) is nodes["query"]


def test_one_batch_of_children_is_one_insert_per_parent(qtbot: Any) -> None:
    model = TraceTreeModel()
    rec = Recorder()
    run = rec.trace.start("run", None, input={"question": "q"})
    code = rec.trace.start("code", run, input="x")
    model.add_events(rec.take())
    inserts: list[tuple[int | None, int, int]] = []
    model.rowsInserted.connect(lambda parent, first, last: inserts.append(
        (model.data(parent, NodeRole).id if parent.isValid() else None, first, last)))
    children = [rec.trace.start("llm_query", code, input={"prompt": "p", "index": i})
                for i in range(50)]
    for child in children[:10]:      # grandchildren of new nodes ride along with them
        rec.trace.record("peek", child, input={}, output="x", started=0, ended=1)
    model.add_events(rec.take())
    assert inserts == [(code.id, 0, 49)]
    assert model.rowCount(model.index_of_node(children[0].id)) == 1


def test_totals_roll_up_and_errors_are_marked(qtbot: Any) -> None:
    model = TraceTreeModel()
    rec = Recorder()
    nodes = nested_run(rec, lambda: None)
    changes: list[int] = []
    model.dataChanged.connect(lambda top, bottom, roles: changes.append(top.row()))
    model.add_events(rec.take())

    def shown(node: TraceNode, column: int, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        return model.data(model.index_of_node(node.id, column), role)

    # 100 + 50 root tokens, five 10-token child calls; the run's own sum is not counted twice.
    assert shown(nodes["run"], TOKENS) == f"{100 + 50 + 5 * 10:,}"
    assert shown(nodes["run"], COST) == "$0.0200"
    assert shown(nodes["code"], TOKENS) == str(50 + 5 * 10)
    assert shown(nodes["query"], TOKENS) == "50"
    failed = nodes["failed"]
    # Shown as written: escaped, so an error quoting `<b>` or `a < b` is not read as HTML.
    assert shown(failed, STEP, Qt.ItemDataRole.ToolTipRole) == (
        '<p style="white-space:pre-wrap">rate limited</p>')
    assert shown(failed, STEP, Qt.ItemDataRole.ForegroundRole) is not None
    assert shown(nodes["code"], STEP, Qt.ItemDataRole.ForegroundRole) is None
    assert shown(nodes["run"], SUMMARY) == summarize(nodes["run"])
    assert shown(nodes["run"], DURATION).endswith(("ms", "s"))


def test_end_of_a_shown_node_updates_it_and_its_ancestors(qtbot: Any) -> None:
    model = TraceTreeModel()
    rec = Recorder()
    run = rec.trace.start("run", None, input={"question": "q"})
    code = rec.trace.start("code", run, input="x")
    child = rec.call("llm_query", code, 7, 0.5, input={"prompt": "p", "index": None})
    model.add_events(rec.take())
    assert model.data(model.index_of_node(child.id, DURATION)).endswith("…")
    changed: set[int] = set()
    model.dataChanged.connect(lambda top, bottom, roles: changed.update(
        model.data(model.index(r, 0, top.parent()), NodeRole).id
        for r in range(top.row(), bottom.row() + 1)))
    rec.trace.end(child, output="answer")
    model.add_events(rec.take())
    assert changed == {child.id, code.id, run.id}
    assert model.data(model.index_of_node(run.id, TOKENS)) == "7"
    assert not model.data(model.index_of_node(child.id, DURATION)).endswith("…")


def test_deltas_update_the_root_call_once_per_batch(qtbot: Any) -> None:
    model = TraceTreeModel()
    rec = Recorder()
    run = rec.trace.start("run", None, input={"question": "q"})
    root = rec.trace.start("root_call", run, input={"messages": 1}, iteration=1)
    model.add_events(rec.take())
    changes: list[Any] = []
    model.dataChanged.connect(lambda *args: changes.append(args))
    for word in ("The ", "answer ", "is ", "near"):
        rec.trace.delta(root, word)
    model.add_events(rec.take())
    assert len(changes) == 1
    assert model.data(model.index_of_node(root.id, SUMMARY)).endswith("The answer is near")
    rec.trace.delta(root, "", reset=True)
    rec.trace.delta(root, "Again")
    model.add_events(rec.take())
    assert model.data(model.index_of_node(root.id, SUMMARY)).endswith(": Again")


def test_filter_keeps_ancestors_of_matches(qtbot: Any, qtmodeltester: Any) -> None:
    model = TraceTreeModel()
    proxy = TraceFilterProxy()
    proxy.setSourceModel(model)
    qtmodeltester.check(proxy)
    rec = Recorder()
    nodes = nested_run(rec, lambda: model.add_events(rec.take()))

    def visible() -> set[int]:
        return {proxy.data(i, NodeRole).id for i in walk(proxy)}

    everything = visible()
    assert everything == set(rec.trace.nodes)
    proxy.set_text("RATE LIMITED")
    assert visible() == {nodes["run"].id, nodes["code"].id, nodes["failed"].id}
    proxy.set_text("")
    proxy.set_kinds({"final"})
    finals = {n.id for n in rec.trace.nodes.values() if n.kind == "final"}
    assert visible() == finals | {nodes["run"].id, nodes["code"].id, nodes["query"].id,
                                  nodes["sub"].id}
    proxy.set_kinds(None)
    assert visible() == everything
    qtmodeltester.check(proxy)


def test_clear_empties_the_model(qtbot: Any, qtmodeltester: Any) -> None:
    model = TraceTreeModel()
    rec = Recorder()
    nested_run(rec, lambda: model.add_events(rec.take()))
    qtmodeltester.check(model)
    model.clear()
    assert model.rowCount() == 0 and model.node_count() == 0


def test_every_kind_has_its_own_icon_and_failed_steps_a_red_one(qtbot: Any) -> None:
    from PySide6.QtGui import QIcon

    from rlm_desktop.engine.trace import NODE_KINDS
    from rlm_desktop.ui.icons import kind_icon

    model = TraceTreeModel()
    rec = Recorder()
    run = rec.trace.start("run", None, input={"question": "q"})
    nodes = {"run": run}
    for kind in NODE_KINDS[1:]:
        nodes[kind] = rec.trace.start(kind, run, input={})
    model.add_events(rec.take())
    images = set()
    for kind, node in nodes.items():
        icon = model.data(model.index_of_node(node.id, STEP), Qt.ItemDataRole.DecorationRole)
        assert isinstance(icon, QIcon) and not icon.isNull(), kind
        assert icon.actualSize(QSize(16, 16)) == QSize(16, 16)
        images.add(_pixels(icon))
        assert model.data(model.index_of_node(node.id, SUMMARY),
                          Qt.ItemDataRole.DecorationRole) is None
    assert len(images) == len(NODE_KINDS)          # all distinct
    assert kind_icon("grep") is kind_icon("grep")   # drawn once, then cached
    failed = nodes["llm_query"]
    rec.trace.end(failed, output=None, error="rate limited")
    model.add_events(rec.take())
    red = model.data(model.index_of_node(failed.id, STEP), Qt.ItemDataRole.DecorationRole)
    assert _pixels(red) not in images
    assert _pixels(red) == _pixels(kind_icon("llm_query", error=True))
    image = red.pixmap(16, 16).toImage()
    badge = image.pixelColor(8, 1)                  # the badge, above the glyph
    assert badge.red() > 150 and badge.green() < 80 and badge.blue() < 80


def test_running_steps_show_a_turning_indicator_until_they_end(qtbot: Any) -> None:
    model = TraceTreeModel()
    rec = Recorder()
    run = rec.trace.start("run", None, input={"question": "q"})
    call = rec.trace.start("llm_query", run, input={"prompt": "p", "index": 0})
    model.add_events(rec.take())
    duration = model.index_of_node(call.id, DURATION)
    first = model.data(duration, Qt.ItemDataRole.DecorationRole)
    assert first is not None and not first.isNull()
    repainted: list[int] = []
    model.dataChanged.connect(lambda top, bottom, roles: repainted.append(top.column()))
    model.refresh_running()                          # what the running timer does
    assert repainted and set(repainted) == {DURATION}
    turned = model.data(duration, Qt.ItemDataRole.DecorationRole)
    assert _pixels(turned) != _pixels(first)         # the next frame
    rec.trace.end(call, output="yes")
    model.add_events(rec.take())
    assert model.data(duration, Qt.ItemDataRole.DecorationRole) is None


def test_document_icons_per_kind(qtbot: Any) -> None:
    from rlm_desktop.ui.icons import document_icon

    kinds = ("pdf", "docx", "email", "log", "text", "markdown", "csv", "json", "html", "zip")
    images = {_pixels(document_icon(kind)) for kind in kinds}
    assert len(images) == len(kinds)
    for alias in ("eml", "msg", "mbox"):
        assert _pixels(document_icon(alias)) == _pixels(document_icon("email"))
    assert _pixels(document_icon("pdf", error=True)) != _pixels(document_icon("pdf"))
    assert not document_icon("something new").isNull()


def test_summaries_are_made_when_shown_and_follow_the_step(qtbot: Any) -> None:
    model = TraceTreeModel()
    rec = Recorder()
    run = rec.trace.start("run", None, input={"question": "q"})
    grep = rec.trace.start("grep", run, input={"pattern": "x", "target": "all"})
    model.add_events(rec.take())
    running = model.data(model.index_of_node(grep.id, SUMMARY))
    rec.trace.end(grep, output={"hits": 3, "documents": 1})
    model.add_events(rec.take())
    ended = model.data(model.index_of_node(grep.id, SUMMARY))
    assert ended == summarize(grep) and ended != running


def test_filter_says_when_it_is_active(qtbot: Any) -> None:
    proxy = TraceFilterProxy()
    proxy.setSourceModel(TraceTreeModel())
    seen: list[bool] = []
    proxy.filterChanged.connect(seen.append)
    proxy.set_text("grep")
    proxy.set_text("")
    proxy.set_kinds({"final"})
    proxy.set_kinds(None)
    assert seen == [True, False, True, False]
    assert not proxy.active


def _pixels(icon: Any) -> bytes:
    image = icon.pixmap(16, 16).toImage()
    return bytes(image.constBits())
