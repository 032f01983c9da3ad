"""The investigations store: lossless round trip, schema and migrations, permissions,
interrupted runs, file checks, deletion."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sessions_support import Recorded

from rlm_desktop import paths
from rlm_desktop.engine import prompts
from rlm_desktop.sessions.investigation import check_files
from rlm_desktop.sessions.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Store,
    StoreError,
    process_alive,
    process_marker,
)


def test_a_recorded_run_reopens_node_for_node(recorded: Recorded) -> None:
    investigation = recorded.store.load(recorded.id)
    assert len(investigation.nodes) == len(recorded.nodes) > 100
    for saved, live in zip(investigation.nodes, recorded.nodes, strict=True):
        assert saved == live
    assert investigation.nodes == recorded.nodes
    assert investigation.result() == recorded.result
    assert investigation.status == "completed" and investigation.ended is not None
    assert investigation.answer == f"{recorded.tickets.billing_by_three} billing questions"
    assert len(investigation.citations) == recorded.tickets.billing_by_three


def test_settings_and_manifest_are_recorded(recorded: Recorded) -> None:
    investigation = recorded.store.load(recorded.id)
    settings = investigation.settings
    assert settings["base_url"] == recorded.server.base_url
    assert (settings["model"], settings["sub_model"]) == ("gpt-4o", "gpt-4o-mini")
    assert settings["prompt_version"] == prompts.PROMPT_VERSION
    assert settings["app_version"] and settings["limits"]["cell_timeout_s"] == 30.0
    assert settings["pricing"]["gpt-4o"] == [2.5, 10.0]
    assert settings["extraction"]["extractor_version"]
    assert settings["sandbox_policy"]["minimum"] == "partial"
    [entry] = investigation.corpus
    data = recorded.tickets.path.read_bytes()
    assert entry.path == str(recorded.tickets.path) and entry.name == "tickets.csv"
    assert entry.sha256 == hashlib.sha256(data).hexdigest() and entry.size == len(data)
    [summary] = recorded.store.history()
    assert summary.id == recorded.id and summary.corpus == "tickets.csv"
    assert summary.documents == 1 and summary.files == 1 and summary.status == "completed"
    assert summary.cost_usd == recorded.result.cost_usd > 0


def test_the_database_lives_in_the_app_home_and_is_private(recorded: Recorded,
                                                           app_home: Path) -> None:
    path = recorded.store.path
    assert path.parent == paths.data_dir() and app_home in path.parents
    if os.name != "posix":
        return
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for suffix in ("", "-wal", "-shm"):
        file = Path(f"{path}{suffix}")
        assert file.exists(), suffix  # WAL mode while open
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, suffix
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_schema_is_versioned_and_reopening_migrates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "inv.sqlite3"
    Store(path).close()
    Store(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        rows = conn.execute("SELECT version, name FROM migrations").fetchall()
    assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer version"):
        Store(path)


def test_an_unusable_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "inv.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the investigations database"):
        Store(path)


def _running_row(path: Path, investigation: str, pid: int, marker: str | None) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO investigations (id, created, status, question, corpus, documents, "
            "files, settings, pid, process_started, host) VALUES (?, 0, 'running', 'q', "
            "'x', 0, 0, '{}', ?, ?, NULL)", (investigation, pid, marker))


def test_runs_left_running_by_a_dead_process_become_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "inv.sqlite3"
    Store(path).close()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    _running_row(path, "dead", dead_pid, None)
    _running_row(path, "alive", os.getpid(), process_marker())
    _running_row(path, "reused-pid", os.getpid(), "another-boot:123")
    with Store(path) as store:
        assert sorted(store.interrupted) == ["dead", "reused-pid"]
        statuses = {s.id: s.status for s in store.history()}
    assert statuses == {"dead": "interrupted", "alive": "running",
                        "reused-pid": "interrupted"}
    assert not process_alive(dead_pid, None) and process_alive(os.getpid(), None)


def test_file_checks_say_ok_changed_or_missing(recorded: Recorded, tmp_path: Path) -> None:
    investigation = recorded.store.load(recorded.id)
    [check] = check_files(investigation)
    assert (check.path, check.state) == (str(recorded.tickets.path), "ok")
    with recorded.tickets.path.open("a") as handle:
        handle.write("#99999 | 2026-03-01 | x@example.com | one more\n")
    [check] = check_files(investigation)
    assert check.state == "changed" and check.current_sha256 != check.sha256
    recorded.tickets.path.unlink()
    [check] = check_files(investigation)
    assert check.state == "missing" and check.current_sha256 is None


def test_delete_removes_everything_of_one_investigation(recorded: Recorded) -> None:
    store = recorded.store
    assert store.responses(recorded.id)
    assert store.delete(recorded.id) and not store.delete(recorded.id)
    assert store.history() == []
    with pytest.raises(KeyError):
        store.load(recorded.id)
    with sqlite3.connect(store.path) as conn:
        for table in ("documents", "nodes", "responses"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0
    # Nothing of it lingers in free pages or in the WAL.
    answer = recorded.result.answer.encode()
    question = b"bob.nakamura@example.com"
    for suffix in ("", "-wal"):
        data = Path(f"{store.path}{suffix}").read_bytes()
        assert answer not in data and question not in data, suffix


def test_references_resolve_by_id_prefix_or_last(recorded: Recorded) -> None:
    store = recorded.store
    assert store.resolve(recorded.id) == recorded.id
    assert store.resolve(recorded.id[:17]) == recorded.id
    assert store.resolve("last") == recorded.id
    with pytest.raises(KeyError, match="no investigation"):
        store.resolve("1999")
    with pytest.raises(KeyError, match="no investigation"):
        store.resolve("%")


def test_file_checks_stop_when_asked(recorded: Recorded) -> None:
    import threading

    investigation = recorded.store.load(recorded.id)
    stop = threading.Event()
    stop.set()
    assert check_files(investigation, stop) == []
    assert len(check_files(investigation, threading.Event())) == 1
