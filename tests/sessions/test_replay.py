"""The replay cache: a finished investigation reruns from its record with zero model calls
and the same steps and answer; a record that does not fit stops clearly."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sessions_support import Recorded

from rlm_desktop.cli import main
from rlm_desktop.engine.client import Completion, ModelClient, ModelRequest, ReplayMiss
from rlm_desktop.engine.trace import Usage
from rlm_desktop.sessions.replay import ReplayCache, plan_rerun, rerun, same_steps


def test_replay_reproduces_the_tree_and_answer_with_zero_model_calls(
        recorded: Recorded) -> None:
    store, server = recorded.store, recorded.server
    calls = len(server.requests)
    server.stop()  # any request would now fail; none is made
    new_id, result, nodes = rerun(store, recorded.id, replay=True)
    assert len(server.requests) == calls
    assert result.status == "completed", result.error
    assert result.answer == recorded.result.answer
    assert result.citations == recorded.result.citations
    assert result.usage == recorded.result.usage
    assert result.cost_usd == recorded.result.cost_usd
    original = store.load(recorded.id)
    assert same_steps(nodes, original.nodes) and len(nodes) == len(original.nodes)
    # The replay is itself a complete record: saved, linked, and replayable in turn.
    assert new_id is not None
    replayed = store.load(new_id)
    assert replayed.replay_of == recorded.id and same_steps(replayed.nodes, original.nodes)
    assert len(store.responses(new_id)) == len(store.responses(recorded.id))
    _, again, _ = rerun(store, new_id, replay=True, save=False)
    assert again.answer == recorded.result.answer
    assert len(store.history()) == 2 and len(server.requests) == calls


def test_a_replay_that_does_not_fit_the_record_stops_without_calling_the_model(
        recorded: Recorded) -> None:
    calls = len(recorded.server.requests)
    with recorded.tickets.path.open("a") as handle:  # the corpus changed since
        handle.write("#99999 | 2026-03-01 | alice.moreau@example.com | refund please\n")
    _, result, nodes = rerun(recorded.store, recorded.id, replay=True, save=False)
    assert result.status == "error"
    assert result.error is not None and "has no response for step 1" in result.error
    assert "without calling the model" in result.error
    assert len(recorded.server.requests) == calls
    assert [n.kind for n in nodes] == ["run", "root_call"]


def test_a_replay_cannot_change_the_model(recorded: Recorded) -> None:
    with pytest.raises(ValueError, match="rerun it live"):
        plan_rerun(recorded.store, recorded.id, replay=True, model="gpt-5")


def test_a_live_rerun_asks_the_server_again(recorded: Recorded) -> None:
    calls = len(recorded.server.requests)
    # Live means the endpoint given now (test_rerun_plan: never the recorded one by default).
    url = recorded.server.base_url
    plan = plan_rerun(recorded.store, recorded.id, replay=False, api_key="other-key",
                      base_url=url)
    assert plan.config.base_url == url and plan.skipped == []
    recorded.server.set_script(["FINAL(live again)"])
    _, result, _ = rerun(recorded.store, recorded.id, replay=False, api_key="other-key",
                         base_url=url)
    assert result.answer == "live again"
    assert len(recorded.server.requests) == calls + 1
    assert recorded.server.requests[-1].api_key == "other-key"


def test_identical_requests_get_their_recorded_answers_in_order() -> None:
    saved: list[tuple[str, int, int, dict[str, object]]] = []
    recording = ReplayCache(sink=lambda *row: saved.append(row))
    request = ModelRequest.of([{"role": "user", "content": "same"}], model="m", stream=False,
                              max_tokens=None)
    twin = ModelRequest.of([{"role": "user", "content": "same"}], model="m", stream=False,
                           max_tokens=None)
    assert request.key == twin.key
    for r in (request, twin):
        assert recording.lookup(r) is None
    # They finish in the other order; the record keeps the order they were asked in.
    recording.save(twin, Completion("second", Usage(1, 1), "m", "stop"))
    recording.save(request, Completion("first", Usage(1, 1), "m", "stop"))
    recorded: dict[str, list[dict[str, object]]] = {}
    for key, occurrence, _step, data in sorted(saved, key=lambda row: row[1]):
        recorded.setdefault(key, []).insert(occurrence, data)
    replaying = ReplayCache(recorded)
    first, second = replaying.lookup(request), replaying.lookup(twin)
    assert first is not None and second is not None
    assert (first.text, second.text) == ("first", "second")
    with pytest.raises(ReplayMiss, match="no response for step 3"):
        replaying.lookup(request)


def test_a_streamed_root_call_replays_as_one_delta() -> None:
    messages = [{"role": "user", "content": "hi"}]
    request = ModelRequest.of(messages, model="m", stream=True, max_tokens=None)
    cache = ReplayCache({request.key: [{"text": "hello there", "model": "m",
                                        "usage": {"prompt_tokens": 1,
                                                  "completion_tokens": 2}}]})
    deltas: list[str] = []

    async def go() -> Completion:
        # Port 9 (discard) on loopback: nothing answers there, and nothing is asked.
        client = ModelClient(base_url="http://127.0.0.1:9/v1", api_key=None, cache=cache)
        try:
            return await client.complete(messages, model="m", on_delta=deltas.append)
        finally:
            await client.close()

    completion = asyncio.run(go())
    assert completion.text == "hello there" and deltas == ["hello there"]
    assert completion.usage == Usage(1, 2)


def test_replay_command_reports_a_reproduced_record(
        recorded: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    calls = len(recorded.server.requests)
    assert main(["replay", recorded.id[:15], "--json", "--no-save"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["reproduced"] is True and data["replay_of"] == recorded.id
    assert data["investigation"] is None and data["answer"] == recorded.result.answer
    assert len(recorded.server.requests) == calls
    assert len(recorded.store.history()) == 1


def test_ask_can_skip_saving(tmp_path: Path, app_home: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from rlm_desktop.sessions.store import Store
    from rlm_desktop.testing.server import ScriptedServer

    notes = tmp_path / "notes.txt"
    notes.write_text("nothing to see\n")
    with ScriptedServer(["FINAL(ok)"]) as server:
        assert main(["ask", str(notes), "-q", "q", "--base-url", server.base_url, "--json",
                     "--no-save"]) == 0
        assert "investigation" not in json.loads(capsys.readouterr().out)
        assert main(["ask", str(notes), "-q", "q", "--base-url", server.base_url,
                     "--json"]) == 0
        captured = capsys.readouterr()
    investigation = json.loads(captured.out)["investigation"]
    assert f"recording investigation {investigation}" in captured.err
    with Store() as store:
        assert [s.id for s in store.history()] == [investigation]
