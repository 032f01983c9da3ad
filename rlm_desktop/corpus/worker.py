"""Parser processes: untrusted files are parsed in child processes that can be killed.

A worker reads length-prefixed frames on stdin and writes frames on stdout: JSON frames for
control and metadata, raw UTF-8 frames for extracted text (never pickle). A worker that
crashes, runs out of memory or overstays its time is killed and replaced by the parent; the
file it was reading becomes a per-file error and the batch goes on.

Run as `python -m rlm_desktop.corpus.worker` (or the frozen app with `--ingest-worker`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, Any, BinaryIO

from rlm_desktop.corpus.document import count_lines

JSON_FRAME = 0
TEXT_FRAME = 1
_HEADER = struct.Struct(">IB")
MAX_FRAME = 256 * 1024 * 1024
_HASH_BLOCK = 1024 * 1024
# Environment a parser may see: nothing that carries secrets, proxies or the user's config.
_KEEP_ENV = ("PATH", "SYSTEMROOT", "WINDIR", "LANG", "LC_ALL", "PYTHONPATH", "TMPDIR", "TEMP",
             "TMP")


class ProtocolError(Exception):
    """The other side sent something that is not a valid frame."""


def write_frame(out: IO[bytes], kind: int, payload: bytes) -> None:
    if len(payload) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(payload)} bytes exceeds the maximum")
    out.write(_HEADER.pack(len(payload), kind))
    out.write(payload)
    out.flush()


def send_json(out: IO[bytes], message: dict[str, Any]) -> None:
    write_frame(out, JSON_FRAME, json.dumps(message).encode("utf-8"))


def read_frame(inp: IO[bytes]) -> tuple[int, bytes] | None:
    """The next frame, or None at a clean end of stream."""
    header = _read_exact(inp, _HEADER.size)
    if header is None:
        return None
    length, kind = _HEADER.unpack(header)
    if length > MAX_FRAME or kind not in (JSON_FRAME, TEXT_FRAME):
        raise ProtocolError("malformed frame header")
    payload = _read_exact(inp, length) if length else b""
    if payload is None:
        raise ProtocolError("stream ended inside a frame")
    return kind, payload


def _read_exact(inp: IO[bytes], size: int) -> bytes | None:
    chunks = []
    remaining = size
    while remaining:
        chunk = inp.read(remaining)
        if not chunk:
            if remaining == size:
                return None
            raise ProtocolError("stream ended inside a frame")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# -- the child side ------------------------------------------------------------------------


def _apply_limits(memory_bytes: int) -> None:
    try:
        import resource
    except ImportError:  # Windows: the job object of a later hardening step applies instead
        return
    for name, value in (("RLIMIT_CORE", 0), ("RLIMIT_AS", memory_bytes)):
        limit = getattr(resource, name, None)
        if limit is None or (name == "RLIMIT_AS" and sys.platform == "darwin"):
            continue  # macOS does not enforce RLIMIT_AS
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(limit, (value, value))


def sha256_of(path: str) -> str:
    return _hash_pass(path, scan=False)[0]


def _hash_pass(path: str, *, scan: bool) -> tuple[str, dict[str, int] | None]:
    """The file's sha256 and, with `scan`, whether its bytes already are normalized text
    (ASCII, no CR, no NUL): then `{"lines": n}`, and the text is the file itself."""
    digest = hashlib.sha256()
    clean = scan
    lines = 0
    last = b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
            if clean:
                clean = block.isascii() and b"\r" not in block and b"\x00" not in block
                lines += block.count(b"\n")
                last = block[-1:]
    if not clean:
        return digest.hexdigest(), None
    return digest.hexdigest(), {"lines": lines + (last != b"\n")}


def worker_main() -> int:
    """Serve extraction requests until stdin closes."""
    # Keep the real stdout for frames and point fd 1 at stderr, so stray prints from any
    # library can never corrupt the protocol.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    from rlm_desktop.corpus.limits import Limits

    limits_applied = False
    while True:
        frame = read_frame(inp)
        if frame is None:
            return 0
        request = json.loads(frame[1])
        if request.get("op") != "extract":
            continue
        limits = Limits.from_dict(request.get("limits", {}))
        if not limits_applied:
            _apply_limits(limits.worker_memory_bytes)
            limits_applied = True
        _serve(request, limits, inp, out)


def _serve(request: dict[str, Any], limits: Any, inp: BinaryIO, out: BinaryIO) -> None:
    from rlm_desktop.corpus.errors import ExtractionError
    from rlm_desktop.corpus.formats import ExtractContext, Source, detect, extract

    path = request["path"]
    try:
        verbatim = _verbatim_format(request["name"], path)
        digest, plain = _hash_pass(path, scan=verbatim is not None)
    except OSError as exc:
        send_json(out, {"op": "done", "error": {"code": "unreadable", "message": _os_error(exc)}})
        return
    hashed: dict[str, Any] = {"op": "hashed", "sha256": digest}
    if plain is not None:
        # Plain ASCII text: extraction would give back the file's bytes unchanged, so the
        # parent copies the file into the cache instead of receiving it through the pipe.
        hashed["verbatim"] = {"format": verbatim, "lines": plain["lines"]}
    send_json(out, hashed)
    reply = read_frame(inp)
    if reply is None or json.loads(reply[1]).get("op") != "go":
        return
    ctx = ExtractContext(limits=limits, passwords=tuple(request.get("passwords", ())))
    last_progress = [0.0]

    def progress(done: int) -> None:
        now = time.monotonic()
        if now - last_progress[0] > 0.1:
            last_progress[0] = now
            send_json(out, {"op": "progress", "bytes": done})

    ctx.on_progress = progress
    fmt = None
    try:
        source = Source(request["name"], path=path)
        fmt = detect(source.name, source.head())
        sender = _PartSender(out)
        for part in extract(source, ctx, fmt):
            sender.send(part)
        sender.flush()
        send_json(out, {"op": "done", "format": fmt, "warnings": ctx.warnings, "error": None})
    except ExtractionError as exc:
        send_json(out, {"op": "done", "format": fmt, "warnings": ctx.warnings,
                        "error": {"code": exc.code, "message": str(exc),
                                  "deterministic": exc.deterministic}})
    except MemoryError:
        send_json(out, {"op": "done", "format": fmt, "error": {
            "code": "limit", "message": "ran out of memory while reading this file "
            f"(limit {limits.worker_memory_bytes / 2**30:.1f} GiB)"}})
    except Exception as exc:  # a parser bug on odd input: the file fails, the batch goes on
        send_json(out, {"op": "done", "format": fmt, "warnings": ctx.warnings, "error": {
            "code": "unreadable",
            "message": f"could not read this file ({type(exc).__name__}: {_clip(str(exc))})"}})


class _PartSender:
    """Sends parts to the parent. Small parts (messages, pages) travel in batches, one JSON
    frame and one text frame per batch, because a frame per part made the parent the
    bottleneck on mailboxes; streamed parts (large logs) go chunk by chunk."""

    BATCH_BYTES = 1024 * 1024
    BATCH_PARTS = 512

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._heads: list[dict[str, Any]] = []
        self._texts: list[bytes] = []
        self._size = 0

    def send(self, part: Any) -> None:
        head = {"name": part.name, "kind": part.kind, "meta": part.meta,
                "page_starts": part.page_starts, "parent": part.parent}
        if isinstance(part.text, str):
            data = part.text.encode("utf-8", errors="replace")
            head.update(bytes=len(data), chars=len(part.text), lines=count_lines(part.text))
            self._heads.append(head)
            self._texts.append(data)
            self._size += len(data)
            if self._size >= self.BATCH_BYTES or len(self._heads) >= self.BATCH_PARTS:
                self.flush()
            return
        self.flush()
        send_json(self._out, {"op": "part", **head})
        chars = lines = 0
        ends_with_newline = True
        for chunk in part.text:
            if not chunk:
                continue
            if isinstance(chunk, bytes):  # plain ASCII, already normalized
                write_frame(self._out, TEXT_FRAME, chunk)
                lines += chunk.count(b"\n")
                ends_with_newline = chunk.endswith(b"\n")
            else:
                write_frame(self._out, TEXT_FRAME, chunk.encode("utf-8", errors="replace"))
                lines += chunk.count("\n")
                ends_with_newline = chunk.endswith("\n")
            chars += len(chunk)
        lines += 1 if chars and not ends_with_newline else 0
        send_json(self._out, {"op": "part_end", "chars": chars, "lines": lines})

    def flush(self) -> None:
        if not self._heads:
            return
        send_json(self._out, {"op": "parts", "parts": self._heads})
        write_frame(self._out, TEXT_FRAME, b"".join(self._texts))
        self._heads, self._texts, self._size = [], [], 0


def _verbatim_format(name: str, path: str) -> str | None:
    """The format of an uncompressed text or log file whose text may be its bytes."""
    from rlm_desktop.corpus.errors import ExtractionError
    from rlm_desktop.corpus.formats import (
        VERBATIM_FORMATS,
        detect,
        looks_like_text,
        sniff_compression,
        split_compression,
    )

    with open(path, "rb") as handle:
        head = handle.read(64 * 1024)
    try:
        fmt = detect(name, head)
    except ExtractionError:
        return None
    if fmt not in VERBATIM_FORMATS or not head or sniff_compression(head):
        return None
    if split_compression(name)[1] is not None:
        return None  # named as compressed but is not: the loader reports that
    return fmt if looks_like_text(head) else None


def _os_error(exc: OSError) -> str:
    return f"cannot open the file: {exc.strerror or exc}"


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- the parent side -----------------------------------------------------------------------


def worker_command() -> list[str]:
    if getattr(sys, "frozen", False):
        return [sys.executable, "--ingest-worker"]
    return [sys.executable, "-m", "rlm_desktop.corpus.worker"]


Event = tuple[int, int, bytes | None]  # worker id, frame kind (-1 = exited), payload


class WorkerProcess:
    """One parser process; its frames arrive on a queue shared by all workers."""

    def __init__(self, ident: int, events: queue.Queue[Event]) -> None:
        self.ident = ident
        self._home = tempfile.TemporaryDirectory(prefix="rlm-parser-")
        env = {k: v for k, v in os.environ.items() if k in _KEEP_ENV}
        env["HOME"] = env["USERPROFILE"] = self._home.name
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        kwargs: dict[str, Any] = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True
        else:
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        self.process = subprocess.Popen(
            worker_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self._home.name,
            env=env,
            close_fds=True,
            **kwargs,
        )
        self.stderr_tail = b""
        self._events = events
        self._threads = [
            threading.Thread(target=self._pump, daemon=True, name=f"parser-{ident}"),
            threading.Thread(target=self._drain_stderr, daemon=True, name=f"parser-{ident}-err"),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        try:
            while (frame := read_frame(self.process.stdout)) is not None:
                self._events.put((self.ident, frame[0], frame[1]))
        except (ProtocolError, OSError, ValueError):
            pass
        self.process.wait()
        self._events.put((self.ident, -1, None))

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        try:
            for line in self.process.stderr:
                self.stderr_tail = (self.stderr_tail + line)[-4000:]
        except (OSError, ValueError):
            pass

    def send(self, message: dict[str, Any]) -> bool:
        assert self.process.stdin is not None
        try:
            send_json(self.process.stdin, message)
            return True
        except (OSError, ValueError):
            return False

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.close()

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        self._home.cleanup()

    @property
    def exit_code(self) -> int | None:
        return self.process.poll()


def describe_exit(code: int | None, on_signal: Callable[[int], str] | None = None) -> str:
    if code is None:
        return "the parser stopped responding"
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if on_signal is not None:
            return on_signal(-code)
        return f"the parser crashed on this file ({name})"
    return f"the parser exited unexpectedly (code {code})"


if __name__ == "__main__":
    raise SystemExit(worker_main())
