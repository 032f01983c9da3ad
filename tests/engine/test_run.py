"""The RLM loop end to end: the real openai client against the scripted server over loopback,
a real REPL worker process, the real trace."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from rlm_desktop.corpus.document import Document
from rlm_desktop.corpus.ingest import ingest
from rlm_desktop.engine.budget import Limits
from rlm_desktop.engine.run import Run, RunConfig, RunResult
from rlm_desktop.engine.trace import TraceEvent, TraceNode
from rlm_desktop.testing.scenarios import (
    TICKETS_QUESTION,
    TICKETS_SCRIPT,
    billing_rule,
    write_tickets,
)
from rlm_desktop.testing.server import ChildRule, Fault, ScriptedServer


def doc(name: str, text: str, kind: str = "text", **kw: Any) -> Document:
    return Document(id=f"id-{name}", name=name, path=f"/cases/{name}", kind=kind,
                    sha256="0" * 64, size=len(text), text=text, **kw)


LOGS = [
    doc("a.log", "boot ok\nERROR disk full on /var\nretry\nERROR disk full on /home\n"),
    doc("b.log", "start\nwarning: slow\nERROR network down\n"),
    doc("report.pdf", "Page one text\nTotal: 12\n" "Page two\nApproved by Dana on 3 May\n",
        kind="pdf", page_starts=[0, 25]),
]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as srv:
        yield srv


def make_run(server: ScriptedServer, docs: Sequence[Document], question: str = "q?",
             **limits: Any) -> tuple[Run, list[TraceEvent]]:
    config = RunConfig(base_url=server.base_url, api_key="test-key", model="root-m",
                       sub_model="child-m",
                       limits=Limits(**{"cell_timeout_s": 20.0, "max_retries": 2, **limits}))
    run = Run(docs, question, config)
    events: list[TraceEvent] = []
    run.trace.subscribe(events.append)
    return run, events


def ended(events: list[TraceEvent], kind: str | None = None) -> list[TraceNode]:
    return [e.node for e in events if e.type == "end" and (kind is None or e.node.kind == kind)]


def script(server: ScriptedServer, replies: Sequence[str | Callable[..., str]],
           rules: Sequence[ChildRule] = ()) -> None:
    server.set_script(list(replies), list(rules))


def configure(replies: Sequence[Any], rules: Sequence[ChildRule] = (),
              **kw: Any) -> ScriptedServer:
    return ScriptedServer(root=list(replies), children=list(rules), **kw)


# -- the seed scenario -------------------------------------------------------------------


def test_seed_scenario_counts_billing_questions_exactly(tmp_path: Path) -> None:
    tickets = write_tickets(tmp_path / "tickets.csv")
    documents = ingest([tickets.path]).documents
    with configure(TICKETS_SCRIPT, [billing_rule()]) as srv:
        run, events = make_run(srv, documents, TICKETS_QUESTION)
        result = run.execute_sync()
    assert result.status == "completed", result.error
    assert result.answer == f"{tickets.billing_by_three} billing questions"
    assert result.iterations == 4
    assert result.subcalls == len(tickets.lines_by_three)
    kinds = Counter(n.kind for n in ended(events))
    assert kinds["peek"] == 1 and kinds["grep"] == 1 and kinds["final"] == 1
    assert kinds["llm_query"] == len(tickets.lines_by_three)
    assert kinds["root_call"] == 4 and kinds["code"] == 4
    # Each child call is inspectable with its full input and output.
    queries = ended(events, "llm_query")
    assert sorted(q.input["index"] for q in queries) == list(range(len(queries)))
    for q in queries:
        assert q.input["prompt"].startswith("Is this support ticket a billing question?")
        assert q.output in ("yes", "no")
        assert q.usage is not None and q.usage.total_tokens > 0
    # The grep node nests under the code node that ran it.
    grep = ended(events, "grep")[0]
    codes = {n.id: n for n in ended(events, "code")}
    assert grep.parent in codes and "grep(" in codes[grep.parent].input
    # Citations are the billing tickets, each at its line in the file.
    assert sorted(c["line"] for c in result.citations) == list(tickets.billing_lines)
    for c in result.citations:
        assert c["path"] == str(tickets.path) and c["document"] == "tickets.csv"
        assert any(u in c["text"] for u in ("alice", "bob", "carol"))
    # The root model never saw the corpus text: only the description and printed output.
    root_prompts = [r for r in srv.requests if r.role == "root"]
    assert all("#04999 |" not in str(r.messages) for r in root_prompts)


def test_root_prompt_describes_the_corpus_without_its_text(server: ScriptedServer) -> None:
    script(server, ["FINAL(nothing to do)"])
    run, _ = make_run(server, LOGS, "Which disks are full?")
    result = run.execute_sync()
    assert result.status == "completed" and result.answer == "nothing to do"
    first = next(r for r in server.requests if r.role == "root").messages
    assert first[0]["role"] == "system" and "rlm-desktop-root-v1" in first[0]["content"]
    user = first[1]["content"]
    assert "Which disks are full?" in user
    assert "3 documents" in user and "a.log" in user and "report.pdf" in user
    assert "disk full" not in user


# -- FINAL forms, citations, recursion ------------------------------------------------------


def test_final_var_and_sources_from_hits_and_chunks(server: ScriptedServer) -> None:
    script(server, [
        "```repl\nhits = grep(r'ERROR')\nanswer = f'{len(hits)} errors'\n"
        "parts = partition(context['report.pdf'], by='pages')\n```",
        "FINAL_VAR(answer)",
    ])
    run, _ = make_run(server, LOGS)
    result = run.execute_sync()
    assert result.status == "completed" and result.answer == "3 errors"

    script(server, ["```repl\nhits = grep('Approved by')\n"
                    "FINAL('Dana approved it', sources=hits + partition("
                    "context['report.pdf'], by='pages')[:1])\n```"])
    run, _ = make_run(server, LOGS)
    result = run.execute_sync()
    assert result.answer == "Dana approved it"
    hit, page = result.citations[0], result.citations[1]
    assert (hit["document"], hit["page"], hit["line"]) == ("report.pdf", 2, 2)
    assert hit["path"] == "/cases/report.pdf" and "Dana" in hit["text"]
    assert (page["document"], page["page"], page["line"]) == ("report.pdf", 1, 1)


def test_final_written_outside_code_ends_the_run(server: ScriptedServer) -> None:
    script(server, ["```repl\nprint(len(context))\n```", 'FINAL("three documents")'])
    run, events = make_run(server, LOGS)
    result = run.execute_sync()
    assert (result.status, result.answer, result.iterations) == ("completed",
                                                                 "three documents", 2)
    second = [r for r in server.requests if r.role == "root"][1].messages
    assert second[-1]["content"].strip().endswith("3")  # the printed output came back
    assert ended(events, "final")


def test_recursion_to_depth_two_nests_child_runs(server: ScriptedServer) -> None:
    def root(messages: list[dict[str, Any]]) -> str:
        question = messages[1]["content"]
        turn = sum(1 for m in messages if m["role"] == "assistant")
        if question.startswith("Question: top"):
            if turn == 0:
                return "```repl\nr = rlm_query('middle', context['a.log'])\nprint(r)\n```"
            return "```repl\nFINAL('top got: ' + r)\n```"
        if question.startswith("Question: middle"):
            if turn == 0:
                return ("```repl\nprint(len(context), context[0].name)\n"
                        "r = rlm_query('bottom', grep('disk full'))\n```")
            return "```repl\nFINAL('middle got: ' + r)\n```"
        if question.startswith("Question: bottom"):
            if turn == 0:
                return "```repl\nhits = grep('home')\nprint(hits)\n```"
            return "```repl\nFINAL(f'bottom saw {len(context)} excerpts')\n```"
        return "FINAL(unexpected)"

    server.set_script(root)
    run, events = make_run(server, LOGS, "top")
    result = run.execute_sync()
    assert result.status == "completed", result.error
    assert result.answer == "top got: middle got: bottom saw 2 excerpts"
    runs = ended(events, "run")
    assert sorted(n.depth for n in runs) == [0, 1, 2]
    nodes = run.trace.nodes
    for child in (n for n in runs if n.depth > 0):
        rlm_node = nodes[child.parent]  # type: ignore[index]
        assert rlm_node.kind == "rlm_query"
        assert nodes[rlm_node.parent].kind == "code"  # type: ignore[index]
    bottom_grep = [n for n in ended(events, "grep") if n.depth == 2]
    assert bottom_grep and bottom_grep[0].output["hits"] == 1
    assert result.subcalls == 2


def test_rlm_query_past_max_depth_becomes_a_plain_child_call(server: ScriptedServer) -> None:
    script(server, ["```repl\nFINAL(rlm_query('what is full?', context['a.log']))\n```"],
           [ChildRule("what is full", "the disks")])
    run, events = make_run(server, LOGS, max_depth=0)
    result = run.execute_sync()
    assert result.answer == "the disks"
    node = ended(events, "rlm_query")[0]
    assert node.extra["fallback"] == "llm_query"
    child = ended(events, "llm_query")[0]
    assert "ERROR disk full on /var" in child.input["prompt"]


# -- faults from the server ---------------------------------------------------------------


def test_429_then_success_honours_retry_after(server: ScriptedServer) -> None:
    script(server, ["FINAL(ok)"])
    server.add_fault(Fault("429", role="root", retry_after=0.3))
    run, events = make_run(server, LOGS)
    started = time.monotonic()
    result = run.execute_sync()
    assert result.status == "completed" and result.answer == "ok"
    assert time.monotonic() - started >= 0.3
    root_call = ended(events, "root_call")[0]
    assert root_call.extra["retries"][0]["delay_s"] == pytest.approx(0.3)


def test_persistent_500_ends_with_error_and_a_clear_message(server: ScriptedServer) -> None:
    script(server, ["FINAL(never)"])
    server.add_fault(Fault("500", role="root", count=10, retry_after=0))
    run, _ = make_run(server, LOGS, max_retries=2)
    result = run.execute_sync()
    assert result.status == "error"
    assert "500" in (result.error or "") and "3 attempts" in (result.error or "")


def test_child_500_becomes_an_error_string_for_that_item(server: ScriptedServer) -> None:
    script(server, ["```repl\nr = llm_query_batched(['one', 'two', 'three'])\nprint(r)\n```",
                    "```repl\nFINAL(repr(r))\n```"], [ChildRule(".", "fine")])
    server.add_fault(Fault("500", role="child", count=4, retry_after=0))
    run, _ = make_run(server, LOGS, max_retries=1, concurrency=1)
    result = run.execute_sync()
    assert result.status == "completed"
    answers = eval(result.answer)
    assert answers.count("fine") == 1 and sum(a.startswith("[error") for a in answers) == 2


def test_hanging_server_ends_in_timeout_with_partial_answer(server: ScriptedServer) -> None:
    def root(messages: list[dict[str, Any]]) -> str:
        if len(messages) > 2:
            server.add_fault(Fault("hang", role="root", count=5))
        return "I will look first.\n```repl\nprint(len(context))\n```"

    server.set_script(root)
    run, events = make_run(server, LOGS, timeout_s=1.5)
    started = time.monotonic()
    result = run.execute_sync()
    assert result.status == "timeout" and "time limit" in (result.error or "")
    hung = ended(events, "root_call")[-1]
    assert hung.error == "stopped: the run's time limit was reached"
    assert all(e.node.ended for e in events if e.type == "start")
    assert result.answer == "I will look first."
    assert time.monotonic() - started < 5


def test_malformed_and_truncated_streams_are_retried(server: ScriptedServer) -> None:
    script(server, ["FINAL(ok)"])
    server.add_fault(Fault("malformed", role="root"))
    server.add_fault(Fault("truncated", role="root"))
    run, events = make_run(server, LOGS, max_retries=3)
    result = run.execute_sync()
    assert result.status == "completed" and result.answer == "ok"
    assert len(ended(events, "root_call")[0].extra["retries"]) == 2


def test_wrong_key_is_a_clear_error(server: ScriptedServer) -> None:
    script(server, ["FINAL(ok)"])
    config = RunConfig(base_url=server.base_url, api_key="wrong-key", model="m")
    result = Run(LOGS, "q", config).execute_sync()
    assert result.status == "error" and "API key" in (result.error or "")
    assert "wrong-key" not in (result.error or "")


def test_unreachable_server_is_a_clear_error() -> None:
    config = RunConfig(base_url="http://127.0.0.1:9/v1", api_key="k", model="m",
                       limits=Limits(max_retries=0))
    result = Run(LOGS, "q", config).execute_sync()
    assert result.status == "error" and "cannot reach" in (result.error or "")


# -- model code that misbehaves -----------------------------------------------------------


def test_code_that_raises_is_shown_to_the_model(server: ScriptedServer) -> None:
    script(server, ["```repl\nx = 1 / 0\n```", "```repl\nprint(x)\n```",
                    "```repl\ncontext['nope']\n```", "FINAL(done)"])
    run, _ = make_run(server, LOGS)
    result = run.execute_sync()
    assert result.status == "completed"
    roots = [r for r in server.requests if r.role == "root"]
    assert "ZeroDivisionError" in roots[1].messages[-1]["content"]
    assert "NameError" in roots[2].messages[-1]["content"]
    assert "KeyError" in roots[3].messages[-1]["content"]


def test_infinite_loop_is_stopped_and_the_model_told_of_the_reset(
        server: ScriptedServer) -> None:
    script(server, ["```repl\nkeep = 41\nwhile True:\n    pass\n```",
                    "```repl\nprint(keep)\n```", "FINAL(done)"])
    run, events = make_run(server, LOGS, cell_timeout_s=1.0)
    result = run.execute_sync()
    assert result.status == "completed"
    roots = [r for r in server.requests if r.role == "root"]
    assert "time limit" in roots[1].messages[-1]["content"]
    assert "NameError" in roots[2].messages[-1]["content"]  # state really was reset
    assert "time limit" in (ended(events, "code")[0].error or "")


def test_time_in_child_calls_does_not_count_against_the_cell(server: ScriptedServer) -> None:
    server.child_latency = 0.6
    script(server, ["```repl\nr = [llm_query('x') for _ in range(3)]\nFINAL(str(len(r)))\n```"],
           [ChildRule(".", "y")])
    run, _ = make_run(server, LOGS, cell_timeout_s=1.0)
    result = run.execute_sync()
    assert (result.status, result.answer) == ("completed", "3")


def test_printing_100_mb_is_truncated(server: ScriptedServer) -> None:
    script(server, ["```repl\nprint('x' * 100_000_000)\n```", "FINAL(done)"])
    run, _ = make_run(server, LOGS, output_chars=5000)
    result = run.execute_sync()
    assert result.status == "completed"
    shown = [r for r in server.requests if r.role == "root"][1].messages[-1]["content"]
    assert len(shown) < 6000 and "characters cut" in shown


def test_a_model_that_never_answers_gets_one_last_chance(server: ScriptedServer) -> None:
    def root(messages: list[dict[str, Any]]) -> str:
        if "limit of turns" in messages[-1]["content"]:
            return "FINAL(best guess: 3)"
        return "```repl\nprint('still looking')\n```"

    server.set_script(root)
    run, _ = make_run(server, LOGS, max_iterations=3)
    result = run.execute_sync()
    assert (result.status, result.answer, result.iterations) == (
        "max_iterations", "best guess: 3", 3)
    assert len([r for r in server.requests if r.role == "root"]) == 4


def test_reply_without_code_is_nudged(server: ScriptedServer) -> None:
    script(server, ["Let me think about it.", "FINAL(ok)"])
    run, _ = make_run(server, LOGS)
    assert run.execute_sync().answer == "ok"
    nudge = [r for r in server.requests if r.role == "root"][1].messages[-1]["content"]
    assert "no ```repl code block" in nudge


# -- budgets and cancellation -------------------------------------------------------------


BATCH = ["Planning.\n```repl\nr = llm_query_batched(['p'] * 10)\nprint(len(r))\n```",
         "```repl\nFINAL(str(len(r)))\n```"]


def test_subcall_budget(server: ScriptedServer) -> None:
    script(server, BATCH, [ChildRule(".", "y")])
    run, _ = make_run(server, LOGS, max_subcalls=5)
    result = run.execute_sync()
    assert result.status == "budget_exhausted" and "child calls" in (result.error or "")
    assert result.answer == "Planning."
    assert not [r for r in server.requests if r.role == "child"]


def test_token_budget_is_checked_before_the_call(server: ScriptedServer) -> None:
    script(server, BATCH, [ChildRule(".", "y")])
    run, _ = make_run(server, LOGS, max_tokens=50)
    result = run.execute_sync()
    assert result.status == "budget_exhausted" and "token limit" in (result.error or "")
    assert not server.requests  # even the first root call would cross it


def test_cost_budget(server: ScriptedServer) -> None:
    from rlm_desktop.engine.budget import Pricing

    script(server, BATCH, [ChildRule(".", "y")])
    config = RunConfig(base_url=server.base_url, api_key="k", model="root-m",
                       limits=Limits(max_cost_usd=0.001),
                       pricing=Pricing({"root-m": (1000.0, 1000.0)}))
    result = Run(LOGS, "q", config).execute_sync()
    assert result.status == "budget_exhausted" and "cost limit" in (result.error or "")
    # The first root prompt alone (~1,000 tokens at $1,000 per million) would cost ~$1.
    assert result.cost_usd == 0 and not server.requests


def test_iteration_and_time_budgets(server: ScriptedServer) -> None:
    script(server, ["```repl\nimport time\ntime.sleep(0.4)\n```"] * 20)
    run, _ = make_run(server, LOGS, timeout_s=1.0, max_iterations=50)
    result = run.execute_sync()
    assert result.status == "timeout"
    assert result.elapsed_s < 3


def test_cancellation_mid_batch_stops_requests_and_cell(server: ScriptedServer) -> None:
    server.child_latency = 30.0
    script(server, BATCH, [ChildRule(".", "y")])
    run, events = make_run(server, LOGS, concurrency=4)
    seen_batch = threading.Event()

    def watch(event: TraceEvent) -> None:
        if event.type == "start" and event.node.kind == "llm_query":
            seen_batch.set()

    run.trace.subscribe(watch)
    outcome: list[RunResult] = []
    thread = threading.Thread(target=lambda: outcome.append(run.execute_sync()))
    thread.start()
    assert seen_batch.wait(10)
    started = time.monotonic()
    run.cancel()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 5
    result = outcome[0]
    assert result.status == "cancelled" and result.answer == "Planning."
    cancelled = [n for n in ended(events, "llm_query") if n.error == "cancelled"]
    assert cancelled, "in-flight child calls end as cancelled in the trace"
    assert all(e.node.ended for e in events if e.type == "start")


# -- regressions from review ----------------------------------------------------------------


def test_final_outside_code_is_evaluated_so_sources_survive(server: ScriptedServer) -> None:
    script(server, ["```repl\nhits = grep('ERROR')\n```",
                    'Found them.\nFINAL(f"{len(hits)} errors", sources=hits)'])
    run, _ = make_run(server, LOGS)
    result = run.execute_sync()
    assert (result.status, result.answer) == ("completed", "3 errors")
    assert [c["line"] for c in result.citations] == [2, 4, 3]


def test_code_and_final_var_in_one_reply(server: ScriptedServer) -> None:
    script(server, ["```repl\nanswer = 'two docs'\n```\nFINAL_VAR(answer)", "FINAL(late)"])
    run, _ = make_run(server, LOGS)
    result = run.execute_sync()
    assert (result.answer, result.iterations) == ("two docs", 1)


def test_final_var_at_the_last_chance(server: ScriptedServer) -> None:
    script(server, ["```repl\nanswer = 'best so far'\n```", "FINAL_VAR(answer)"])
    run, _ = make_run(server, LOGS, max_iterations=1)
    result = run.execute_sync()
    assert (result.status, result.answer) == ("max_iterations", "best so far")


def test_cancel_before_start_still_returns_a_result(server: ScriptedServer) -> None:
    run, events = make_run(server, LOGS)
    run.cancel()
    result = run.execute_sync()
    assert result.status == "cancelled" and not server.requests
    assert ended(events, "run")


def test_blocks_after_a_reset_are_named_not_silently_dropped(server: ScriptedServer) -> None:
    script(server, ["```repl\nwhile True:\n    pass\n```\n```repl\nprint('B')\n```",
                    "```repl\nprint('C')\n```\n```repl\nprint('D')\n```", "FINAL(done)"])
    run, _ = make_run(server, LOGS, cell_timeout_s=1.0)
    assert run.execute_sync().status == "completed"
    roots = [r for r in server.requests if r.role == "root"]
    assert "block 2 to 2 were not run" in roots[1].messages[-1]["content"].replace(
        "blocks", "block")
    third = roots[2].messages[-1]["content"]
    assert "C" in third and "D" in third and "restarted" not in third


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_worker_killed_during_a_child_call_resets_and_the_run_goes_on(
        server: ScriptedServer) -> None:
    import os
    import signal

    def child(prompt: str) -> str:
        for pid in _worker_pids():
            os.kill(pid, signal.SIGKILL)
        return "late"

    server.set_script(["```repl\nx = 1\nr = llm_query('hello')\n```", "```repl\nprint(x)\n```",
                       "FINAL(done)"], child)
    run, _ = make_run(server, LOGS)
    result = run.execute_sync()
    assert result.status == "completed"
    roots = [r for r in server.requests if r.role == "root"]
    assert "restarted" in roots[1].messages[-1]["content"]
    assert "NameError" in roots[2].messages[-1]["content"]


def _worker_pids() -> list[int]:
    """REPL workers started by this process (Linux /proc)."""
    import os

    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"rlm_desktop.engine.repl_worker" in cmdline:
            pids.append(int(entry))
    return pids


def test_empty_rlm_query_target_is_an_error_string(server: ScriptedServer) -> None:
    script(server, ["```repl\nFINAL(rlm_query('q', grep('nothing matches this')))\n```"])
    run, events = make_run(server, LOGS)
    result = run.execute_sync()
    assert result.answer.startswith("[error: rlm_query was given an empty target")
    assert not ended(events, "rlm_query")


def test_a_failing_child_rlm_is_an_error_string_for_the_parent(server: ScriptedServer) -> None:
    def root(messages: list[dict[str, Any]]) -> str:
        if messages[1]["content"].startswith("Question: sub"):
            server.add_fault(Fault("500", role="root", count=10, retry_after=0))
            return "```repl\nprint(1)\n```"
        if len(messages) == 2:
            return "```repl\nr = rlm_query('sub', context[0])\nFINAL(r)\n```"
        return "FINAL(unexpected)"

    server.set_script(root)
    run, _ = make_run(server, LOGS, max_retries=1)
    result = run.execute_sync()
    assert result.status == "completed" and result.answer.startswith("[error: the child run")


def test_a_stopped_batch_leaves_no_call_running(server: ScriptedServer) -> None:
    server.child_latency = 0.3
    script(server, ["```repl\nr = llm_query_batched(['x ' * 3000] * 6)\n```", "FINAL(no)"],
           [ChildRule(".", "y")])
    run, events = make_run(server, LOGS, max_tokens=4500, concurrency=2)
    result = run.execute_sync()
    assert result.status == "budget_exhausted"
    assert all(e.node.ended for e in events if e.type == "start")
    assert ended(events)[-1].kind == "run"  # nothing ends after the run
