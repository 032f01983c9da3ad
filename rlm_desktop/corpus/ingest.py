"""The ingestion pipeline: paths in, Documents out, through a pool of killable parser processes.

Files already in the text cache (same path, size and mtime; or the same sha256) are opened
without starting a parser at all. The rest are hashed and parsed in worker processes with
per-file limits; a file dropped twice (same sha256) is read once and lists both paths.
Progress is reported through a callback and the run can be cancelled from another thread.
"""

from __future__ import annotations

import gc
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from rlm_desktop.corpus.cache import CachedPart, Manifest, PendingText, TextCache
from rlm_desktop.corpus.document import Document
from rlm_desktop.corpus.errors import ExtractionError
from rlm_desktop.corpus.formats import DOCUMENT_KIND, EXTRACTOR_VERSION, detect
from rlm_desktop.corpus.limits import Limits
from rlm_desktop.corpus.pool import Event, WorkerProcess, describe_exit
from rlm_desktop.corpus.worker import TEXT_FRAME

#: Formats whose file-level kind differs from their documents' kind.
_FILE_KIND = {"mbox": "mbox", "zip": "zip"}


@dataclass(frozen=True, slots=True)
class Progress:
    """Where an ingestion run stands; `current` is the file most recently started."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    current: str | None
    errors: int


@dataclass(slots=True)
class SourceFile:
    """One file the user gave (or found in a folder): its documents, or why it failed."""

    path: str
    name: str
    size: int
    paths: list[str] = field(default_factory=list)
    sha256: str | None = None
    format: str | None = None
    documents: list[Document] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    error_code: str | None = None
    cached: bool = False
    chars: int = 0
    lines: int = 0
    #: Set when this file has the same bytes as another one that holds the documents.
    duplicate_of: SourceFile | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        if self.format is None:
            return "unknown"
        return _FILE_KIND.get(self.format, DOCUMENT_KIND.get(self.format, self.format))

    @property
    def pages(self) -> int | None:
        if self.format != "pdf" or not self.documents:
            return None
        return self.documents[0].pages

    @property
    def messages(self) -> int | None:
        if self.format not in ("mbox", "eml", "msg"):
            return None
        return sum(1 for d in self.documents if d.kind == "email" and d.parent is None)

    def to_json(self) -> dict[str, Any]:
        """The `ingest --json` entry for this file (blueprint §5)."""
        entry: dict[str, Any] = {
            "path": self.path, "name": self.name, "kind": self.kind, "chars": self.chars,
            "sha256": self.sha256,
        }
        if self.pages is not None:
            entry["pages"] = self.pages
        if self.messages is not None:
            entry["messages"] = self.messages
        if self.error is None and self.format not in ("pdf", "mbox", "eml", "msg", "zip"):
            entry["lines"] = self.lines
        if len(self.documents) > 1:
            entry["documents"] = len(self.documents)
        if len(self.paths) > 1:
            entry["paths"] = list(self.paths)
        if self.warnings:
            entry["warnings"] = list(self.warnings)
        if self.error is not None:
            entry["error"] = self.error
        return entry


@dataclass(slots=True)
class IngestResult:
    files: list[SourceFile]
    cancelled: bool = False
    elapsed_s: float = 0.0

    @property
    def documents(self) -> list[Document]:
        return [doc for f in self.files for doc in f.documents]

    @property
    def failed(self) -> list[SourceFile]:
        return [f for f in self.files if f.error is not None]

    def to_json(self) -> dict[str, Any]:
        return {"documents": [f.to_json() for f in self.files]}


def collect_paths(inputs: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, str | None]]:
    """Files to ingest, in order: folders walked recursively (hidden entries skipped).

    Returns (path, error) pairs; inputs that do not exist come back with their error.
    """
    found: list[tuple[Path, str | None]] = []
    seen: set[Path] = set()

    def add(path: Path, error: str | None = None) -> None:
        if path not in seen:
            seen.add(path)
            found.append((path, error))

    for raw in inputs:
        path = Path(os.path.abspath(Path(raw).expanduser()))
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        add(Path(root) / name)
        elif path.is_file():
            add(path)
        elif path.exists():
            add(path, "not a regular file")
        else:
            add(path, "no such file or folder")
    return found


def display_names(paths: Sequence[Path]) -> list[str]:
    """Short unique names: the file name, plus as many parent folders as needed to tell
    files apart (like an editor's tabs)."""
    depth = dict.fromkeys(range(len(paths)), 1)

    def name(i: int) -> str:
        parts = paths[i].parts
        return "/".join(parts[-depth[i]:])

    for _ in range(64):
        by_name: dict[str, list[int]] = {}
        for i in range(len(paths)):
            by_name.setdefault(name(i), []).append(i)
        clashes = [group for group in by_name.values() if len(group) > 1]
        if not clashes:
            break
        for group in clashes:
            for i in group:
                if depth[i] < len(paths[i].parts):
                    depth[i] += 1
    return [name(i) for i in range(len(paths))]


ProgressCallback = Callable[[Progress], None]


def ingest(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    limits: Limits | None = None,
    passwords: Sequence[str] = (),
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    workers: int | None = None,
    cache: TextCache | None = None,
    use_cache: bool = True,
) -> IngestResult:
    """Read every file under `inputs` into Documents. Never raises for a bad file."""
    run = _Run(limits or Limits(), tuple(passwords), progress, cancel or threading.Event())
    own_cache = use_cache and cache is None
    run.cache = (cache or TextCache(extractor=EXTRACTOR_VERSION)) if use_cache else None
    # Building tens of thousands of Documents triggers the cycle collector over and over
    # (half the time of a cached re-open); nothing made here forms cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return run.execute(collect_paths(inputs), workers)
    finally:
        if collecting:
            gc.enable()
        if own_cache and run.cache is not None:
            run.cache.close()


@dataclass(slots=True)
class _Task:
    file: SourceFile
    stat: os.stat_result | None
    deadline: float = 0.0
    manifest: Manifest | None = None
    text: PendingText | _MemoryText | None = None
    #: Parts announced by a "parts" frame whose text frame has not arrived yet; until then
    #: each one's `end` holds its length in bytes.
    batch: list[CachedPart] = field(default_factory=list)
    bytes_done: int = 0
    timed_out: bool = False


class _MemoryText:
    """Text kept in memory only: decrypted content, or runs without a cache."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.offset = 0
        self.data = b""

    def write(self, data: bytes) -> None:
        self.chunks.append(data)
        self.offset += len(data)

    def commit(self) -> None:
        self.data = b"".join(self.chunks)
        self.chunks = []

    def discard(self) -> None:
        self.chunks = []


class _Run:
    def __init__(
        self,
        limits: Limits,
        passwords: tuple[str, ...],
        progress: ProgressCallback | None,
        cancel: threading.Event,
    ) -> None:
        self.limits = limits
        self.passwords = passwords
        self.on_progress = progress
        self.cancel = cancel
        self.cache: TextCache | None = None
        self.files: list[SourceFile] = []
        self.done = 0
        self.errors = 0
        self.bytes_total = 0
        self.bytes_done = 0
        self.current: str | None = None
        self.by_sha: dict[str, SourceFile] = {}
        self.deferred: list[Callable[[], None]] = []
        self._last_report = 0.0

    # -- reporting ------------------------------------------------------------------------

    def report(self, force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_report < 0.05:
            return
        self._last_report = now
        self.on_progress(Progress(self.done, len(self.files), self.bytes_done,
                                  self.bytes_total, self.current, self.errors))

    def finish(self, file: SourceFile, extra_bytes: int = 0) -> None:
        self.done += 1
        self.bytes_done += extra_bytes
        if file.error is not None:
            self.errors += 1
        self.report(force=self.done == len(self.files))

    # -- the run --------------------------------------------------------------------------

    def execute(self, found: list[tuple[Path, str | None]], workers: int | None) -> IngestResult:
        started = time.monotonic()
        names = display_names([p for p, _ in found])
        pending: list[_Task] = []
        for (path, error), name in zip(found, names, strict=True):
            file = SourceFile(path=str(path), name=name, size=0, paths=[str(path)])
            self.files.append(file)
            if error is not None:
                file.error, file.error_code = error, "unreadable"
                continue
            try:
                stat = path.stat()
            except OSError as exc:
                file.error, file.error_code = f"cannot open the file: {exc.strerror}", "unreadable"
                continue
            file.size = stat.st_size
            self.bytes_total += stat.st_size
            if stat.st_size > self.limits.max_file_bytes:
                file.error, file.error_code = (
                    f"file is {stat.st_size / 2**30:,.1f} GiB, over the "
                    f"{self.limits.max_file_bytes / 2**30:,.0f} GiB limit", "limit")
                continue
            if stat.st_size == 0:
                file.format = _format_by_name(file.name)
                file.error, file.error_code = "empty file (0 bytes)", "empty"
                continue
            pending.append(_Task(file, stat))
        for file in self.files:
            if file.error is not None:
                self.finish(file, file.size)
        self.report(force=True)
        remaining = [task for task in pending if not self._from_cache(task)]
        cancelled = False
        if remaining:
            cancelled = self._parse(remaining, workers)
        files = [f for f in self.files if self._settle_duplicate(f)]
        return IngestResult(files, cancelled=cancelled, elapsed_s=time.monotonic() - started)

    @staticmethod
    def _settle_duplicate(file: SourceFile) -> bool:
        """Whether `file` stays in the list: a copy of a readable file is folded into it
        (its path recorded there); a copy of an unreadable one is listed with the error."""
        twin = file.duplicate_of
        if twin is None:
            return True
        if twin.error is None:
            return False
        twin.paths.remove(file.path)
        file.format, file.warnings = twin.format, list(twin.warnings)
        file.error, file.error_code = twin.error, twin.error_code
        return True

    def _from_cache(self, task: _Task) -> bool:
        """Complete a task from the stat index and the cache; True when done."""
        if self.cache is None or task.stat is None:
            return False
        sha = self.cache.known_sha256(task.file.path, task.stat)
        if sha is None:
            return False
        return self._adopt(task.file, sha)

    def _adopt(self, file: SourceFile, sha: str) -> bool:
        """Fill `file` from an earlier file with the same bytes or from the cache."""
        file.sha256 = sha
        twin = self.by_sha.get(sha)
        if twin is not None and twin is not file:
            twin.paths.append(file.path)
            for doc in twin.documents:
                doc.paths = tuple(twin.paths)
            file.duplicate_of = twin
            file.error_code = "duplicate"
            file.error = f"same content as {twin.path}"
            self.done += 1
            self.bytes_done += file.size
            self.report(force=self.done == len(self.files))
            return True
        manifest = self.cache.manifest(sha) if self.cache is not None else None
        if manifest is None:
            return False
        self.by_sha[sha] = file
        file.cached = True
        self._apply(file, manifest, None)
        self.finish(file, file.size)
        return True

    def _apply(self, file: SourceFile, manifest: Manifest, memory: _MemoryText | None) -> None:
        file.format = manifest.format
        file.warnings = list(manifest.warnings)
        if manifest.error is not None:
            file.error, file.error_code = manifest.error, manifest.error_code
            return
        ids: list[str] = []
        # One path per source, not per document: a mailbox has tens of thousands of parts.
        cache_file = (str(self.cache.text_path(manifest.sha256))
                      if memory is None and self.cache is not None else None)
        for index, part in enumerate(manifest.parts):
            doc_id = f"{manifest.sha256[:12]}-{index}"
            ids.append(doc_id)
            text_file: tuple[str, int, int] | None = None
            if memory is not None:
                text: str | None = memory.data[part.start:part.end].decode("utf-8")
                loader = None
            else:
                assert self.cache is not None
                text, loader = None, partial(self.cache.read_text, manifest.sha256,
                                             part.start, part.end)
                assert cache_file is not None
                text_file = (cache_file, part.start, part.end)
            meta = part.meta  # shared, not copied: a mailbox has tens of thousands of these
            meta.setdefault("chars", part.chars)
            meta.setdefault("lines", part.lines)
            file.documents.append(Document(
                id=doc_id, name=file.name + part.name, path=file.path, paths=file.paths,
                kind=part.kind, sha256=manifest.sha256, size=file.size, meta=meta,
                text=text, load_text=loader, page_starts=part.page_starts,
                parent=ids[part.parent] if part.parent is not None else None,
                text_file=text_file,
            ))
            file.chars += part.chars
            if part.parent is None:
                file.lines += part.lines

    # -- parsing in worker processes --------------------------------------------------------

    def _parse(self, tasks: list[_Task], workers: int | None) -> bool:
        size = workers or _default_workers()
        size = max(1, min(size, len(tasks)))
        events: queue.Queue[Event] = queue.Queue()
        pool: dict[int, WorkerProcess] = {}
        busy: dict[int, _Task] = {}
        todo = list(reversed(tasks))
        next_id = 0
        cancelled = False

        def start_worker() -> None:
            nonlocal next_id
            pool[next_id] = WorkerProcess(next_id, events)
            next_id += 1

        def assign(ident: int) -> None:
            if not todo:
                return
            task = todo.pop()
            task.deadline = time.monotonic() + self.limits.seconds_for(task.file.size)
            busy[ident] = task
            self.current = task.file.name
            self.report()
            pool[ident].send({"op": "extract", "path": task.file.path, "name": task.file.name,
                              "passwords": list(self.passwords),
                              "limits": self.limits.to_dict()})

        try:
            for _ in range(size):
                start_worker()
            for ident in list(pool):
                assign(ident)
            while busy:
                if self.cancel.is_set():
                    cancelled = True
                    break
                try:
                    ident, kind, payload = events.get(timeout=0.1)
                except queue.Empty:
                    ident, kind, payload = -1, 0, None
                if ident in busy:
                    if self._on_frame(busy[ident], pool[ident], kind, payload):
                        del busy[ident]
                        if kind == -1 or pool[ident].exit_code is not None:
                            pool.pop(ident).close()
                            if todo:
                                start_worker()
                                assign(next_id - 1)
                        else:
                            assign(ident)
                    while self.deferred:
                        self.deferred.pop()()
                elif kind == -1 and ident in pool:  # an idle parser died (e.g. OOM killer)
                    pool.pop(ident).close()
                    if todo:
                        start_worker()
                        assign(next_id - 1)
                now = time.monotonic()
                for ident, task in list(busy.items()):
                    if now > task.deadline and not task.timed_out:
                        task.timed_out = True
                        pool[ident].kill()  # its pump thread reports the exit next
            while self.deferred:  # finish copies even when cancelled: they are quick
                self.deferred.pop()()
        finally:
            for worker in pool.values():
                worker.kill()
            for task in busy.values():  # an exception (or a cancel) mid-file: no temp files
                if task.text is not None:
                    task.text.discard()
                    task.text = None
        if cancelled:
            for task in [*busy.values(), *todo]:
                task.file.error, task.file.error_code = "cancelled", "cancelled"
                self.finish(task.file)
        return cancelled

    def _on_frame(self, task: _Task, worker: WorkerProcess, kind: int,
                  payload: bytes | None) -> bool:
        """Handle one frame for `task`; True when the task is finished."""
        file = task.file
        if kind == -1:  # the process exited mid-task
            if task.text is not None:
                task.text.discard()
            if task.timed_out:
                file.error = (f"took longer than {self.limits.seconds_for(file.size):,.0f} s "
                              "to read; stopped")
                file.error_code = "limit"
            else:
                file.error, file.error_code = describe_exit(worker.exit_code), "crashed"
            self.finish(file, file.size - task.bytes_done)
            return True
        assert payload is not None
        if kind == TEXT_FRAME:
            if task.text is not None:
                start = task.text.offset
                task.text.write(payload)
                for part in task.batch:  # a batch's text: its parts back to back
                    part.start, start = start, start + part.end
                    part.end = start
                task.batch = []
            return False
        message = json.loads(payload)
        op = message.get("op")
        if op == "hashed":
            sha = str(message["sha256"])
            if task.stat is not None and self.cache is not None:
                self.cache.remember_file(file.path, task.stat, sha)
            if self._adopt(file, sha):
                worker.send({"op": "skip"})
                return True
            self.by_sha[sha] = file
            task.manifest = Manifest(sha256=sha, size=file.size, format=None)
            verbatim = message.get("verbatim")
            if verbatim and self.cache is not None:
                worker.send({"op": "skip"})
                # Copied once the worker has its next file, so both work at the same time.
                self.deferred.append(partial(self._copy_verbatim, task, verbatim))
                return True
            worker.send({"op": "go"})
        elif op in ("part", "parts") and task.manifest is not None:
            if task.text is None:
                task.text = (self.cache.pending_text(task.manifest.sha256)
                             if self.cache is not None and not self.passwords
                             else _MemoryText())
            for head in message["parts"] if op == "parts" else [message]:
                part = CachedPart(
                    name=head["name"], kind=head["kind"], start=task.text.offset,
                    end=int(head.get("bytes", 0)), chars=int(head.get("chars", 0)),
                    lines=int(head.get("lines", 0)), meta=head.get("meta") or {},
                    page_starts=head.get("page_starts"), parent=head.get("parent"))
                task.manifest.parts.append(part)
                if op == "parts":
                    task.batch.append(part)  # offsets fixed when the batch's text arrives
        elif op == "part_end" and task.manifest is not None and task.text is not None:
            part = task.manifest.parts[-1]
            part.end = task.text.offset
            part.chars, part.lines = int(message["chars"]), int(message["lines"])
        elif op == "progress":
            done = min(int(message["bytes"]), file.size)
            self.bytes_done += done - task.bytes_done
            task.bytes_done = done
            self.report()
        elif op == "done":
            self._complete(task, message)
            return True
        return False

    def _copy_verbatim(self, task: _Task, verbatim: dict[str, Any]) -> None:
        """A plain-ASCII text file is its own text: copy it into the cache (a kernel-level
        copy) rather than stream it through the parser's pipe."""
        assert self.cache is not None and task.manifest is not None
        fmt = str(verbatim["format"])
        try:
            size = self.cache.copy_text(task.manifest.sha256, task.file.path)
            after = os.stat(task.file.path)
        except OSError as exc:
            self.cache.forget_text(task.manifest.sha256)
            self._complete(task, {"op": "done", "error": {
                "code": "unreadable", "message": f"cannot read the file: {exc.strerror}"}})
            return
        stat = task.stat
        if stat is None or (size, after.st_size, after.st_mtime_ns) != (
                stat.st_size, stat.st_size, stat.st_mtime_ns):
            # Changed since it was hashed (a log still being written): the copy may not be
            # the hashed bytes. Drop it and say so; reading it again picks up the new state.
            self.cache.forget_text(task.manifest.sha256)
            self._complete(task, {"op": "done", "error": {
                "code": "changed",
                "message": "the file changed while it was being read; add it again"}})
            return
        task.manifest.parts.append(CachedPart(
            name="", kind=DOCUMENT_KIND[fmt], start=0, end=size, chars=size,
            lines=int(verbatim["lines"])))
        self._complete(task, {"op": "done", "format": fmt, "warnings": [], "error": None},
                       text_in_cache=True)

    def _complete(self, task: _Task, message: dict[str, Any], *,
                  text_in_cache: bool = False) -> None:
        file = task.file
        manifest = task.manifest or Manifest(sha256=file.sha256 or "", size=file.size,
                                             format=None)
        manifest.format = message.get("format")
        manifest.warnings = list(message.get("warnings") or [])
        error = message.get("error")
        memory: _MemoryText | None = None
        if error:
            manifest.parts = []
            manifest.error, manifest.error_code = error["message"], error["code"]
            if task.text is not None:
                task.text.discard()
            cacheable = bool(error.get("deterministic")) and bool(manifest.sha256)
        else:
            if task.text is not None:
                task.text.commit()
            memory = task.text if isinstance(task.text, _MemoryText) else None
            decrypted = any(p.meta.get("opened_with_password") for p in manifest.parts)
            transient = bool(message.get("transient"))  # e.g. a locked PDF attachment
            cacheable = bool(manifest.sha256) and not decrypted and not transient
            if memory is None and task.text is None and not text_in_cache:
                memory = _MemoryText()  # no text at all (e.g. an archive of nothing)
            if memory is not None and cacheable and self.cache is not None and memory.data:
                # Text kept in memory because passwords were in play, but this file needed
                # none: cache it like any other.
                pending = self.cache.pending_text(manifest.sha256)
                pending.write(memory.data)
                pending.commit()
        if cacheable and self.cache is not None:
            self.cache.store(manifest)
        self._apply(file, manifest, memory)
        self.finish(file, file.size - task.bytes_done)


def _format_by_name(name: str) -> str | None:
    try:
        return detect(name, b"")
    except ExtractionError:
        return None


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
