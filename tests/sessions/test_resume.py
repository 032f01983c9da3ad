"""Resuming a run that was cut short: its recorded responses bring it back to where it
stopped without a model call, then the same models carry on live; the result is the answer
the whole run would have given, and the server saw only the calls after the stop. And when
there is nothing (or nothing safe) to resume, it says so before calling anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sessions_support import CANARY, cli, record_run

from rlm_desktop.engine.budget import Limits
from rlm_desktop.engine.client import ModelRequest, ReplayMiss
from rlm_desktop.sessions.recorder import Recorder
from rlm_desktop.sessions.replay import ReplayCache, plan_rerun, rerun
from rlm_desktop.sessions.store import Store
from rlm_desktop.testing.scenarios import (
    TICKETS_QUESTION,
    TICKETS_SCRIPT,
    Tickets,
    billing_rule,
    write_tickets,
)
from rlm_desktop.testing.server import Messages, ScriptedServer


def follow_script(messages: Messages) -> str:
    """Turn N of the tickets script after N replies: what a model given the same history
    would say, whichever process asks."""
    turn = sum(1 for m in messages if m.get("role") == "assistant")
    return TICKETS_SCRIPT[min(turn, len(TICKETS_SCRIPT) - 1)]


def answer_of(tickets: Tickets) -> str:
    return f"{tickets.billing_by_three} billing questions"


def test_a_cancelled_run_resumes_where_it_stopped(tmp_path: Path, app_home: Path) -> None:
    tickets = write_tickets(tmp_path / "tickets.csv")
    with ScriptedServer(follow_script, [billing_rule()]) as server, Store() as store:
        first, _, cut = record_run(store, server, [tickets.path], TICKETS_QUESTION,
                                   stop_after_turn=2)
        assert cut.status == "cancelled"
        asked = len(server.requests)
        assert asked == 2                        # two root turns, no child call yet
        new_id, result, nodes = rerun(store, first, replay=False, resume=True,
                                      base_url=server.base_url, api_key=CANARY)
        assert result.status == "completed", result.error
        assert result.answer == answer_of(tickets)
        # The first two turns came from the record and say so; the rest were called now.
        turns = [n for n in nodes if n.kind == "root_call"]
        assert [bool(n.extra.get("from_record")) for n in turns] == [True, True, False, False]
        child_calls = sum(1 for n in nodes if n.kind == "llm_query")
        assert child_calls > 0
        assert len(server.requests) - asked == 2 + child_calls   # nothing asked twice
        summary = next(s for s in store.history() if s.id == new_id)
        assert summary.replay_of == first and summary.rerun == "resume"
        assert summary.rerun_label == " (resumed)"


def test_resuming_keeps_the_recorded_models(tmp_path: Path, app_home: Path) -> None:
    tickets = write_tickets(tmp_path / "tickets.csv", count=50)
    with ScriptedServer(follow_script, [billing_rule()]) as server, Store() as store:
        first, _, _ = record_run(store, server, [tickets.path], TICKETS_QUESTION,
                                 stop_after_turn=1)
        with pytest.raises(ValueError, match="recorded models"):
            plan_rerun(store, first, replay=False, resume=True, model="gpt-5")
        plan = plan_rerun(store, first, replay=False, resume=True, base_url="http://x/v1",
                          api_key="today")
        assert plan.config.model == "gpt-4o" and plan.config.base_url == "http://x/v1"
        assert plan.mode == "resume"


def test_resume_from_the_command_line(tmp_path: Path, app_home: Path) -> None:
    tickets = write_tickets(tmp_path / "tickets.csv", count=300)
    with ScriptedServer(follow_script, [billing_rule()]) as server:
        with Store() as store:
            first, _, _ = record_run(store, server, [tickets.path], TICKETS_QUESTION,
                                     stop_after_turn=1)
        asked = len(server.requests)
        done = cli("resume", first[:12], "--base-url", server.base_url, "--api-key",
                   CANARY, "--json", home=app_home)
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert data["status"] == "completed" and data["answer"] == answer_of(tickets)
        assert data["investigation"] and data["investigation"] != first
        assert f"resuming {first} (cancelled)" in done.stderr
        assert "1 model calls from the record, " in done.stderr
        assert " spent now)" in done.stderr
        assert sum(1 for r in server.requests[asked:] if r.role == "root") == 3
        assert CANARY not in done.stdout + done.stderr
    missing = cli("resume", "nope", home=app_home)
    assert missing.returncode == 2 and "rlm-desktop:" in missing.stderr


def test_resuming_a_run_whose_files_changed_refuses_before_calling_anything(
        tmp_path: Path, app_home: Path) -> None:
    tickets = write_tickets(tmp_path / "tickets.csv", count=200)
    with ScriptedServer(follow_script, [billing_rule()]) as server, Store() as store:
        first, _, _ = record_run(store, server, [tickets.path], TICKETS_QUESTION,
                                 stop_after_turn=1)
        with tickets.path.open("a", encoding="utf-8") as handle:
            handle.write("#99999 | 2026-03-30 | x@example.com | one more ticket\n")
        asked = len(server.requests)
        with pytest.raises(ValueError, match=r"changed since: .*tickets\.csv"):
            rerun(store, first, replay=False, resume=True, base_url=server.base_url,
                  api_key=CANARY)
        tickets.path.unlink()
        with pytest.raises(ValueError, match=r"missing or unreadable: .*tickets\.csv"):
            plan_rerun(store, first, replay=False, resume=True, base_url=server.base_url)
        assert len(server.requests) == asked


def test_a_record_that_fits_no_first_step_is_not_resumed() -> None:
    recorded = {"some-other-request": [{"text": "x", "usage": {}, "model": "m"}]}
    cache = ReplayCache(recorded, source="A", then_live=True)
    request = ModelRequest.of([{"role": "user", "content": "q"}], model="m", stream=True,
                              max_tokens=None)
    with pytest.raises(ReplayMiss, match="nothing to resume"):
        cache.lookup(request)
    fresh = ReplayCache({}, source="B", then_live=True)   # cut before any answer: all live
    assert fresh.lookup(request) is None and fresh.live == 1


def test_only_runs_cut_short_can_be_resumed(tmp_path: Path, app_home: Path) -> None:
    tickets = write_tickets(tmp_path / "tickets.csv", count=50)
    with ScriptedServer(follow_script, [billing_rule()]) as server, Store() as store:
        done, run, _ = record_run(store, server, [tickets.path], TICKETS_QUESTION)
        with pytest.raises(ValueError, match="ended completed: there is nothing to resume"):
            plan_rerun(store, done, replay=False, resume=True)
        running = Recorder(store).begin(TICKETS_QUESTION, run.documents, run.config)
        with pytest.raises(ValueError, match="still running"):
            plan_rerun(store, running, replay=False, resume=True)


def test_a_run_stopped_by_a_limit_resumes_with_a_raised_one(tmp_path: Path,
                                                             app_home: Path) -> None:
    tickets = write_tickets(tmp_path / "tickets.csv", count=300)
    with ScriptedServer(follow_script, [billing_rule()]) as server:
        with Store() as store:
            first, _, cut = record_run(store, server, [tickets.path], TICKETS_QUESTION,
                                       limits=Limits(max_iterations=2))
        assert cut.status == "max_iterations"
        # With the recorded limit it stops where it stopped, and says so.
        same = cli("resume", first, "--base-url", server.base_url, "--api-key", CANARY,
                   home=app_home)
        assert same.returncode == 4
        assert "nothing new was done" in same.stderr
        raised = cli("resume", first, "--base-url", server.base_url, "--api-key", CANARY,
                     "--max-iterations", "10", "--json", home=app_home)
        assert raised.returncode == 0, raised.stderr
        assert json.loads(raised.stdout)["answer"] == answer_of(tickets)


def test_resume_asks_before_sending_the_run_to_another_server(tmp_path: Path,
                                                                app_home: Path) -> None:
    tickets = write_tickets(tmp_path / "tickets.csv", count=50)
    with ScriptedServer(follow_script, [billing_rule()]) as server:
        with Store() as store:
            first, _, _ = record_run(store, server, [tickets.path], TICKETS_QUESTION,
                                     stop_after_turn=1)
        asked = len(server.requests)
        # No --base-url, and settings point nowhere in particular: OpenAI, another host.
        refused = cli("resume", first, home=app_home)
        assert refused.returncode == 2
        assert "pass --base-url" in refused.stderr
        assert len(server.requests) == asked
