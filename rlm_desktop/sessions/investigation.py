"""A saved investigation as values: what was asked of which files, every step, the answer.

These are what the store loads, the exports write and the GUI shows. `to_json`/`from_json`
are the documented investigation format (docs/investigation-format.md) and round-trip
exactly; trace nodes come back as the engine's own `TraceNode` objects.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rlm_desktop.corpus.document import Document
from rlm_desktop.engine.run import RunResult
from rlm_desktop.engine.trace import TraceNode, Usage

FORMAT_NAME = "rlm-desktop-investigation"
FORMAT_VERSION = 1

#: Statuses of an investigation: the engine's run statuses, plus these two.
RUNNING = "running"
INTERRUPTED = "interrupted"  # the recording process died mid-run (crash, kill, power loss)

# Keys of TraceNode.to_json() that are fields; every other key is one of `extra`'s.
_NODE_FIELDS = ("id", "parent", "kind", "depth", "input", "output", "started", "ended",
                "usage", "cost_usd", "error", "model")


def usage_from_json(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    return Usage(int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0),
                 bool(data.get("estimated", False)))


def node_from_json(data: dict[str, Any]) -> TraceNode:
    """The inverse of `TraceNode.to_json()`."""
    ended = data.get("ended")
    cost = data.get("cost_usd")
    return TraceNode(
        id=int(data["id"]), parent=None if data.get("parent") is None else int(data["parent"]),
        kind=str(data["kind"]), depth=int(data.get("depth") or 0), input=data.get("input"),
        output=data.get("output"), started=float(data.get("started") or 0.0),
        ended=None if ended is None else float(ended), usage=usage_from_json(data.get("usage")),
        cost_usd=None if cost is None else float(cost), error=data.get("error"),
        model=data.get("model"),
        extra={k: v for k, v in data.items() if k not in _NODE_FIELDS},
    )


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One document of the corpus as it was when the investigation ran."""

    id: str
    name: str
    path: str
    kind: str
    size: int                    # bytes of the source file
    sha256: str                  # of the source file's bytes
    paths: tuple[str, ...] = ()  # every place the same bytes were found
    parent: str | None = None    # the document an attachment belongs to
    pages: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, doc: Document) -> ManifestEntry:
        return cls(id=doc.id, name=doc.name, path=doc.path, kind=doc.kind, size=doc.size,
                   sha256=doc.sha256, paths=tuple(doc.paths), parent=doc.parent,
                   pages=doc.pages, meta=dict(doc.meta))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "path": self.path, "kind": self.kind,
                "size": self.size, "sha256": self.sha256, "paths": list(self.paths),
                "parent": self.parent, "pages": self.pages, "meta": self.meta}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ManifestEntry:
        return cls(id=str(data["id"]), name=str(data["name"]), path=str(data["path"]),
                   kind=str(data["kind"]), size=int(data.get("size") or 0),
                   sha256=str(data.get("sha256") or ""),
                   paths=tuple(str(p) for p in data.get("paths") or ()),
                   parent=data.get("parent"), pages=data.get("pages"),
                   meta=dict(data.get("meta") or {}))


@dataclass(frozen=True, slots=True)
class InvestigationSummary:
    """One line of the history: enough to list, sort and pick an investigation."""

    id: str
    question: str
    created: float               # Unix time
    ended: float | None
    status: str
    corpus: str                  # e.g. "tickets.csv" or "12 files (a.pdf, b.mbox, …)"
    documents: int
    files: int
    model: str | None
    cost_usd: float
    replay_of: str | None = None
    rerun: str | None = None     # with replay_of: "replay", "live" or "resume"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "created": self.created,
                "ended": self.ended, "status": self.status, "corpus": self.corpus,
                "documents": self.documents, "files": self.files, "model": self.model,
                "cost_usd": self.cost_usd, "replay_of": self.replay_of, "rerun": self.rerun}

    @property
    def rerun_label(self) -> str:
        """" (replay)", " (live rerun)", " (resumed)" or "" for a first run."""
        if not self.replay_of:
            return ""
        return {"live": " (live rerun)", "resume": " (resumed)"}.get(self.rerun or "",
                                                                    " (replay)")


