"""What the window tests share: a shown MainWindow (closed, its run stopped and its demo
server stopped afterwards) and the demo run to completion."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from rlm_desktop.engine.run import RunResult
from rlm_desktop.ui.main_window import MainWindow


@pytest.fixture
def window(qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[MainWindow]:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    made = MainWindow()
    qtbot.addWidget(made)
    made.show()
    qtbot.waitExposed(made)
    yield made
    made.bridge.shutdown()
    made.leave_demo()


@pytest.fixture
def demo_result(qtbot: Any, window: MainWindow) -> RunResult:
    """The window with the demo opened and run to the end; its (completed) result."""
    with qtbot.waitSignal(window.ingestionFinished, timeout=120_000):
        assert window.start_demo()
    with qtbot.waitSignal(window.runFinished, timeout=120_000) as finished:
        assert window.start_run()
    result: RunResult = finished.args[0]
    assert result.status == "completed", result.error
    return result
