"""The model client against the scripted server: streaming, usage, retries, errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from rlm_desktop.engine.client import ModelClient, ModelError
from rlm_desktop.testing.server import ChildRule, Fault, ScriptedServer


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(children=[ChildRule("hello", "Hello to you too, friend.")]) as srv:
        yield srv


def complete(server: ScriptedServer, *, stream: bool = False, key: str = "k",
             retries: int = 2, timeout: float = 10.0,
             notices: list[tuple[int, float, str]] | None = None) -> object:
    async def go() -> object:
        client = ModelClient(base_url=server.base_url, api_key=key, request_timeout=timeout,
                             max_retries=retries, backoff=0.01)
        deltas: list[str] = []

        def on_retry(*notice: object) -> None:
            deltas.clear()  # streamed text of a failed attempt is discarded
            if notices is not None:
                notices.append(notice)  # type: ignore[arg-type]

        try:
            result = await client.complete(
                [{"role": "user", "content": "hello there"}], model="m",
                on_delta=deltas.append if stream else None, on_retry=on_retry)
        finally:
            await client.close()
        if stream:
            assert "".join(deltas) == result.text and (len(deltas) > 1 or not result.text)
        return result

    return asyncio.run(go())


def test_plain_and_streamed_completions_report_usage(server: ScriptedServer) -> None:
    for stream in (False, True):
        result = complete(server, stream=stream)
        assert result.text == "Hello to you too, friend."  # type: ignore[attr-defined]
        usage = result.usage  # type: ignore[attr-defined]
        assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
        assert not usage.estimated
    assert [r.stream for r in server.requests] == [False, True]
    assert server.requests[1].body["stream_options"] == {"include_usage": True}


def test_usage_is_estimated_when_the_server_reports_none() -> None:
    with ScriptedServer(children=[ChildRule(".", "x" * 40)], report_usage=False) as srv:
        for stream in (False, True):
            usage = complete(srv, stream=stream).usage  # type: ignore[attr-defined]
            assert usage.estimated and usage.completion_tokens == 10


@pytest.mark.parametrize("kind", ["429", "500", "malformed", "truncated", "empty"])
@pytest.mark.parametrize("stream", [False, True])
def test_transient_faults_are_retried(server: ScriptedServer, kind: str, stream: bool) -> None:
    server.add_fault(Fault(kind, retry_after=0.05))  # type: ignore[arg-type]
    notices: list[tuple[int, float, str]] = []
    result = complete(server, stream=stream, notices=notices)
    if kind == "empty":  # a valid, empty answer is an answer
        assert result.text == "" and not notices  # type: ignore[attr-defined]
        return
    assert result.text == "Hello to you too, friend."  # type: ignore[attr-defined]
    assert result.retries == 1 and len(notices) == 1  # type: ignore[attr-defined]
    if kind in ("429", "500"):
        assert notices[0][1] == pytest.approx(0.05)


def test_gives_up_after_max_retries(server: ScriptedServer) -> None:
    server.add_fault(Fault("429", count=5, retry_after=0.01))
    with pytest.raises(ModelError, match="429") as info:
        complete(server, retries=2)
    assert not info.value.fatal
    assert len(server.requests) == 3


def test_hang_times_out(server: ScriptedServer) -> None:
    server.add_fault(Fault("hang", count=5))
    started = time.monotonic()
    with pytest.raises(ModelError, match="did not answer in time"):
        complete(server, retries=1, timeout=0.3)
    assert time.monotonic() - started < 3


def test_wrong_key_is_fatal_and_not_retried(server: ScriptedServer) -> None:
    with pytest.raises(ModelError, match="refused the API key") as info:
        complete(server, key="wrong-key")
    assert info.value.fatal and len(server.requests) == 1
    assert "wrong-key" not in str(info.value)
