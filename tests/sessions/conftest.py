"""A recorded investigation from a real run: the scripted server over loopback, real REPL
workers, the real Recorder writing to a Store in the test's own app home."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rlm_desktop.corpus.ingest import ingest
from rlm_desktop.engine.budget import Limits
from rlm_desktop.engine.run import Run, RunConfig, RunResult
from rlm_desktop.engine.trace import TraceNode
from rlm_desktop.sessions.recorder import Recorder
from rlm_desktop.sessions.store import Store
from rlm_desktop.testing.scenarios import (
    TICKETS_QUESTION,
    TICKETS_SCRIPT,
    Tickets,
    billing_rule,
    write_tickets,
)
from rlm_desktop.testing.server import ScriptedServer

CANARY = "sk-canary-7d1e5a9b3c0f"


@dataclass
class Recorded:
    store: Store
    server: ScriptedServer
    id: str
    nodes: list[TraceNode]      # the run's own nodes, as the engine made them
    result: RunResult
    tickets: Tickets


def record_run(store: Store, server: ScriptedServer, paths: list[Path], question: str,
               ) -> tuple[str, Run, RunResult]:
    documents = ingest(paths).documents
    config = RunConfig(base_url=server.base_url, api_key=CANARY, model="gpt-4o",
                       sub_model="gpt-4o-mini", limits=Limits(cell_timeout_s=30.0))
    recorder = Recorder(store)
    investigation = recorder.begin(question, documents, config)
    run = Run(documents, question, recorder.configure(config))
    run.trace.subscribe(recorder)
    result = run.execute_sync()
    recorder.finish(result)
    return investigation, run, result


@pytest.fixture
def recorded(tmp_path: Path, app_home: Path) -> Iterator[Recorded]:
    tickets = write_tickets(tmp_path / "tickets.csv")
    with ScriptedServer(TICKETS_SCRIPT, [billing_rule()]) as server, Store() as store:
        investigation, run, result = record_run(store, server, [tickets.path],
                                                TICKETS_QUESTION)
        assert result.status == "completed", result.error
        nodes = sorted(run.trace.nodes.values(), key=lambda n: n.id)
        yield Recorded(store, server, investigation, nodes, result, tickets)


def cli(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`rlm-desktop ARGS` as a user runs it, in a subprocess with the test's app home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["RLM_DESKTOP_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "rlm_desktop", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)


@pytest.fixture
def canary() -> str:
    """The API key every recorded run uses: it must never reach a file."""
    return CANARY
