"""Planning a rerun: a live rerun goes to the endpoint it is given (never to the recorded one
with today's key); a replay keeps the record's. And what an unfinished run cost."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rlm_desktop.sessions.replay import plan_rerun

if TYPE_CHECKING:
    from sessions_support import Recorded


def test_live_rerun_never_sends_todays_key_to_the_recorded_endpoint(
        recorded: Recorded) -> None:
    live = plan_rerun(recorded.store, recorded.id, replay=False, api_key="sk-today",
                      base_url=None, model="gpt-5")
    assert live.config.base_url is None            # the client's default: OpenAI
    assert live.config.api_key == "sk-today" and live.config.model == "gpt-5"
    elsewhere = plan_rerun(recorded.store, recorded.id, replay=False, api_key="sk-today",
                           base_url="http://127.0.0.1:11434/v1")
    assert elsewhere.config.base_url == "http://127.0.0.1:11434/v1"
    replay = plan_rerun(recorded.store, recorded.id, replay=True)
    assert replay.config.base_url == recorded.server.base_url
    assert replay.config.replay is not None


def test_an_unfinished_run_shows_what_its_calls_cost(recorded: Recorded) -> None:
    store = recorded.store
    spent = sum(n.cost_usd or 0.0 for n in recorded.nodes
                if n.kind in ("root_call", "llm_query"))
    assert spent > 0

    def unfinish(conn: object) -> None:
        conn.execute("UPDATE investigations SET status = 'interrupted', result = NULL, "  # type: ignore[attr-defined]
                     "cost_usd = 0 WHERE id = ?", (recorded.id,))

    store.submit(unfinish, wait=True)
    loaded = store.load(recorded.id)
    assert loaded.status == "interrupted"
    assert abs(loaded.cost_usd - spent) < 1e-9
    [summary] = store.history()
    assert abs(summary.cost_usd - spent) < 1e-9
    assert json.dumps(summary.to_json())


def test_records_made_before_sandbox_level_still_replay_as_the_same_steps() -> None:
    from rlm_desktop.engine.trace import TraceNode
    from rlm_desktop.sessions.replay import same_steps

    old = TraceNode(id=1, parent=None, kind="run", depth=0, input={"q": 1}, started=1.0,
                    ended=2.0)
    new = TraceNode(id=1, parent=None, kind="run", depth=0, input={"q": 1}, started=5.0,
                    ended=9.0, extra={"sandbox_level": "full"})
    assert same_steps([old], [new])
    assert not same_steps([old], [TraceNode(id=1, parent=None, kind="run", depth=0,
                                            input={"q": 2}, started=1.0, ended=2.0)])
