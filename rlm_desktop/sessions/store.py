"""The investigations database: SQLite (WAL) in the user data dir, one writer thread.

Writes are queued and a writer thread commits whatever is queued in one transaction, at
once: the engine thread never waits for the disk, and a process killed mid-run loses at
most the events of the last few milliseconds. Reads use their own connection (WAL lets
them run while the writer commits). The schema is versioned with `PRAGMA user_version` and
an ordered list of migrations, each also listed in the `migrations` table.

Opening the store marks investigations left `running` by a process that is gone as
`interrupted`.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from rlm_desktop import paths
from rlm_desktop.engine.trace import TraceNode, Usage
from rlm_desktop.sessions.investigation import (
    INTERRUPTED,
    RUNNING,
    Investigation,
    InvestigationSummary,
    ManifestEntry,
    node_from_json,
    usage_from_json,
)

T = TypeVar("T")
FILE_NAME = "investigations.sqlite3"
BUSY_TIMEOUT_MS = 10_000
MAX_BATCH = 2000  # writes per transaction, so a flood of events still commits often


class StoreError(Exception):
    """The investigations database cannot be used; the message is meant for the user."""


# -- schema ---------------------------------------------------------------------------------


def _v1_investigations(conn: sqlite3.Connection) -> None:
    conn.execute("""
        CREATE TABLE investigations (
            id TEXT PRIMARY KEY,
            created REAL NOT NULL,
            ended REAL,
            status TEXT NOT NULL,
            question TEXT NOT NULL,
            model TEXT,
            corpus TEXT NOT NULL,
            documents INTEGER NOT NULL,
            files INTEGER NOT NULL,
            cost_usd REAL NOT NULL DEFAULT 0,
            settings TEXT NOT NULL,
            result TEXT,
            replay_of TEXT,
            pid INTEGER,
            process_started TEXT,
            host TEXT
        )""")
    conn.execute("CREATE INDEX investigations_by_date ON investigations (created)")
    conn.execute("""
        CREATE TABLE documents (
            investigation TEXT NOT NULL REFERENCES investigations (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (investigation, position)
        )""")
    conn.execute("""
        CREATE TABLE nodes (
            investigation TEXT NOT NULL REFERENCES investigations (id) ON DELETE CASCADE,
            id INTEGER NOT NULL,
            parent INTEGER,
            kind TEXT NOT NULL,
            ended REAL,
            data TEXT NOT NULL,
            PRIMARY KEY (investigation, id)
        )""")
    conn.execute("""
        CREATE TABLE responses (
            investigation TEXT NOT NULL REFERENCES investigations (id) ON DELETE CASCADE,
            request TEXT NOT NULL,
            occurrence INTEGER NOT NULL,
            step INTEGER NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (investigation, request, occurrence)
        )""")


#: Applied in order; the database's user_version is the number applied. Append, never edit.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1_investigations]
SCHEMA_VERSION = len(MIGRATIONS)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL in WAL mode: a committed transaction survives the process being killed (it is
    # in the OS's page cache); only a power cut may lose the last commits.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    # Deleted investigations are overwritten with zeros, not left in free pages.
    conn.execute("PRAGMA secure_delete = ON")
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(f"the investigations database was written by a newer version of "
                             f"RLM Desktop (schema {version}, this one knows {SCHEMA_VERSION})")
        if version < SCHEMA_VERSION:
            conn.execute("CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY,"
                         " name TEXT NOT NULL, applied REAL NOT NULL)")
            for number, migration in enumerate(MIGRATIONS[version:], version + 1):
                migration(conn)
                conn.execute("INSERT INTO migrations VALUES (?, ?, ?)",
                             (number, migration.__name__.lstrip("_"), time.time()))
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _private(path: Path) -> None:
    """Owner-only permissions on the database and its WAL files (no-op on Windows, where the
    per-user profile's ACL protects them)."""
    if os.name != "posix":
        return
    for suffix in ("", "-wal", "-shm"):
        candidate = Path(f"{path}{suffix}")
        with contextlib.suppress(FileNotFoundError):
            os.chmod(candidate, 0o600)


# -- the writer -----------------------------------------------------------------------------


class _Write:
    __slots__ = ("checkpoint", "fn", "future")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any],
                 future: Future[Any] | None, checkpoint: bool = False) -> None:
        self.fn = fn
        self.future = future
        self.checkpoint = checkpoint  # empty the WAL after the commit (old page versions)


