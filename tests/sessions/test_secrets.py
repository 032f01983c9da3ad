"""The API key never reaches the investigations database, its WAL, an export or a log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sessions_support import Recorded, record_run

from rlm_desktop.sessions.export import to_csv, to_html, to_json
from rlm_desktop.sessions.recorder import public_url
from rlm_desktop.sessions.store import Store
from rlm_desktop.testing.scenarios import TICKETS_QUESTION, TICKETS_SCRIPT, billing_rule
from rlm_desktop.testing.server import ScriptedServer


def _files_of(store: Store) -> list[Path]:
    return [p for p in store.path.parent.iterdir() if p.name.startswith(store.path.name)]


def test_no_key_in_the_database_wal_or_exports(recorded: Recorded, canary: str) -> None:
    store = recorded.store
    assert {r.api_key for r in recorded.server.requests} == {canary}  # it was used
    files = _files_of(store)
    assert {p.name[len(store.path.name):] for p in files} == {"", "-wal", "-shm"}
    assert os.path.getsize(f"{store.path}-wal") > 0
    for path in files:
        assert canary.encode() not in path.read_bytes(), path
    investigation = store.load(recorded.id)
    for text in (to_html(investigation), to_json(investigation), to_csv(investigation)):
        assert canary not in text


def test_a_key_echoed_by_the_model_is_blanked_before_it_is_saved(
        tmp_path: Path, app_home: Path, canary: str) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    with ScriptedServer([f"I will tell.\n```repl\nprint('{canary}')\n```",
                         f"FINAL(the key is {canary})"]) as server, Store() as store:
        investigation_id, _, result = record_run(store, server, [notes], "what is the key?")
        assert canary in result.answer  # what the run returned, in memory only
        investigation = store.load(investigation_id)
        files = _files_of(store)
        for path in files:
            assert canary.encode() not in path.read_bytes(), path
    assert investigation.answer == "the key is [API key]"


def test_ask_with_exports_and_history_never_prints_or_stores_the_key(
        tmp_path: Path, app_home: Path, canary: str) -> None:
    from rlm_desktop.testing.scenarios import write_tickets

    tickets = write_tickets(tmp_path / "tickets.csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(RLM_DESKTOP_HOME=str(app_home), OPENAI_API_KEY=canary)

    def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "rlm_desktop", *args],
                              capture_output=True, env=env, timeout=120, check=False)

    outputs = []
    with ScriptedServer(TICKETS_SCRIPT, [billing_rule()]) as server:
        trace = tmp_path / "trace.jsonl"
        asked = cli("ask", str(tickets.path), "-q", TICKETS_QUESTION, "--base-url",
                    server.base_url, "--trace", str(trace))
        assert asked.returncode == 0, asked.stderr
        assert {r.api_key for r in server.requests} == {canary}
        outputs.append(asked)
    for fmt in ("html", "json"):  # CSV holds a subset of JSON (checked in-process above)
        outputs.append(cli("export", "last", "--format", fmt, "-o",
                           str(tmp_path / f"out.{fmt}")))
    outputs.append(cli("replay", "last"))
    for done in outputs:
        assert done.returncode == 0, done.stderr
        assert canary.encode() not in done.stdout + done.stderr
    for path in [*tmp_path.iterdir(), *app_home.rglob("*")]:
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path


def test_saved_endpoints_lose_credentials() -> None:
    assert public_url("https://user:sk-secret@api.example.com:8443/v1?api-key=sk-secret&"
                      "api-version=2024-06-01") == (
        "https://api.example.com:8443/v1?api-version=2024-06-01")
    assert public_url("http://127.0.0.1:11434/v1") == "http://127.0.0.1:11434/v1"
    assert public_url(None) is None
