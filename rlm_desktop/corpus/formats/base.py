"""What every format loader reads (a Source) and yields (Parts), and the context it runs in."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from rlm_desktop.corpus.errors import EmptyFile, ExtractionError, LimitExceeded
from rlm_desktop.corpus.limits import Limits


class Source:
    """A file on disk or bytes held in memory (an archive member, an email attachment)."""

    __slots__ = ("_data", "name", "path", "size")

    def __init__(self, name: str, *, path: str | None = None, data: bytes | None = None) -> None:
        if (path is None) == (data is None):
            raise ValueError("a Source is either a path or bytes")
        self.name = name
        self.path = path
        self._data = data
        self.size = len(data) if data is not None else os.path.getsize(path or "")

    def open(self) -> BinaryIO:
        if self._data is not None:
            return io.BytesIO(self._data)
        assert self.path is not None
        return open(self.path, "rb")

    def read(self, limit: int | None = None) -> bytes:
        """All bytes, refusing files over `limit` before reading them."""
        if limit is not None and self.size > limit:
            raise LimitExceeded(
                f"file is {self.size / 2**20:,.0f} MiB; the limit for this format is "
                f"{limit / 2**20:,.0f} MiB"
            )
        if self._data is not None:
            return self._data
        with self.open() as handle:
            return handle.read()

    def head(self, n: int = 8192) -> bytes:
        if self._data is not None:
            return self._data[:n]
        with self.open() as handle:
            return handle.read(n)

    def require_content(self) -> None:
        if self.size == 0:
            raise EmptyFile("empty file (0 bytes)")


@dataclass(slots=True)
class Part:
    """One document a loader found in a source.

    `name` is relative to the source ("" for the source itself, "#3" for its third message,
    "#3/invoice.pdf" for an attachment); the pipeline prefixes the file's display name.
    `text` is a str, or (streamed logs) an iterable of chunks each ending at a line break:
    str, or bytes holding plain ASCII that needs no normalization. Consume a part's text
    before asking the loader for the next part. `text_of(part)` gives it as one str.
    """

    name: str
    kind: str
    text: str | Iterable[str | bytes]
    meta: dict[str, Any] = field(default_factory=dict)
    page_starts: list[int] | None = None
    #: Index (among the parts of the same source, in order) of the part that contains this one.
    parent: int | None = None


@dataclass(slots=True)
class ExtractContext:
    """Limits, passwords and a place for warnings, shared by the loaders of one file."""

    limits: Limits = field(default_factory=Limits)
    passwords: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    depth: int = 0
    #: Parts yielded so far for the whole file, shared with nested contexts; a loader reads
    #: `last_index` right after a `yield` to learn the index of the part it just yielded.
    counter: list[int] = field(default_factory=lambda: [0])
    #: Shared with nested contexts: set when a part failed for a reason another run may not
    #: have (see `skip`).
    transient: list[bool] = field(default_factory=lambda: [False])
    #: Set by the pipeline: called with the bytes consumed so far, for progress.
    on_progress: Callable[[int], None] | None = None

    def warn(self, message: str) -> None:
        if len(self.warnings) < 200:
            self.warnings.append(message)
        elif len(self.warnings) == 200:
            self.warnings.append("further warnings omitted")

    def skip(self, what: str, error: ExtractionError) -> None:
        """Record a part that could not be read (an attachment, an archive member) without
        failing the file. If another run might read it (a password, a raised limit), the
        file's result must not be cached: `transient` says so."""
        self.warn(f"{what}: {error}")
        if not error.deterministic:
            self.transient[0] = True

    def nested(self) -> ExtractContext:
        """Context for a source found inside another (attachment, archive member)."""
        if self.depth + 1 > self.limits.max_nesting:
            raise LimitExceeded(
                f"nested more than {self.limits.max_nesting} levels deep "
                "(archives or attachments inside one another)"
            )
        return ExtractContext(
            limits=self.limits,
            passwords=self.passwords,
            warnings=self.warnings,
            depth=self.depth + 1,
            counter=self.counter,
            transient=self.transient,
        )

    @property
    def last_index(self) -> int:
        """Index of the part most recently yielded for this file."""
        return self.counter[0] - 1


Loader = Callable[[Source, ExtractContext], Iterator[Part]]


def check_ratio(ctx: ExtractContext, produced: int, consumed: int, what: str) -> None:
    """Stop decompression bombs: too many bytes, or too high a ratio past the floor."""
    limits = ctx.limits
    if produced > limits.max_decompressed_bytes:
        raise LimitExceeded(
            f"{what} expands past {limits.max_decompressed_bytes / 2**20:,.0f} MiB"
        )
    if produced > limits.ratio_floor_bytes and produced > limits.max_compression_ratio * max(
        consumed, 1
    ):
        raise LimitExceeded(
            f"{what} expands {produced / max(consumed, 1):,.0f}:1, past the "
            f"{limits.max_compression_ratio:,.0f}:1 limit (a decompression bomb?)"
        )


def text_of(part: Part) -> str:
    """A part's whole text as one str, whatever form the loader gave it in."""
    if isinstance(part.text, str):
        return part.text
    return "".join(c if isinstance(c, str) else c.decode("ascii") for c in part.text)
