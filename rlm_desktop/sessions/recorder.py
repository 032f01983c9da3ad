"""Recording a run as it happens: the one way the CLI and the GUI save investigations.

    recorder = Recorder(store)
    investigation = recorder.begin(question, documents, config)
    config = recorder.configure(config)          # also records every model response
    run = Run(documents, question, config)
    run.trace.subscribe(recorder)                # before the run starts
    result = run.execute_sync()
    recorder.finish(result)

Trace events arrive on the engine's thread; the recorder snapshots the node and queues the
write, so the engine never waits for the disk. Each node is written when it starts and
again when it ends (before and after every model call).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
import socket
import sqlite3
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rlm_desktop.corpus.document import Document
from rlm_desktop.engine import prompts
from rlm_desktop.engine.budget import Pricing
from rlm_desktop.engine.run import RunConfig, RunResult
from rlm_desktop.engine.trace import TRACE_FORMAT, TraceEvent
from rlm_desktop.sessions.investigation import RUNNING, ManifestEntry, corpus_label
from rlm_desktop.sessions.replay import ReplayCache
from rlm_desktop.sessions.store import Store, process_marker

_SECRET_PARAM = re.compile(r"key|token|secret|sig|auth|pass", re.I)


def new_id() -> str:
    """Sortable and unique: UTC date and time, then random hex (`20260314-153012-7f3a1c`)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def public_url(url: str | None) -> str | None:
    """An endpoint URL fit to be saved: no user:password, no key-like query parameters."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "[unreadable URL]"
    netloc = parts.netloc.rpartition("@")[2]
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if not _SECRET_PARAM.search(k)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def app_version() -> str:
    from rlm_desktop import __version__

    return str(__version__)


class Recorder:
    """Saves one run into the store; a trace subscriber (call it with TraceEvents)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.investigation: str | None = None
        self._secret: str | None = None

    def begin(self, question: str, documents: Sequence[Document], config: RunConfig, *,
              replay_of: str | None = None,
              extraction: dict[str, Any] | None = None, rerun: str | None = None) -> str:
        """Record the start of a run (blocks until saved); returns the investigation id."""
        from rlm_desktop.corpus.formats import EXTRACTOR_VERSION

        if self.investigation is not None:
            raise RuntimeError("a Recorder records one run; make a new one")
        key = config.api_key or ""
        self._secret = key if len(key) >= 8 else None
        pricing = config.pricing or Pricing()  # what the Run will use
        prices: dict[str, list[float] | None] = {}
        for model in dict.fromkeys((config.model, config.child_model)):
            price = pricing.price_of(model)
            prices[model] = list(price) if price is not None else None
        settings: dict[str, Any] = {
            "base_url": public_url(config.base_url), "model": config.model,
            "sub_model": config.child_model, "limits": config.limits.to_json(),
            "sandbox_policy": config.sandbox.to_json(), "pricing": prices,
            "prompt_version": prompts.PROMPT_VERSION, "app_version": app_version(),
            "trace_format": TRACE_FORMAT,
            "extraction": {"extractor_version": EXTRACTOR_VERSION, **(extraction or {})},
        }
        if replay_of is not None:   # how it was run again: replay, live or resume
            settings["rerun"] = rerun or "replay"
        entries = [ManifestEntry.of(doc) for doc in documents]
        label, files = corpus_label(entries)
        investigation = new_id()
        row = (investigation, time.time(), RUNNING, question, config.model, label,
               len(entries), files, self._dumps(settings), replay_of, os.getpid(),
               process_marker(), socket.gethostname())
        documents_rows = [(investigation, i, self._dumps(e.to_json()))
                          for i, e in enumerate(entries)]

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO investigations (id, created, status, question, model, corpus, "
                "documents, files, settings, replay_of, pid, process_started, host) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            conn.executemany("INSERT INTO documents VALUES (?, ?, ?)", documents_rows)

        self.store.submit(insert, wait=True)
        self.investigation = investigation
        return investigation

    def configure(self, config: RunConfig) -> RunConfig:
        """`config` with a response cache that records every model response into this
        investigation (a replaying cache keeps replaying and records what it serves)."""
        cache = config.replay
        if isinstance(cache, ReplayCache):
            cache.sink = self._save_response
            return config
        return dataclasses.replace(config, replay=ReplayCache(sink=self._save_response))

    def __call__(self, event: TraceEvent) -> None:
        if event.type == "delta" or self.investigation is None:
            return
        node = event.node
        snapshot = node.to_json()  # a shallow copy now; serialised on the writer thread
        investigation, node_id, parent, kind, ended = (
            self.investigation, node.id, node.parent, node.kind, node.ended)

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO nodes (investigation, id, parent, kind, ended, data) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (investigation, id) DO UPDATE SET "
                "parent = excluded.parent, kind = excluded.kind, ended = excluded.ended, "
                "data = excluded.data",
                (investigation, node_id, parent, kind, ended, self._dumps(snapshot)))

        self.store.submit(upsert)

    def _save_response(self, request: str, occurrence: int, step: int,
                       data: dict[str, Any]) -> None:
        investigation = self.investigation
        if investigation is None:
            return

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                         (investigation, request, occurrence, step, self._dumps(data)))

        self.store.submit(insert)

    def finish(self, result: RunResult) -> None:
        """Record the outcome and wait until everything is committed."""
        investigation = self.investigation
        if investigation is None:
            return
        data = result.to_json()
        data.pop("trace", None)
        data["usage"] = result.usage.to_json()
        data["cost_usd"] = result.cost_usd
        data["elapsed_s"] = result.elapsed_s
        data["error"] = result.error
        data["unpriced_models"] = list(result.unpriced_models)
        row = (time.time(), result.status, result.cost_usd, self._dumps(data), investigation)

        def update(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE investigations SET ended = ?, status = ?, cost_usd = ?, "
                         "result = ? WHERE id = ?", row)

        self.store.submit(update)
        # A failed commit is reported by the writer and kept in store.write_failure.
        with contextlib.suppress(sqlite3.Error):
            self.store.flush()

    def _dumps(self, value: Any) -> str:
        text = json.dumps(value, ensure_ascii=False, default=str)
        # Defence in depth: the key never reaches a trace, but a proxy might echo it into an
        # error message one day. It never reaches the disk.
        if self._secret and self._secret in text:
            text = text.replace(self._secret, "[API key]")
        return text