class _Writer(threading.Thread):
    """Owns the write connection; commits each batch of queued writes as one transaction."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="rlm-sessions-writer", daemon=True)
        self.path = path
        self.queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self.failure: str | None = None  # the first write that failed, for the user
        self._conn = _connect(path)

    def run(self) -> None:
        conn = self._conn
        stopping = False
        while not stopping:
            first = self.queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(conn, batch)
        conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Write]) -> None:
        results: list[tuple[_Write, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for write in batch:
                try:
                    results.append((write, write.fn(conn), None))
                except Exception as exc:  # one bad write must not lose the batch
                    results.append((write, None, exc))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # disk full, database locked for too long, ...
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            results = [(write, None, exc) for write in batch]
        if any(write.checkpoint for write in batch):
            # Best effort: a reader in another process may hold old pages for a while.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for write, value, error in results:
            if error is not None and self.failure is None:
                self.failure = f"{type(error).__name__}: {error}"
                if write.future is None:
                    print(f"rlm-desktop: saving the investigation failed: {self.failure}",
                          file=sys.stderr)
            if write.future is not None:
                if error is not None:
                    write.future.set_exception(error)
                else:
                    write.future.set_result(value)


# -- the store ------------------------------------------------------------------------------


class Store:
    """The investigations database. Thread-safe; one per process is enough."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else self.default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            # Created owner-only before SQLite opens it; SQLite gives the WAL and shared
            # memory files the database file's permissions.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            _private(self.path)
            self._read = _connect(self.path)
            _migrate(self._read)
            _private(self.path)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the investigations database {self.path}: {exc}"
                             ) from exc
        except OSError as exc:
            raise StoreError(f"cannot create the investigations database {self.path}: "
                             f"{exc.strerror or exc}") from exc
        self._lock = threading.Lock()
        self._writer = _Writer(self.path)
        self._writer.start()
        self._closed = False
        self.interrupted = self.mark_interrupted()

    @staticmethod
    def default_path() -> Path:
        folder = paths.data_dir()
        if os.name == "posix":
            os.chmod(folder, 0o700)
        return folder / FILE_NAME

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Commit what is queued and close."""
        if self._closed:
            return
        self._closed = True
        self._writer.queue.put(None)
        self._writer.join()
        with self._lock:
            self._read.close()

    # -- writing ----------------------------------------------------------------------------

    def submit(self, fn: Callable[[sqlite3.Connection], T], *, wait: bool = False,
               checkpoint: bool = False) -> T | None:
        """Queue a write for the writer thread; with `wait`, block until committed and
        return its value (raising its error)."""
        if self._closed:
            raise StoreError("the investigations database is closed")
        future: Future[T] | None = Future() if wait else None
        self._writer.queue.put(_Write(fn, future, checkpoint))
        return future.result() if future is not None else None

    def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        self.submit(lambda conn: None, wait=True)

    @property
    def write_failure(self) -> str | None:
        """The first write that failed (disk full, ...), or None."""
        return self._writer.failure

    def mark_interrupted(self) -> list[str]:
        """Mark `running` investigations whose recording process is gone as interrupted."""
        with self._lock:
            rows = self._read.execute(
                "SELECT id, pid, process_started, host FROM investigations WHERE status = ?",
                (RUNNING,)).fetchall()
        host = socket.gethostname()
        gone = [row[0] for row in rows
                if row[3] in (None, host) and not process_alive(row[1], row[2])]
        if gone:
            def mark(conn: sqlite3.Connection) -> None:
                conn.executemany(
                    "UPDATE investigations SET status = ? WHERE id = ? AND status = ?",
                    [(INTERRUPTED, id_, RUNNING) for id_ in gone])

            self.submit(mark, wait=True)
        return gone

    def delete(self, investigation_id: str) -> bool:
        """Delete an investigation with its steps and recorded responses; the freed pages
        are zeroed and the WAL emptied, so its text does not linger in the files."""
        def delete(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute("DELETE FROM investigations WHERE id = ?",
                                  (investigation_id,))
            return cursor.rowcount > 0

        return bool(self.submit(delete, wait=True, checkpoint=True))

    # -- reading ----------------------------------------------------------------------------

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._closed:
                raise StoreError("the investigations database is closed")
            return self._read.execute(sql, params).fetchall()

    def history(self) -> list[InvestigationSummary]:
        """Every investigation, newest first."""
        rows = self._query(
            "SELECT id, question, created, ended, status, corpus, documents, files, model, "
            "cost_usd, replay_of, json_extract(settings, '$.rerun') FROM investigations "
            "ORDER BY created DESC, id DESC")
        spent = {r[0]: r[1] for r in self._query(
            "SELECT n.investigation, SUM(COALESCE(json_extract(n.data, '$.cost_usd'), 0)) "
            "FROM nodes n JOIN investigations i ON i.id = n.investigation "
            "WHERE i.status IN ('running', 'interrupted') "
            "AND n.kind IN ('root_call', 'llm_query') GROUP BY n.investigation")}
        return [InvestigationSummary(
            id=r[0], question=r[1], created=r[2], ended=r[3], status=r[4], corpus=r[5],
            documents=r[6], files=r[7], model=r[8],
            cost_usd=r[9] or float(spent.get(r[0]) or 0.0), replay_of=r[10], rerun=r[11])
            for r in rows]

    def resolve(self, reference: str) -> str:
        """An investigation id from an id, a unique prefix of one, or `last`."""
        if reference == "last":
            rows = self._query("SELECT id FROM investigations ORDER BY created DESC, id DESC "
                               "LIMIT 1")
        else:
            escaped = reference.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self._query("SELECT id FROM investigations WHERE id = ? OR id LIKE ? "
                               "ESCAPE '\\' LIMIT 2", (reference, escaped + "%"))
            exact = [r for r in rows if r[0] == reference]
            rows = exact or rows
        if not rows:
            raise KeyError(f"no investigation {reference!r} (see `rlm-desktop history`)")
        if len(rows) > 1:
            raise KeyError(f"{reference!r} matches several investigations; give more of the id")
        return str(rows[0][0])

    def load(self, investigation_id: str) -> Investigation:
        """The investigation as recorded; raises KeyError when there is none."""
        with self._lock:
            if self._closed:
                raise StoreError("the investigations database is closed")
            # One read transaction: a consistent snapshot while a run is still writing.
            self._read.execute("BEGIN")
            try:
                head = self._read.execute(
                    "SELECT id, question, status, created, ended, settings, result, replay_of "
                    "FROM investigations WHERE id = ?", (investigation_id,)).fetchone()
                documents = self._read.execute(
                    "SELECT data FROM documents WHERE investigation = ? ORDER BY position",
                    (investigation_id,)).fetchall()
                nodes = self._read.execute(
                    "SELECT data FROM nodes WHERE investigation = ? ORDER BY id",
                    (investigation_id,)).fetchall()
            finally:
                self._read.execute("COMMIT")
        if head is None:
            raise KeyError(f"no investigation {investigation_id!r}")
        result: dict[str, Any] = json.loads(head[6]) if head[6] else {}
        steps = [_node(n[0]) for n in nodes]
        return Investigation(
            id=head[0], question=head[1], status=head[2], created=head[3], ended=head[4],
            settings=json.loads(head[5]),
            corpus=[ManifestEntry.from_json(json.loads(d[0])) for d in documents],
            nodes=steps,
            answer=str(result.get("answer") or ""),
            citations=list(result.get("citations") or ()),
            iterations=int(result.get("iterations") or 0),
            subcalls=int(result.get("subcalls") or 0),
            usage=usage_from_json(result.get("usage")) or _usage_of_calls(steps),
            cost_usd=(float(result.get("cost_usd") or 0.0) if result
                      else sum(n.cost_usd or 0.0 for n in _calls(steps))),
            elapsed_s=float(result.get("elapsed_s") or 0.0), error=result.get("error"),
            sandbox=dict(result.get("sandbox") or {}),
            unpriced_models=list(result.get("unpriced_models") or ()), replay_of=head[7],
        )

    def responses(self, investigation_id: str) -> dict[str, list[dict[str, Any]]]:
        """The recorded model responses of an investigation: request hash -> responses in
        the order the requests were made."""
        rows = self._query("SELECT request, data FROM responses WHERE investigation = ? "
                           "ORDER BY request, occurrence", (investigation_id,))
        out: dict[str, list[dict[str, Any]]] = {}
        for request, data in rows:
            out.setdefault(request, []).append(json.loads(data))
        return out


def _node(data: str) -> TraceNode:
    return node_from_json(json.loads(data))


def _calls(nodes: list[TraceNode]) -> list[TraceNode]:
    """The model calls among a run's steps: what a run that never finished spent."""
    return [n for n in nodes if n.kind in ("root_call", "llm_query")]


