"""`rlm-desktop ask` as a user runs it: a real subprocess against the scripted server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlm_desktop.testing.scenarios import (
    TICKETS_QUESTION,
    TICKETS_SCRIPT,
    billing_rule,
    write_tickets,
)
from rlm_desktop.testing.server import ChildRule, Fault, ScriptedServer

SECRET = "sk-test-5f1c0ffee"


def ask(*args: str, home: Path, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    full = {**base, "RLM_DESKTOP_HOME": str(home), **(env or {})}
    return subprocess.run([sys.executable, "-m", "rlm_desktop", "ask", *args],
                          capture_output=True, text=True, env=full, timeout=timeout,
                          check=False)


@pytest.fixture
def tickets(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    made = write_tickets(tmp_path / "tickets.csv")
    yield made.path, made.billing_by_three


def test_ask_json_answers_with_citations_and_writes_the_trace(
        tickets: tuple[Path, int], app_home: Path, tmp_path: Path) -> None:
    path, expected = tickets
    trace = tmp_path / "run.jsonl"
    with ScriptedServer(TICKETS_SCRIPT, [billing_rule()]) as server:
        result = ask(str(path), "--question", TICKETS_QUESTION, "--base-url", server.base_url,
                     "--api-key", SECRET, "--model", "gpt-4o", "--sub-model", "gpt-4o-mini",
                     "--trace", str(trace), "--json", home=app_home)
        assert result.returncode == 0, result.stderr
        assert {r.api_key for r in server.requests} == {SECRET}
        models = {r.role: r.body["model"] for r in server.requests}
    assert models == {"root": "gpt-4o", "child": "gpt-4o-mini"}
    data = json.loads(result.stdout)
    assert set(data) >= {"answer", "status", "citations", "iterations", "subcalls", "usage",
                         "cost_usd", "elapsed_s", "trace"}
    assert data["status"] == "completed"
    assert data["answer"] == f"{expected} billing questions"
    assert len(data["citations"]) == expected
    for citation in data["citations"]:
        assert set(citation) >= {"document", "path", "page", "line", "text"}
        assert citation["path"] == str(path) and citation["page"] is None
        line = path.read_text().splitlines()[citation["line"] - 1]
        assert line == citation["text"]
    assert data["usage"]["total_tokens"] == (data["usage"]["prompt_tokens"]
                                             + data["usage"]["completion_tokens"]) > 0
    assert data["cost_usd"] > 0 and data["iterations"] == 4 and data["trace"] == str(trace)
    nodes = [json.loads(line) for line in trace.read_text().splitlines()]
    kinds = {n["kind"] for n in nodes}
    assert {"run", "root_call", "code", "peek", "grep", "llm_query", "final"} <= kinds
    for node in nodes:
        assert {"id", "parent", "kind", "input", "output", "started", "ended", "usage",
                "error"} <= set(node)
    assert nodes[-1]["kind"] == "run" and nodes[-1]["parent"] is None
    assert SECRET not in trace.read_text() and SECRET not in result.stdout + result.stderr


def test_ask_takes_endpoint_and_key_from_the_environment(
        tickets: tuple[Path, int], app_home: Path) -> None:
    path, _ = tickets
    with ScriptedServer(["FINAL(ok)"]) as server:
        result = ask(str(path), "-q", "anything?", "--json", home=app_home,
                     env={"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": SECRET})
        assert result.returncode == 0, result.stderr
        assert server.requests[0].api_key == SECRET
        # A flag wins over the environment.
        result = ask(str(path), "-q", "anything?", "--json", "--api-key", "flag-key",
                     home=app_home,
                     env={"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": SECRET})
        assert server.requests[-1].api_key == "flag-key"


def test_ask_shows_a_live_tree_and_the_answer(tickets: tuple[Path, int],
                                               app_home: Path) -> None:
    path, expected = tickets
    with ScriptedServer(TICKETS_SCRIPT, [billing_rule()]) as server:
        result = ask(str(path), "-q", TICKETS_QUESTION, "--base-url", server.base_url,
                     home=app_home)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "● run:" in out and "grep(" in out and "llm_query[0]" in out
    assert "✔ FINAL" in out and f"{expected} billing questions" in out
    assert "Sources:" in out and "tickets.csv line" in out


def test_ask_reports_a_wrong_key_and_budget_exhaustion(tickets: tuple[Path, int],
                                                       app_home: Path) -> None:
    path, _ = tickets
    with ScriptedServer(TICKETS_SCRIPT, [billing_rule()]) as server:
        result = ask(str(path), "-q", "q", "--base-url", server.base_url, "--api-key",
                     "wrong-key", "--json", home=app_home)
        assert result.returncode == 1
        data = json.loads(result.stdout)
        assert data["status"] == "error" and "API key" in data["error"]
        result = ask(str(path), "-q", "q", "--base-url", server.base_url, "--max-subcalls",
                     "3", "--json", home=app_home)
    assert result.returncode == 4
    data = json.loads(result.stdout)
    assert data["status"] == "budget_exhausted" and data["subcalls"] == 0
    assert data["answer"]  # the model's last words, as the best partial answer


def test_ask_with_nothing_readable_fails_clearly(tmp_path: Path, app_home: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = ask(str(empty), "-q", "q", "--base-url", "http://127.0.0.1:9/v1",
                 home=app_home)
    assert result.returncode == 1 and "no readable documents" in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a console process group")
def test_ctrl_c_cancels_and_prints_the_partial_result(tickets: tuple[Path, int],
                                                      app_home: Path) -> None:
    path, _ = tickets
    with ScriptedServer(["Looking.\n```repl\nr = llm_query_batched(['a'] * 4)\n```"],
                        [ChildRule(".", "x")], child_latency=60) as server:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
               "RLM_DESKTOP_HOME": str(app_home)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlm_desktop", "ask", str(path), "-q", "q", "--base-url",
             server.base_url, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env)
        deadline = time.monotonic() + 60
        while server.in_flight() < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    data = json.loads(out)
    assert data["status"] == "cancelled" and data["answer"] == "Looking."


def test_ask_honours_the_timeout(tickets: tuple[Path, int], app_home: Path) -> None:
    path, _ = tickets
    with ScriptedServer(["FINAL(late)"]) as server:
        server.add_fault(Fault("hang", count=10))
        started = time.monotonic()
        result = ask(str(path), "-q", "q", "--base-url", server.base_url, "--timeout", "1",
                     "--json", home=app_home)
    assert result.returncode == 4 and json.loads(result.stdout)["status"] == "timeout"
    assert time.monotonic() - started < 20


def test_terminal_escape_sequences_from_the_model_are_shown_not_obeyed(
        tickets: tuple[Path, int], app_home: Path) -> None:
    path, _ = tickets
    evil = "\\x1b]52;c;cHduZWQ=\\x07\\x1b[1A\\x1b[2K"
    with ScriptedServer([f"```repl\nprint('{evil}')\n```",
                         f"```repl\nFINAL('All clear {evil}')\n```"]) as server:
        result = ask(str(path), "-q", "q", "--base-url", server.base_url, home=app_home)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "All clear \\x1b]52;c;cHduZWQ=\\x07" in result.stdout
