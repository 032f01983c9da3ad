"""The scripted OpenAI-compatible server, driven through the real openai client."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import openai
import pytest

from rlm_desktop.testing.server import (
    NO_RULE_MATCHED,
    OUT_OF_REPLIES,
    ROOT_MARKER,
    ChildRule,
    Fault,
    Reply,
    ScriptedServer,
    explore_script,
)

SYSTEM = {"role": "system", "content": f"{ROOT_MARKER} (test). Explore the corpus."}
ROOT: list[Any] = [SYSTEM, {"role": "user", "content": "Question: where are the invoices?"}]


def child(prompt: str) -> list[Any]:
    return [{"role": "user", "content": prompt}]


def client(server: ScriptedServer, **kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 5.0)
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", **kwargs)


def ask(server: ScriptedServer, messages: list[Any], **kwargs: Any) -> str:
    with client(server) as c:
        reply = c.chat.completions.create(model="m", messages=messages, **kwargs)
    return reply.choices[0].message.content or ""


def raw_request(server: ScriptedServer, method: str, path: str,
                body: bytes | None = None) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_root_list_is_consumed_in_order_then_runs_out() -> None:
    script: list[Reply] = ["first reply",
                           lambda messages: f"second reply saw {len(messages)} messages"]
    with ScriptedServer(root=script) as server, client(server) as c:
        texts = [c.chat.completions.create(model="m", messages=ROOT).choices[0].message.content
                 for _ in range(3)]
        first = c.chat.completions.create(model="gpt-x", messages=ROOT)
    assert texts == ["first reply", "second reply saw 2 messages", OUT_OF_REPLIES]
    assert first.choices[0].finish_reason == "stop"
    assert first.model == "gpt-x"
    chars = len(str(SYSTEM["content"])) + len("Question: where are the invoices?")
    assert first.usage is not None
    assert first.usage.prompt_tokens == chars // 4
    assert first.usage.completion_tokens == len(OUT_OF_REPLIES) // 4
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    records = server.requests
    assert [r.role for r in records] == ["root"] * 4
    assert [r.status for r in records] == [200] * 4
    assert all(r.api_key == "test-key" and not r.stream for r in records)
    assert all(r.ended is not None and r.ended >= r.started for r in records)
    assert records[0].messages == ROOT and records[0].body["model"] == "m"


def test_callable_root_script_answers_every_root_call() -> None:
    def script(messages: list[dict[str, Any]]) -> str:
        turns = sum(m["role"] == "assistant" for m in messages)
        return f"turn {turns}"

    with ScriptedServer(root=script) as server:
        assert ask(server, ROOT) == "turn 0"
        assert ask(server, [*ROOT, {"role": "assistant", "content": "x"},
                            {"role": "user", "content": "out"}]) == "turn 1"


def test_stream_splits_the_reply_and_reports_usage_last() -> None:
    reply = "The invoices are in the billing folder, filed by month."
    with ScriptedServer(root=[reply, reply]) as server, client(server) as c:
        with c.chat.completions.create(model="m", messages=ROOT, stream=True,
                                       stream_options={"include_usage": True}) as stream:
            chunks = list(stream)
        with c.chat.completions.create(model="m", messages=ROOT, stream=True) as stream:
            plain = list(stream)
    contents = [ch.choices[0].delta.content for ch in chunks if ch.choices]
    assert "".join(c or "" for c in contents) == reply
    assert sum(1 for c in contents if c) >= 3
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(reply) // 4
    assert all(ch.usage is None for ch in plain)
    assert server.requests[0].stream


def test_usage_can_be_left_out() -> None:
    with ScriptedServer(root=["a", "b"], report_usage=False) as server, client(server) as c:
        reply = c.chat.completions.create(model="m", messages=ROOT)
        with c.chat.completions.create(model="m", messages=ROOT, stream=True,
                                       stream_options={"include_usage": True}) as stream:
            chunks = list(stream)
    assert reply.usage is None
    assert all(ch.usage is None for ch in chunks) and chunks[-1].choices


def test_child_rules_regex_then_callable_then_no_match() -> None:
    rules = [
        ChildRule(r"Classify.*invoice", "billing"),
        ChildRule(lambda p: p.startswith("Summarise"), lambda p: f"summary of {len(p)} chars"),
    ]
    with ScriptedServer(children=rules) as server:
        assert ask(server, child("Classify this line:\nthe invoice is late")) == "billing"
        assert ask(server, child("Summarise this")) == "summary of 14 chars"
        assert ask(server, child("Something else")) == NO_RULE_MATCHED
        # the last user message is what rules see
        assert ask(server, [{"role": "user", "content": "Summarise"},
                            {"role": "assistant", "content": "?"},
                            {"role": "user", "content": "Classify the invoice"}]) == "billing"
    assert {r.role for r in server.requests} == {"child"}


def test_children_as_one_function() -> None:
    with ScriptedServer(children=lambda prompt: prompt.upper()) as server:
        assert ask(server, child("shout")) == "SHOUT"


def test_root_marker_decides_the_role() -> None:
    parts = [{"role": "system", "content": [{"type": "text", "text": ROOT_MARKER}]},
             {"role": "user", "content": "go"}]
    marker_in_user = [{"role": "system", "content": "You are a helpful child."},
                      {"role": "user", "content": ROOT_MARKER}]
    with ScriptedServer(root=["R", "R"], children=lambda _: "C") as server:
        assert ask(server, ROOT) == "R"
        assert ask(server, parts) == "R"
        assert ask(server, marker_in_user) == "C"
        assert ask(server, child("plain")) == "C"
    assert [r.role for r in server.requests] == ["root", "root", "child", "child"]


def test_429_with_retry_after_is_retried_after_the_given_delay() -> None:
    with ScriptedServer(children=lambda _: "ok") as server:
        server.add_fault(Fault("429", retry_after=0.05))
        with client(server, max_retries=1) as c:
            started = time.monotonic()
            reply = c.chat.completions.create(model="m", messages=child("hi"))
            elapsed = time.monotonic() - started
        assert reply.choices[0].message.content == "ok"
        assert [(r.status, r.fault) for r in server.requests] == [(429, "429"), (200, None)]
        # retry-after-ms is honoured: the default backoff would wait 0.375-0.5 s
        assert elapsed < 0.3
        assert server.pending_faults == 0

        server.add_fault(Fault("429", retry_after=0.2))
        with client(server) as c, pytest.raises(openai.RateLimitError) as caught:
            c.chat.completions.create(model="m", messages=child("hi"))
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "0.2"
    assert caught.value.response.headers["retry-after-ms"] == "200"
    assert caught.value.code == "rate_limit_exceeded"


def test_500_and_fault_roles_and_counts() -> None:
    with ScriptedServer(root=["root ok"], children=lambda _: "child ok") as server:
        server.add_fault(Fault("500", role="child", count=2))
        assert ask(server, ROOT) == "root ok"  # the child fault does not touch root calls
        for _ in range(2):
            with client(server) as c, pytest.raises(openai.InternalServerError) as caught:
                c.chat.completions.create(model="m", messages=child("x"))
            assert caught.value.status_code == 500
            assert caught.value.type == "server_error"
        assert ask(server, child("x")) == "child ok"
    assert [r.status for r in server.requests] == [200, 500, 500, 200]


def test_a_reply_function_that_raises_becomes_a_500() -> None:
    def broken(prompt: str) -> str:
        raise KeyError(prompt)

    with (ScriptedServer(children=broken) as server, client(server) as c,
          pytest.raises(openai.InternalServerError, match="KeyError")):
        c.chat.completions.create(model="m", messages=child("boom"))
    assert server.requests[0].error == "KeyError: 'boom'"


def test_hang_times_out_and_the_server_notices_the_client_left() -> None:
    with ScriptedServer(children=lambda _: "late") as server:
        server.add_fault(Fault("hang"))
        with client(server, timeout=0.5) as c, pytest.raises(openai.APITimeoutError):
            c.chat.completions.create(model="m", messages=child("x"))
        deadline = time.monotonic() + 2
        while server.in_flight() and time.monotonic() < deadline:
            time.sleep(0.01)
        [record] = server.requests
        assert record.fault == "hang" and record.status == 0 and record.ended is not None
        assert ask(server, child("x")) == "late"  # a used-up fault no longer applies


def test_stop_is_prompt_while_a_request_hangs() -> None:
    server = ScriptedServer().start()
    server.add_fault(Fault("hang"))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            ask(server, child("x"))
        except BaseException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 2
    while not server.in_flight() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.in_flight() == 1
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.0
    caller.join(2)
    assert not caller.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], openai.APIConnectionError)
    server.stop()  # a second stop is harmless


def test_malformed_bodies_raise_a_json_error_in_the_client() -> None:
    with ScriptedServer(children=lambda _: "fine") as server, client(server) as c:
        server.add_fault(Fault("malformed"))
        # the openai client does not wrap this: a plain json.JSONDecodeError (a ValueError)
        with pytest.raises(json.JSONDecodeError):
            c.chat.completions.create(model="m", messages=child("x"))
        server.add_fault(Fault("malformed"))
        seen = []
        with (c.chat.completions.create(model="m", messages=child("x"), stream=True) as stream,
              pytest.raises(json.JSONDecodeError)):
            for chunk in stream:
                seen.append(chunk)
        assert len(seen) == 1 and seen[0].choices[0].delta.role == "assistant"
        assert ask(server, child("x")) == "fine"


def test_truncated_responses_break_the_connection() -> None:
    with ScriptedServer(children=lambda _: "whole") as server, client(server) as c:
        server.add_fault(Fault("truncated"))
        with pytest.raises(openai.APIConnectionError):
            c.chat.completions.create(model="m", messages=child("x"))
        server.add_fault(Fault("truncated"))
        contents, finishes = [], []
        with (c.chat.completions.create(model="m", messages=child("x"), stream=True) as stream,
              pytest.raises(openai.APIConnectionError)):
            for chunk in stream:
                contents.append(chunk.choices[0].delta.content)
                finishes.append(chunk.choices[0].finish_reason)
        # some text arrived, then the stream broke off without a finish_reason or [DONE]
        assert len([text for text in contents if text]) == 2
        assert set(finishes) == {None}
        assert ask(server, child("x")) == "whole"


def test_empty_reply_is_a_valid_completion_and_keeps_the_script() -> None:
    with ScriptedServer(root=["scripted"]) as server, client(server) as c:
        server.add_fault(Fault("empty", role="root"))
        reply = c.chat.completions.create(model="m", messages=ROOT)
        assert reply.choices[0].message.content == ""
        assert reply.choices[0].finish_reason == "stop"
        assert ask(server, ROOT) == "scripted"


def test_wrong_key_gets_401_in_openais_shape() -> None:
    with ScriptedServer(children=lambda _: "ok") as server:
        with openai.OpenAI(base_url=server.base_url, api_key="wrong-key",
                           max_retries=0) as c:
            with pytest.raises(openai.AuthenticationError) as caught:
                c.chat.completions.create(model="m", messages=child("x"))
            with pytest.raises(openai.AuthenticationError):
                c.models.list()
        assert ask(server, child("x")) == "ok"
    assert caught.value.code == "invalid_api_key"
    assert caught.value.message.endswith("Incorrect API key provided")
    assert [(r.api_key, r.status) for r in server.requests] == [("wrong-key", 401),
                                                               ("test-key", 200)]


def test_latency_runs_requests_concurrently() -> None:
    async def main(server: ScriptedServer) -> list[str]:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="test-key",
                                      max_retries=0) as c:
            replies = await asyncio.gather(*(
                c.chat.completions.create(model="m", messages=child(f"n{i}"))
                for i in range(16)))
        return [r.choices[0].message.content or "" for r in replies]

    with ScriptedServer(children=lambda p: p, latency=0.3) as server:
        started = time.monotonic()
        texts = asyncio.run(main(server))
        elapsed = time.monotonic() - started
    assert texts == [f"n{i}" for i in range(16)]
    assert 0.3 <= elapsed < 1.0
    assert server.max_concurrency() == 16


def test_child_latency_overrides_latency() -> None:
    with ScriptedServer(root=["r"], children=lambda _: "c", latency=0.3,
                        child_latency=0.0) as server:
        started = time.monotonic()
        ask(server, child("x"))
        assert time.monotonic() - started < 0.25
        started = time.monotonic()
        ask(server, ROOT)
        assert time.monotonic() - started >= 0.3


def test_models_unknown_paths_and_bad_json() -> None:
    with ScriptedServer(model="demo-model") as server:
        with client(server) as c:
            assert [m.id for m in c.models.list()] == ["demo-model"]
            assert c.models.retrieve("demo-model").id == "demo-model"
            with pytest.raises(openai.NotFoundError):
                c.models.retrieve("other")
        status, body = raw_request(server, "GET", "/v1/nowhere")
        assert status == 404
        assert body["error"]["type"] == "invalid_request_error"
        assert "/v1/nowhere" in body["error"]["message"]
        status, body = raw_request(server, "POST", "/v1/chat/completions", b"{not json")
        assert status == 400 and body["error"]["message"]
        status, body = raw_request(server, "POST", "/v1/embeddings", b"{}")
        assert status == 404
    assert [r.status for r in server.requests] == [400]


def test_unknown_fault_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        ScriptedServer().add_fault(Fault("teapot"))  # type: ignore[arg-type]


def test_explore_script_takes_three_steps() -> None:
    messages: list[dict[str, Any]] = [
        SYSTEM, {"role": "user", "content": "Corpus: 3 documents\nQuestion: Which invoices "
                                            "were disputed by customers in March?"}]
    first = explore_script(messages)
    assert "```repl" in first and "len(context)" in first and "Counter" in first
    assert "peek(context[0], 0, 300)" in first
    messages += [{"role": "assistant", "content": first}, {"role": "user", "content": "3"}]
    second = explore_script(messages)
    assert "words = ['Which', 'invoices', 'disputed', 'customers', 'March']" in second
    assert "grep(pattern, ignore_case=True)" in second and "llm_query_batched" in second
    messages += [{"role": "assistant", "content": second}, {"role": "user", "content": "0"}]
    third = explore_script(messages)
    assert 'FINAL(f"{len(hits)} matching lines", sources=hits[:20])' in third
    for reply in (first, second, third):
        code = reply.split("```repl\n", 1)[1].split("```", 1)[0]
        compile(code, "<repl>", "exec")


def test_command_line_serves_until_interrupted() -> None:
    with subprocess.Popen([sys.executable, "-m", "rlm_desktop.testing.server", "--port", "0"],
                          stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            base_url = proc.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
            with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as c:
                root = c.chat.completions.create(model="m", messages=ROOT)
                note = c.chat.completions.create(model="m", messages=child("Classify this"))
            assert "len(context)" in (root.choices[0].message.content or "")
            assert note.choices[0].message.content == "scripted note: Classify this"
        finally:
            if os.name == "posix":
                proc.send_signal(signal.SIGINT)
            else:
                proc.terminate()
            proc.wait(10)
    if os.name == "posix":
        assert proc.returncode == 0