def _usage_of_calls(nodes: list[TraceNode]) -> Usage:
    total = Usage()
    for node in _calls(nodes):
        if node.usage is not None:
            total.add(node.usage)
    return total


# -- processes ------------------------------------------------------------------------------


def process_marker(pid: int | None = None) -> str | None:
    """Something that tells this process from a later one given the same pid. Linux: the
    boot id and the start time in clock ticks since boot (neither moves when the wall clock
    is set). Elsewhere: "ct:" and the creation time psutil reports (compared with a
    tolerance, see `same_process`). None when it cannot be read (the pid alone is used)."""
    pid = os.getpid() if pid is None else pid
    if sys.platform.startswith("linux"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[-1].split()
        return f"{boot}:{fields[19]}" if len(fields) >= 20 else None
    import psutil

    try:
        return f"ct:{psutil.Process(pid).create_time():.3f}"
    except (psutil.Error, OSError):
        return None


CREATE_TIME_SLACK_S = 2.0   # psutil derives creation times from a boot time that can drift


def same_process(recorded: str, now: str) -> bool:
    """Whether two markers name one process (creation times within CREATE_TIME_SLACK_S)."""
    if recorded.startswith("ct:") and now.startswith("ct:"):
        try:
            return abs(float(recorded[3:]) - float(now[3:])) <= CREATE_TIME_SLACK_S
        except ValueError:
            return False
    return recorded == now


def process_alive(pid: int | None, marker: str | None) -> bool:
    """Whether the process that recorded an investigation still runs: the pid exists, is
    not a zombie, and (when a marker was recorded) is the same process, not a reused pid."""
    import psutil

    if pid is None:
        return False
    try:
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return False   # it has already died
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        pass               # exists, owned by someone else
    except (psutil.Error, OSError):
        return False
    if marker is None:
        return True
    now = process_marker(pid)
    return now is None or same_process(marker, now)
