"""The run bridge against the real scripted server: batches on the GUI thread, in order."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from tree_support import walk

from rlm_desktop.corpus.document import Document
from rlm_desktop.corpus.ingest import ingest
from rlm_desktop.engine.budget import Limits
from rlm_desktop.engine.run import RunConfig, RunResult
from rlm_desktop.engine.trace import Trace, TraceEvent, Usage
from rlm_desktop.testing.scenarios import (
    TICKETS_QUESTION,
    TICKETS_SCRIPT,
    billing_rule,
    write_tickets,
)
from rlm_desktop.testing.server import ChildRule, ScriptedServer
from rlm_desktop.ui import bridge as bridge_module
from rlm_desktop.ui.bridge import FIRST_SLICE, MIN_SLICE, RunBridge, run_in_background
from rlm_desktop.ui.trace_model import NodeRole, TraceTreeModel

BATCH = ["Planning.\n```repl\nr = llm_query_batched(['p'] * 10)\nprint(len(r))\n```",
         "```repl\nFINAL(str(len(r)))\n```"]


@pytest.fixture
def documents(tmp_path: Path) -> list[Document]:
    return ingest([write_tickets(tmp_path / "tickets.csv").path]).documents


@pytest.fixture
def bridge(qtbot: Any) -> Iterator[RunBridge]:
    made = RunBridge()
    yield made
    made.shutdown()


def config(server: ScriptedServer, **limits: Any) -> RunConfig:
    return RunConfig(base_url=server.base_url, api_key="k", model="m",
                     limits=Limits(**{"cell_timeout_s": 20.0, **limits}))


def test_run_fills_the_model_in_order_and_finishes(
        qtbot: Any, qtmodeltester: Any, bridge: RunBridge, documents: list[Document]) -> None:
    model = TraceTreeModel()
    qtmodeltester.check(model)
    batches: list[list[TraceEvent]] = []
    bridge.events.connect(batches.append)
    bridge.events.connect(model.add_events)
    on_gui_thread: list[bool] = []
    bridge.events.connect(lambda _: on_gui_thread.append(
        threading.current_thread() is threading.main_thread()))
    frozen: list[int] = []
    bridge.events.connect(lambda _: frozen.append(gc.get_freeze_count()))
    with (ScriptedServer(TICKETS_SCRIPT, [billing_rule()]) as server,
          qtbot.waitSignal(bridge.finished, timeout=60_000) as finished):
        bridge.start(documents, TICKETS_QUESTION, config(server))
        assert bridge.running
    result: RunResult = finished.args[0]
    assert result.status == "completed", result.error
    assert not bridge.running
    assert all(on_gui_thread)
    events = [e for batch in batches for e in batch]
    starts = [e.node.id for e in events if e.type == "start"]
    assert starts == sorted(starts)                       # the engine's order, kept
    assert len(batches) < len(starts)                     # batched, not one per node
    assert model.node_count() == len(starts)
    run_index = model.index(0, 0)
    assert model.data(run_index, NodeRole).kind == "run"
    assert model.data(model.index(0, 3)) == f"{result.usage.total_tokens:,}"
    assert all(e.node.ended for e in events)
    # While it ran, the objects that were there before sat out the GC's full passes;
    # they are handed back once it ended.
    assert min(frozen) > 0
    assert gc.get_freeze_count() == 0


def test_gui_thread_keeps_ticking_while_a_run_streams(
        qtbot: Any, bridge: RunBridge, documents: list[Document]) -> None:
    # Without the model tester, which walks the whole model on every change.
    model = TraceTreeModel()
    bridge.events.connect(model.add_events)
    gaps: list[float] = []
    last = [time.monotonic()]

    def tick() -> None:
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    ticker = QTimer()
    ticker.setInterval(10)
    ticker.timeout.connect(tick)
    with (ScriptedServer(TICKETS_SCRIPT, [billing_rule()]) as server,
          qtbot.waitSignal(bridge.finished, timeout=60_000) as finished):
        bridge.start(documents, TICKETS_QUESTION, config(server))
        last[0] = time.monotonic()
        ticker.start()
    ticker.stop()
    assert finished.args[0].status == "completed"
    assert len(gaps) > 5
    assert max(gaps) < 0.2, f"the GUI thread stalled {max(gaps) * 1000:.0f} ms"


def test_cancel_mid_batch_finishes_quickly_as_cancelled(
        qtbot: Any, bridge: RunBridge, documents: list[Document]) -> None:
    model = TraceTreeModel()
    bridge.events.connect(model.add_events)
    ended: list[float] = []
    bridge.finished.connect(lambda _: ended.append(time.monotonic()))
    with (ScriptedServer(BATCH, [ChildRule(".", "y")], child_latency=30.0) as server,
          qtbot.waitSignal(bridge.finished, timeout=30_000) as finished):
        bridge.start(documents, "q?", config(server, concurrency=4))
        qtbot.waitUntil(lambda: any(
            model.data(i, NodeRole).kind == "llm_query"
            for i in walk(model)), timeout=20_000)
        started = time.monotonic()
        bridge.cancel()
    took = ended[0] - started
    assert finished.args[0].status == "cancelled"
    assert took < 5
    nodes = [model.data(i, NodeRole) for i in walk(model)]
    assert any(n.kind == "llm_query" and n.error == "cancelled" for n in nodes)


def test_a_second_start_while_running_is_refused(
        qtbot: Any, bridge: RunBridge, documents: list[Document]) -> None:
    with (ScriptedServer(BATCH, [ChildRule(".", "y")], child_latency=30.0) as server,
          qtbot.waitSignal(bridge.finished, timeout=30_000)):
        bridge.start(documents, "q?", config(server))
        with pytest.raises(RuntimeError):
            bridge.start(documents, "again?", config(server))
        bridge.cancel()
    with pytest.raises(ValueError):
        bridge.start(documents, "  ", RunConfig())
    assert not bridge.running


def test_background_work_reports_on_the_gui_thread(qtbot: Any) -> None:
    seen: list[tuple[str, Any, bool]] = []

    def record(kind: str, value: Any) -> None:
        seen.append((kind, value, threading.current_thread() is threading.main_thread()))

    def boom() -> int:
        raise KeyError("nope")

    run_in_background(lambda: 6 * 7, lambda v: record("done", v), lambda e, d: None)
    run_in_background(boom, lambda v: None, lambda e, d: record("failed", type(e).__name__))
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=5_000)
    assert sorted(seen) == [("done", 42, True), ("failed", "KeyError", True)]


def burst(trace: Trace, cells: int = 30, calls: int = 100) -> None:
    """What a fast engine emits: code cells, each with a batch of child calls."""
    run = trace.start("run", None, input={"question": "q"})
    for i in range(cells):
        code = trace.start("code", run, input="x", iteration=i)
        children = [trace.start("llm_query", code, input={"prompt": "p", "index": n})
                    for n in range(calls)]
        for child in children:
            trace.end(child, output="y", usage=Usage(3, 1), cost_usd=0.001)
        trace.end(code, output="done")
    trace.end(run, output={"answer": "a"})


@pytest.fixture
def listening(qtbot: Any) -> Iterator[tuple[RunBridge, Trace]]:
    """A bridge flushing a trace fed on this thread (no engine run)."""
    made = RunBridge(flush_ms=10)
    trace = Trace()
    made._listen(trace)
    try:
        yield made, trace
    finally:
        made._timer.stop()
        trace.unsubscribe(made._queue.append)
        bridge_module._LongLived.release()


def test_a_burst_arrives_in_slices_in_order_one_insert_per_parent_each(
        qtbot: Any, listening: tuple[RunBridge, Trace]) -> None:
    bridge, trace = listening
    model = TraceTreeModel()
    sent: list[TraceEvent] = []
    trace.subscribe(sent.append)
    batches: list[list[TraceEvent]] = []
    bridge.events.connect(batches.append)
    bridge.events.connect(model.add_events)
    inserts: list[tuple[int, int]] = []          # (slice, parent node id)
    model.rowsInserted.connect(lambda parent, first, last: inserts.append(
        (bridge.slices, parent.internalId() if parent.isValid() else 0)))
    between: list[int] = []                      # slices done when the event loop ran

    def first_slice(_: list[TraceEvent]) -> None:
        if len(batches) == 1:
            QTimer.singleShot(0, lambda: between.append(len(batches)))

    bridge.events.connect(first_slice)
    burst(trace)
    qtbot.waitUntil(lambda: sum(map(len, batches)) == len(sent), timeout=10_000)
    assert [e for batch in batches for e in batch] == sent    # every event, in order
    assert len(batches) > 1 and len(batches[0]) == FIRST_SLICE  # not all at once
    assert between and between[0] < len(batches)             # the loop ran in between
    assert len(inserts) == len(set(inserts))                 # one insert per parent per slice
    assert model.node_count() == len(trace.nodes)
    run_index = model.index(0, 0)
    assert model.rowCount(run_index) == 30
    assert model.data(run_index.siblingAtColumn(3)) == f"{30 * 100 * 4:,}"


def test_slices_shrink_for_a_slow_consumer(
        qtbot: Any, listening: tuple[RunBridge, Trace]) -> None:
    bridge, trace = listening
    sizes: list[int] = []

    def slow(events: list[TraceEvent]) -> None:
        sizes.append(len(events))
        time.sleep(len(events) * 0.0005)          # 0.5 ms per event: 24 fit in a slice

    bridge.events.connect(slow)
    burst(trace, cells=4, calls=100)
    total = len(trace.nodes) * 2
    qtbot.waitUntil(lambda: sum(sizes) == total, timeout=20_000)
    assert sizes[0] == FIRST_SLICE
    assert all(MIN_SLICE <= size <= 64 for size in sizes[3:-1]), sizes


def test_slices_grow_when_the_cost_is_per_slice(
        qtbot: Any, listening: tuple[RunBridge, Trace]) -> None:
    # A view that lays out all its rows after every slice costs the same whatever the
    # slice's size: smaller slices would only multiply that cost.
    bridge, trace = listening
    sizes: list[int] = []

    def fixed(events: list[TraceEvent]) -> None:
        sizes.append(len(events))
        time.sleep(0.03)

    bridge.events.connect(fixed)
    burst(trace, cells=8, calls=100)
    total = len(trace.nodes) * 2
    qtbot.waitUntil(lambda: sum(sizes) == total, timeout=20_000)
    assert len(sizes) <= 6, sizes
