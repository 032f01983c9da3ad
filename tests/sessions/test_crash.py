"""Crash safety: `rlm-desktop ask` killed with SIGKILL mid-run leaves an investigation that
is marked interrupted on the next open, with every step recorded up to the kill."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rlm_desktop.sessions.store import Store
from rlm_desktop.testing.scenarios import write_tickets
from rlm_desktop.testing.server import ChildRule, ScriptedServer

SCRIPT = [
    "Let me look first.\n```repl\nprint(len(context))\nhits = grep('alice')\n"
    "print(len(hits))\n```",
    "Now the children.\n```repl\nr = llm_query_batched(['is this billing? ' + h.text "
    "for h in hits[:4]])\n```",
]


def _wait(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert predicate(), "timed out"


def _count(home: Path, kind: str) -> int:
    database = home / "data" / "investigations.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM nodes WHERE kind = ?",
                                (kind,)).fetchone()[0])


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_mid_run_leaves_an_interrupted_investigation_with_every_step(
        tmp_path: Path, app_home: Path, canary: str) -> None:
    tickets = write_tickets(tmp_path / "tickets.csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["RLM_DESKTOP_HOME"] = str(app_home)
    with ScriptedServer(SCRIPT, [ChildRule(".", "yes")], child_latency=60) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlm_desktop", "ask", str(tickets.path), "-q", "billing?",
             "--base-url", server.base_url, "--api-key", canary, "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            _wait(lambda: server.in_flight() >= 4)
            # Each node is committed within milliseconds of its start (before its request
            # is sent); wait for those commits rather than guess how long they take.
            _wait(lambda: _count(app_home, "llm_query") >= 4, timeout=10)
        finally:
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=30)
        requests = server.requests
    assert proc.returncode == -signal.SIGKILL
    root_calls = [r for r in requests if r.role == "root"]
    child_calls = [r for r in requests if r.role == "child"]
    assert (len(root_calls), len(child_calls)) == (2, 4)

    with Store() as store:
        [summary] = store.history()
        assert summary.status == "interrupted" and summary.id in store.interrupted
        assert summary.id.encode() in err  # `ask` named it on stderr at the start
        investigation = store.load(summary.id)
    assert investigation.status == "interrupted" and investigation.answer == ""
    nodes = investigation.nodes
    # Every step the process took before it died: the model calls match what the server
    # received one for one, with their full inputs and (for finished ones) outputs.
    saved_roots = [n for n in nodes if n.kind == "root_call"]
    assert [n.output for n in saved_roots] == [r.reply for r in root_calls]
    assert all(n.ended is not None and n.usage is not None for n in saved_roots)
    children = [n for n in nodes if n.kind == "llm_query"]
    assert sorted(n.input["prompt"] for n in children) == sorted(
        r.messages[-1]["content"] for r in child_calls)
    assert all(n.ended is None for n in children)  # in flight when the process died
    codes = [n for n in nodes if n.kind == "code"]
    assert len(codes) == 2 and codes[0].ended is not None and codes[1].ended is None
    assert codes[0].output.startswith("1\n")
    assert [n.kind for n in nodes if n.parent == codes[0].id] == ["grep"]
    [run] = [n for n in nodes if n.kind == "run"]
    assert run.ended is None and run.input["question"] == "billing?"
    # The usage of the finished model calls is summed even though the run never ended.
    assert investigation.usage.total_tokens == sum(n.usage.total_tokens for n in saved_roots)
    # The killed process never wrote its key anywhere.
    for file in store.path.parent.iterdir():
        assert canary.encode() not in file.read_bytes(), file
    assert canary.encode() not in out + err
