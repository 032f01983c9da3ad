"""The trace view: follows the newest step only while the user is at the bottom, opens the
path to it, folds big finished batches it opened itself, and leaves the user's choices be."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import QModelIndex

from rlm_desktop.engine.trace import Trace, TraceEvent, TraceNode
from rlm_desktop.ui.trace_model import TraceFilterProxy, TraceTreeModel
from rlm_desktop.ui.trace_view import FOLD_CHILDREN, TraceView


class Fed:
    """A trace whose events go to the view when `feed()` is called."""

    def __init__(self, view: TraceView) -> None:
        self.view = view
        self.trace = Trace()
        self.events: list[TraceEvent] = []
        self.trace.subscribe(self.events.append)

    def feed(self) -> None:
        batch = list(self.events)
        self.events.clear()
        self.view.add_events(batch)

    def batch(self, parent: TraceNode, n: int, end: bool = True) -> list[TraceNode]:
        calls = [self.trace.start("llm_query", parent, input={"prompt": "p", "index": i})
                 for i in range(n)]
        if end:
            for call in calls:
                self.trace.end(call, output="yes")
        return calls


@pytest.fixture
def view(qtbot: Any) -> Iterator[TraceView]:
    model = TraceTreeModel()
    proxy = TraceFilterProxy()
    proxy.setSourceModel(model)
    made = TraceView(model, proxy)
    made.resize(600, 240)
    qtbot.addWidget(made)
    made.show()
    qtbot.waitExposed(made)
    yield made


def shown(view: TraceView, node: TraceNode) -> QModelIndex:
    return view._view_index(node.id)


def test_follows_the_tail_only_while_at_the_bottom(qtbot: Any, view: TraceView) -> None:
    fed = Fed(view)
    run = fed.trace.start("run", None, input={"question": "q"})
    code = fed.trace.start("code", run, input="x")
    fed.batch(code, 40, end=False)
    fed.feed()
    bar = view.verticalScrollBar()
    assert view.isExpanded(shown(view, run)) and view.isExpanded(shown(view, code))
    assert bar.maximum() > 0 and bar.value() == bar.maximum()
    # The user scrolls up to read: new steps arrive, the view stays where it was.
    bar.setValue(0)
    fed.batch(code, 10, end=False)
    fed.feed()
    assert bar.value() == 0
    # Back at the bottom, it follows again.
    bar.setValue(bar.maximum())
    newest = fed.batch(code, 10, end=False)[-1]
    fed.feed()
    assert bar.value() == bar.maximum()
    assert view.viewport().rect().contains(view.visualRect(shown(view, newest)))


def test_big_finished_batches_fold_once_left_behind(qtbot: Any, view: TraceView) -> None:
    fed = Fed(view)
    run = fed.trace.start("run", None, input={"question": "q"})
    big = fed.trace.start("code", run, input="x")
    fed.batch(big, FOLD_CHILDREN + 12)
    fed.feed()
    assert view.isExpanded(shown(view, big))          # the live cell is open
    fed.trace.end(big, output="done")
    small = fed.trace.start("code", run, input="y")
    fed.trace.record("grep", small, input={"pattern": "x"}, output={"hits": 1},
                     started=0, ended=1)
    fed.feed()
    assert not view.isExpanded(shown(view, big))      # ended, behind, many children
    assert view.isExpanded(shown(view, small))
    fed.trace.end(small, output="done")
    fed.trace.start("root_call", run, input={"messages": 2}, iteration=2)
    fed.feed()
    assert view.isExpanded(shown(view, small))        # few children: stays open
    assert view.isExpanded(shown(view, run))


def test_the_users_choices_are_kept(qtbot: Any, view: TraceView) -> None:
    fed = Fed(view)
    run = fed.trace.start("run", None, input={"question": "q"})
    first = fed.trace.start("code", run, input="x")
    fed.batch(first, FOLD_CHILDREN + 5)
    fed.trace.end(first, output="done")
    second = fed.trace.start("code", run, input="y")
    fed.batch(second, 3, end=False)
    fed.feed()
    assert not view.isExpanded(shown(view, first))
    view.expand(shown(view, first))                    # the user opens it again
    view.collapse(shown(view, second))                 # and closes the live one
    fed.batch(second, 3, end=False)
    fed.feed()
    assert view.isExpanded(shown(view, first))
    assert not view.isExpanded(shown(view, second))


def test_filtering_opens_every_match_and_clearing_restores(
        qtbot: Any, view: TraceView) -> None:
    fed = Fed(view)
    run = fed.trace.start("run", None, input={"question": "q"})
    first = fed.trace.start("code", run, input="x")
    calls = fed.batch(first, FOLD_CHILDREN + 5, end=False)
    for i, call in enumerate(calls):
        fed.trace.end(call, output="yes", error="rate limited" if i == 4 else None)
    fed.trace.end(first, output="done")
    tail = fed.trace.start("root_call", run, input={"messages": 2}, iteration=2)
    fed.feed()
    assert not view.isExpanded(shown(view, first))
    view._proxy.set_text("rate limited")
    failed = shown(view, calls[4])
    assert failed.isValid() and view.isExpanded(failed.parent())
    assert view.visualRect(failed).isValid()
    view._proxy.set_text("")
    assert not view.isExpanded(shown(view, first))
    assert view.isExpanded(shown(view, run)) and shown(view, tail).isValid()
