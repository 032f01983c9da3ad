"""Resuming a run that was cut short: its recorded responses bring it back to where it
stopped without a model call, then the same models carry on live; the result is the answer
the whole run would have given, and the server saw only the calls after the stop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sessions_support import cli

from rlm_desktop.corpus.ingest import ingest
from rlm_desktop.engine.budget import Limits
from rlm_desktop.engine.run import Run, RunConfig
from rlm_desktop.engine.trace import TraceEvent
from rlm_desktop.sessions.recorder import Recorder
from rlm_desktop.sessions.replay import plan_rerun, rerun
from rlm_desktop.sessions.store import Store
from rlm_desktop.testing.scenarios import (
    TICKETS_QUESTION,
    TICKETS_SCRIPT,
    billing_rule,
    write_tickets,
)
from rlm_desktop.testing.server import ScriptedServer


def test_a_cancelled_run_resumes_where_it_stopped(tmp_path: Path, app_home: Path) -> None:
    tickets = write_tickets(tmp_path / "tickets.csv")
    documents = ingest([tickets.path]).documents
    with ScriptedServer(TICKETS_SCRIPT, [billing_rule()]) as server, Store() as store:
        config = RunConfig(base_url=server.base_url, api_key="sk-resume-test-key",
                           model="gpt-4o", sub_model="gpt-4o-mini",
                           limits=Limits(cell_timeout_s=30.0))
        recorder = Recorder(store)
        first = recorder.begin(TICKETS_QUESTION, documents, config)
        run = Run(documents, TICKETS_QUESTION, recorder.configure(config))
        run.trace.subscribe(recorder)

        def stop_after_two_turns(event: TraceEvent) -> None:
            if (event.type == "end" and event.node.kind == "root_call"
                    and event.node.extra.get("iteration") == 2):
                run.cancel()

        run.trace.subscribe(stop_after_two_turns)
        cut = run.execute_sync()
        recorder.finish(cut)
        assert cut.status == "cancelled"
        asked = len(server.requests)
        assert asked == 2                        # two root turns, no child call yet

        # The server's script goes on at turn 3, as a model would given the same history.
        new_id, result, nodes = rerun(store, first, replay=False, resume=True,
                                      base_url=server.base_url, api_key="sk-resume-test-key")
        assert result.status == "completed", result.error
        # The first two turns came from the record and say so; the rest were called now.
        turns = [n for n in nodes if n.kind == "root_call"]
        assert [bool(n.extra.get("from_record")) for n in turns] == [True, True, False, False]
        assert result.answer == f"{tickets.billing_by_three} billing questions"
        live = len(server.requests) - asked
        child_calls = sum(1 for n in nodes if n.kind == "llm_query")
        assert child_calls > 0
        assert live == 2 + child_calls           # turns 3 and 4 and the batch: nothing twice
        assert [r.role for r in server.requests[:2]] == ["root", "root"]
        summary = next(s for s in store.history() if s.id == new_id)
        assert summary.replay_of == first and summary.rerun == "resume"
        assert summary.rerun_label == " (resumed)"


def test_resuming_keeps_the_recorded_models(tmp_path: Path, app_home: Path) -> None:
    tickets = write_tickets(tmp_path / "tickets.csv", count=50)
    documents = ingest([tickets.path]).documents
    with ScriptedServer(TICKETS_SCRIPT, [billing_rule()]) as server, Store() as store:
        config = RunConfig(base_url=server.base_url, api_key="k" * 12, model="gpt-4o",
                           sub_model="gpt-4o-mini")
        recorder = Recorder(store)
        first = recorder.begin(TICKETS_QUESTION, documents, config)
        run = Run(documents, TICKETS_QUESTION, recorder.configure(config))
        run.trace.subscribe(recorder)
        run.trace.subscribe(lambda e: run.cancel() if (
            e.type == "end" and e.node.kind == "root_call") else None)
        recorder.finish(run.execute_sync())
        with pytest.raises(ValueError, match="recorded models"):
            plan_rerun(store, first, replay=False, resume=True, model="gpt-5")
        plan = plan_rerun(store, first, replay=False, resume=True, base_url="http://x/v1",
                          api_key="today")
        assert plan.config.model == "gpt-4o" and plan.config.base_url == "http://x/v1"
        assert plan.mode == "resume"


def test_resume_from_the_command_line(tmp_path: Path, app_home: Path) -> None:
    tickets = write_tickets(tmp_path / "tickets.csv", count=300)
    documents = ingest([tickets.path]).documents
    with ScriptedServer(TICKETS_SCRIPT, [billing_rule()]) as server:
        with Store() as store:
            config = RunConfig(base_url=server.base_url, api_key="sk-cli-resume-key",
                               model="gpt-4o", sub_model="gpt-4o-mini")
            recorder = Recorder(store)
            first = recorder.begin(TICKETS_QUESTION, documents, config)
            run = Run(documents, TICKETS_QUESTION, recorder.configure(config))
            run.trace.subscribe(recorder)
            run.trace.subscribe(lambda e: run.cancel() if (
                e.type == "end" and e.node.kind == "root_call") else None)
            recorder.finish(run.execute_sync())
        asked = len(server.requests)
        done = cli("resume", first[:12], "--base-url", server.base_url, "--api-key",
                   "sk-cli-resume-key", "--json", home=app_home)
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert data["status"] == "completed"
        assert data["answer"] == f"{tickets.billing_by_three} billing questions"
        assert data["investigation"] and data["investigation"] != first
        assert f"resuming {first} (cancelled)" in done.stderr
        assert "1 model calls from the record, " in done.stderr
        assert " spent now)" in done.stderr
        assert sum(1 for r in server.requests[asked:] if r.role == "root") == 3
        assert "sk-cli-resume-key" not in done.stdout + done.stderr
    missing = cli("resume", "nope", home=app_home)
    assert missing.returncode == 2 and "rlm-desktop:" in missing.stderr


def test_resuming_a_run_whose_files_changed_refuses_instead_of_running_all_live(
        tmp_path: Path, app_home: Path) -> None:
    tickets = write_tickets(tmp_path / "tickets.csv", count=200)
    documents = ingest([tickets.path]).documents
    with ScriptedServer(TICKETS_SCRIPT, [billing_rule()]) as server, Store() as store:
        config = RunConfig(base_url=server.base_url, api_key="k" * 12, model="gpt-4o",
                           sub_model="gpt-4o-mini")
        recorder = Recorder(store)
        first = recorder.begin(TICKETS_QUESTION, documents, config)
        run = Run(documents, TICKETS_QUESTION, recorder.configure(config))
        run.trace.subscribe(recorder)
        run.trace.subscribe(lambda e: run.cancel() if (
            e.type == "end" and e.node.kind == "root_call") else None)
        recorder.finish(run.execute_sync())
        with tickets.path.open("a", encoding="utf-8") as handle:
            handle.write("#99999 | 2026-03-30 | x@example.com | one more ticket\n")
        asked = len(server.requests)
        with pytest.raises(ValueError, match=r"changed since: .*tickets\.csv"):
            rerun(store, first, replay=False, resume=True, base_url=server.base_url,
                  api_key="k" * 12)
        tickets.path.unlink()
        with pytest.raises(ValueError, match=r"missing or unreadable: .*tickets\.csv"):
            plan_rerun(store, first, replay=False, resume=True, base_url=server.base_url)
        assert len(server.requests) == asked          # no model call was made


def test_a_record_that_fits_no_first_step_is_not_resumed() -> None:
    from rlm_desktop.engine.client import ModelRequest, ReplayMiss
    from rlm_desktop.sessions.replay import ReplayCache

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
    documents = ingest([tickets.path]).documents
    with ScriptedServer(TICKETS_SCRIPT, [billing_rule()]) as server, Store() as store:
        config = RunConfig(base_url=server.base_url, api_key="k" * 12, model="gpt-4o",
                           sub_model="gpt-4o-mini")
        recorder = Recorder(store)
        done = recorder.begin(TICKETS_QUESTION, documents, config)
        recorder.finish(Run(documents, TICKETS_QUESTION,
                            recorder.configure(config)).execute_sync())
        with pytest.raises(ValueError, match="ended completed: there is nothing to resume"):
            plan_rerun(store, done, replay=False, resume=True)
        running = Recorder(store).begin(TICKETS_QUESTION, documents, config)
        with pytest.raises(ValueError, match="still running"):
            plan_rerun(store, running, replay=False, resume=True)


def test_a_run_stopped_by_a_limit_resumes_with_a_raised_one(tmp_path: Path,
                                                             app_home: Path) -> None:
    tickets = write_tickets(tmp_path / "tickets.csv", count=300)
    documents = ingest([tickets.path]).documents

    def root(messages: list[dict[str, object]]) -> str:
        """Turn N of the script after N replies, as a model given the same history."""
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        return TICKETS_SCRIPT[min(turn, len(TICKETS_SCRIPT) - 1)]

    with ScriptedServer(root, [billing_rule()]) as server:
        with Store() as store:
            config = RunConfig(base_url=server.base_url, api_key="sk-limit-resume",
                               model="gpt-4o", sub_model="gpt-4o-mini",
                               limits=Limits(max_iterations=2))
            recorder = Recorder(store)
            first = recorder.begin(TICKETS_QUESTION, documents, config)
            run = Run(documents, TICKETS_QUESTION, recorder.configure(config))
            run.trace.subscribe(recorder)
            cut = run.execute_sync()
            recorder.finish(cut)
        assert cut.status == "max_iterations"
        # With the recorded limit it stops where it stopped, and says so.
        same = cli("resume", first, "--base-url", server.base_url, "--api-key",
                   "sk-limit-resume", home=app_home)
        assert same.returncode == 4
        assert "nothing new was done" in same.stderr
        raised = cli("resume", first, "--base-url", server.base_url, "--api-key",
                     "sk-limit-resume", "--max-iterations", "10", "--json", home=app_home)
        assert raised.returncode == 0, raised.stderr
        assert json.loads(raised.stdout)["answer"] == (
            f"{tickets.billing_by_three} billing questions")


def test_resume_asks_before_sending_the_run_to_another_server(tmp_path: Path,
                                                                app_home: Path) -> None:
    tickets = write_tickets(tmp_path / "tickets.csv", count=50)
    documents = ingest([tickets.path]).documents
    with ScriptedServer(TICKETS_SCRIPT, [billing_rule()]) as server:
        with Store() as store:
            config = RunConfig(base_url=server.base_url, api_key="k" * 12, model="gpt-4o",
                               sub_model="gpt-4o-mini")
            recorder = Recorder(store)
            first = recorder.begin(TICKETS_QUESTION, documents, config)
            run = Run(documents, TICKETS_QUESTION, recorder.configure(config))
            run.trace.subscribe(recorder)
            run.trace.subscribe(lambda e: run.cancel() if (
                e.type == "end" and e.node.kind == "root_call") else None)
            recorder.finish(run.execute_sync())
        asked = len(server.requests)
        # No --base-url and settings pointing nowhere in particular: OpenAI, another host.
        refused = cli("resume", first, home=app_home)
        assert refused.returncode == 2
        assert "pass --base-url" in refused.stderr
        assert len(server.requests) == asked
