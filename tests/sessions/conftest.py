"""A recorded investigation from a real run: the scripted server over loopback, real REPL
workers, the real Recorder writing to a Store in the test's own app home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sessions_support import CANARY, Recorded, record_run

from rlm_desktop.sessions.store import Store
from rlm_desktop.testing.scenarios import (
    TICKETS_QUESTION,
    TICKETS_SCRIPT,
    billing_rule,
    write_tickets,
)
from rlm_desktop.testing.server import ScriptedServer


@pytest.fixture
def recorded(tmp_path: Path, app_home: Path) -> Iterator[Recorded]:
    tickets = write_tickets(tmp_path / "tickets.csv")
    with ScriptedServer(TICKETS_SCRIPT, [billing_rule()]) as server, Store() as store:
        investigation, run, result = record_run(store, server, [tickets.path],
                                                TICKETS_QUESTION)
        assert result.status == "completed", result.error
        nodes = sorted(run.trace.nodes.values(), key=lambda n: n.id)
        yield Recorded(store, server, investigation, nodes, result, tickets)


@pytest.fixture
def canary() -> str:
    """The API key every recorded run uses: it must never reach a file."""
    return CANARY
