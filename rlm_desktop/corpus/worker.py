"""The parser process: untrusted files are parsed here, in a child that can be killed.

A worker reads length-prefixed frames on stdin and writes frames on stdout: JSON frames for
control and metadata, raw UTF-8 frames for extracted text (never pickle). The parent side
(starting, feeding and killing workers) is `rlm_desktop.corpus.pool`; this module imports
as little as possible because every worker pays for it at start-up.

Run as `python -m rlm_desktop.corpus.worker` (or the frozen app with `--ingest-worker`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import sys
import time
from typing import IO, Any, BinaryIO

from rlm_desktop.corpus.document import count_lines

JSON_FRAME = 0
TEXT_FRAME = 1
_HEADER = struct.Struct(">IB")
MAX_FRAME = 256 * 1024 * 1024
_HASH_BLOCK = 1024 * 1024


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
    for name, value in (("RLIMIT_CORE", 0), ("RLIMIT_AS", memory_bytes), ("RLIMIT_FSIZE", 0)):
        limit = getattr(resource, name, None)
        if limit is None or (name == "RLIMIT_AS" and sys.platform == "darwin"):
            continue  # macOS does not enforce RLIMIT_AS
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(limit, (value, value))


def _confine() -> None:
    """The OS layer for a parser of untrusted files: it may read anything (the files to
    parse can be anywhere) but write nothing, open no socket, start no process or thread
    and signal no one, so a file that takes over a parser library gets nowhere. Applied
    before the first file is opened; what a platform lacks is simply not applied."""
    if os.environ.get("RLM_PARSER_UNCONFINED") == "1" or not sys.platform.startswith("linux"):
        return  # elsewhere the process layer is what parsers get (see docs/security.md)
    # The lean path (not rlm_desktop.confine, whose imports cost a parser ~15 ms at start).
    from rlm_desktop.confine_linux import lockdown_layers

    lockdown_layers([os.path.abspath(os.sep)])


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
            _confine()
            limits_applied = True
        _serve(request, limits, inp, out)


def _serve(request: dict[str, Any], limits: Any, inp: BinaryIO, out: BinaryIO) -> None:
    from rlm_desktop.corpus.errors import ExtractionError, FileChanged
    from rlm_desktop.corpus.formats import ExtractContext, Source, detect, extract

    path = request["path"]
    name = request["name"]
    fmt: str | None = None
    unreadable: ExtractionError | None = None  # reported after hashing, so dedup still works
    try:
        before = os.stat(path)
        with open(path, "rb") as handle:
            head = handle.read(64 * 1024)
        try:
            fmt = detect(name, head)
        except ExtractionError as exc:
            unreadable = exc
        verbatim = fmt if fmt is not None and _is_verbatim(name, head, fmt) else None
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
    try:
        if unreadable is not None:
            raise unreadable
        source = Source(name, path=path)
        sender = _PartSender(out)
        for part in extract(source, ctx, fmt):
            sender.send(part)
        sender.flush()
        if _changed(path, before):
            # The text may not be the bytes that were hashed: do not let it be cached.
            raise FileChanged("the file changed while it was being read; add it again")
        send_json(out, {"op": "done", "format": fmt, "warnings": ctx.warnings, "error": None,
                        "transient": ctx.transient[0]})
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


def _is_verbatim(name: str, head: bytes, fmt: str) -> bool:
    """Whether an uncompressed text or log file's text may be its bytes (the hash pass
    then checks every block is plain ASCII)."""
    from rlm_desktop.corpus.formats import (
        VERBATIM_FORMATS,
        looks_like_text,
        sniff_compression,
        split_compression,
    )

    if fmt not in VERBATIM_FORMATS or not head or sniff_compression(head):
        return False
    if split_compression(name)[1] is not None:
        return False  # named as compressed but is not: the loader reports that
    return looks_like_text(head)


def _changed(path: str, before: os.stat_result) -> bool:
    try:
        after = os.stat(path)
    except OSError:
        return True
    return (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns)


def _os_error(exc: OSError) -> str:
    return f"cannot open the file: {exc.strerror or exc}"


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


if __name__ == "__main__":
    raise SystemExit(worker_main())