@dataclass(slots=True)
class Investigation:
    """Everything recorded about one question over one corpus."""

    id: str
    question: str
    status: str
    created: float
    ended: float | None
    settings: dict[str, Any]     # endpoint, models, limits, sandbox, pricing, versions
    corpus: list[ManifestEntry]
    nodes: list[TraceNode]       # ordered by id
    answer: str = ""
    citations: list[dict[str, Any]] = field(default_factory=list)
    iterations: int = 0
    subcalls: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    error: str | None = None
    sandbox: dict[str, Any] = field(default_factory=dict)  # the confinement achieved
    unpriced_models: list[str] = field(default_factory=list)
    replay_of: str | None = None

    @property
    def model(self) -> str | None:
        return self.settings.get("model")

    @property
    def sub_model(self) -> str | None:
        return self.settings.get("sub_model")

    @property
    def app_version(self) -> str | None:
        return self.settings.get("app_version")

    @property
    def prompt_version(self) -> str | None:
        return self.settings.get("prompt_version")

    def result(self) -> RunResult:
        """The answer as the engine returned it (for the answer view and `ask --json`)."""
        return RunResult(answer=self.answer, status=self.status,
                         citations=[dict(c) for c in self.citations],
                         iterations=self.iterations, subcalls=self.subcalls,
                         usage=Usage(self.usage.prompt_tokens, self.usage.completion_tokens,
                                     self.usage.estimated),
                         cost_usd=self.cost_usd, elapsed_s=self.elapsed_s, error=self.error,
                         unpriced_models=list(self.unpriced_models),
                         sandbox=dict(self.sandbox))

    def document(self, name: str) -> ManifestEntry | None:
        for entry in self.corpus:
            if entry.name == name:
                return entry
        return None

    def to_json(self) -> dict[str, Any]:
        """The whole investigation (docs/investigation-format.md)."""
        return {
            "format": FORMAT_NAME, "version": FORMAT_VERSION,
            "id": self.id, "question": self.question, "status": self.status,
            "created": self.created, "ended": self.ended, "replay_of": self.replay_of,
            "settings": self.settings,
            "corpus": [entry.to_json() for entry in self.corpus],
            "answer": self.answer, "citations": self.citations,
            "iterations": self.iterations, "subcalls": self.subcalls,
            "usage": self.usage.to_json(), "cost_usd": self.cost_usd,
            "elapsed_s": self.elapsed_s, "error": self.error, "sandbox": self.sandbox,
            "unpriced_models": self.unpriced_models,
            "nodes": [node.to_json() for node in self.nodes],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Investigation:
        if data.get("format") != FORMAT_NAME:
            raise ValueError("not an RLM Desktop investigation")
        if int(data.get("version") or 0) > FORMAT_VERSION:
            raise ValueError(f"investigation format {data.get('version')} is newer than this "
                             f"version of RLM Desktop understands ({FORMAT_VERSION})")
        ended = data.get("ended")
        return cls(
            id=str(data["id"]), question=str(data["question"]), status=str(data["status"]),
            created=float(data["created"]), ended=None if ended is None else float(ended),
            settings=dict(data.get("settings") or {}),
            corpus=[ManifestEntry.from_json(e) for e in data.get("corpus") or ()],
            nodes=[node_from_json(n) for n in data.get("nodes") or ()],
            answer=str(data.get("answer") or ""),
            citations=list(data.get("citations") or ()),
            iterations=int(data.get("iterations") or 0),
            subcalls=int(data.get("subcalls") or 0),
            usage=usage_from_json(data.get("usage")) or Usage(),
            cost_usd=float(data.get("cost_usd") or 0.0),
            elapsed_s=float(data.get("elapsed_s") or 0.0), error=data.get("error"),
            sandbox=dict(data.get("sandbox") or {}),
            unpriced_models=list(data.get("unpriced_models") or ()),
            replay_of=data.get("replay_of"),
        )


def corpus_label(entries: Sequence[ManifestEntry]) -> tuple[str, int]:
    """A short description of the corpus for the history, and its number of files."""
    files = source_files(entries)
    names = [os.path.basename(path) or path for path in files]
    if not names:
        return "no files", 0
    if len(names) == 1:
        return names[0], 1
    shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
    return f"{len(names)} files ({shown})", len(names)


def source_files(entries: Iterable[ManifestEntry]) -> dict[str, str]:
    """Each source file of a corpus once (path -> sha256), in corpus order. Messages and
    attachments of a mailbox share its path and hash; duplicate copies have their own path."""
    files: dict[str, str] = {}
    for entry in entries:
        for path in (entry.path, *entry.paths):
            files.setdefault(path, entry.sha256)
    return files


FileState = Literal["ok", "changed", "missing"]


@dataclass(frozen=True, slots=True)
class FileCheck:
    """Whether a file of an investigation's corpus is still what it was."""

    path: str
    sha256: str                  # recorded
    state: FileState
    current_sha256: str | None = None
    detail: str | None = None    # why a file counts as missing (e.g. permission denied)


def check_files(investigation: Investigation,
                cancel: threading.Event | None = None) -> list[FileCheck]:
    """Hash every source file again: ok, changed (sha256 differs) or missing. Reads every
    byte of the corpus, so the GUI runs it in the background; `cancel` stops it between
    files (what was checked so far is returned)."""
    checks = []
    for path, recorded in source_files(investigation.corpus).items():
        if cancel is not None and cancel.is_set():
            break
        try:
            with open(path, "rb") as handle:
                current = hashlib.file_digest(handle, "sha256").hexdigest()
        except FileNotFoundError:
            checks.append(FileCheck(path, recorded, "missing"))
            continue
        except OSError as exc:
            checks.append(FileCheck(path, recorded, "missing",
                                    detail=exc.strerror or str(exc)))
            continue
        state: FileState = "ok" if current == recorded else "changed"
        checks.append(FileCheck(path, recorded, state, current))
    return checks
