"""Documents with provenance: normalized text, and offsets mapped to (page, line) and back.

Offsets are indices into `Document.text` (a Python str). Lines are 1-based; in a paged
document (PDF) a line number counts from the top of its page, elsewhere from the top of the
document. Every lookup is a binary search over precomputed starts: O(log n).
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

# Typographic ligatures that PDF producers emit as single code points.
_LIGATURES = {
    "\ufb00": "ff",
    "\ufb01": "fi",
    "\ufb02": "fl",
    "\ufb03": "ffi",
    "\ufb04": "ffl",
    "\ufb05": "st",
    "\ufb06": "st",
}
# Invisible marks that break words apart for search: soft hyphen, pdfium's hyphenation and
# noncharacter markers, NUL, the BOM inside text.
_DROPPED = ("\u00ad", "\ufffe", "\uffff", "\x00", "\ufeff")


def normalize_text(text: str) -> str:
    """Expand ligatures, drop soft hyphens and markers, turn CRLF and lone CR into LF.

    Each step is a C-speed `str.replace` guarded by a containment test; for ASCII text the
    tests for non-ASCII characters return immediately, so normalizing a large log is cheap.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    for mark in _DROPPED:
        if mark in text:
            text = text.replace(mark, "")
    for ligature, expansion in _LIGATURES.items():
        if ligature in text:
            text = text.replace(ligature, expansion)
    return text


def count_lines(text: str) -> int:
    """Lines as a person counts them: a last line without a trailing newline still counts."""
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


@dataclass(frozen=True, slots=True)
class Location:
    """Where an offset sits: 1-based page (None when the document has no pages) and line."""

    page: int | None
    line: int
    column: int = 0


class TextIndex:
    """Line starts and page starts of one text; built once, lazily, then shared."""

    __slots__ = ("_line_starts", "_page_line_base", "_page_starts", "_text_len")

    def __init__(self, text: str, page_starts: Sequence[int] | None = None) -> None:
        self._text_len = len(text)
        # Splitting on "\n" only (not str.splitlines, which also breaks on \f, \v, U+2028...)
        # keeps line numbers identical to what grep and the viewers count.
        starts = array("q", [0])
        starts.extend(accumulate(len(line) + 1 for line in text.split("\n")[:-1]))
        self._line_starts = starts
        self._page_starts: tuple[int, ...] | None = (
            tuple(page_starts) if page_starts else None
        )
        self._page_line_base: tuple[int, ...] = ()
        if self._page_starts is not None:
            self._page_line_base = tuple(
                bisect_right(starts, start) - 1 for start in self._page_starts
            )

    @property
    def line_count(self) -> int:
        return len(self._line_starts)

    @property
    def page_count(self) -> int | None:
        return len(self._page_starts) if self._page_starts is not None else None

    def _check_offset(self, offset: int) -> None:
        if not 0 <= offset <= self._text_len:
            raise IndexError(f"offset {offset} outside text of length {self._text_len}")

    def page_of(self, offset: int) -> int | None:
        self._check_offset(offset)
        if self._page_starts is None:
            return None
        return max(1, bisect_right(self._page_starts, offset))

    def location(self, offset: int) -> Location:
        """(page, line, column) of a text offset."""
        self._check_offset(offset)
        line_index = bisect_right(self._line_starts, offset) - 1
        column = offset - self._line_starts[line_index]
        page = self.page_of(offset)
        if page is None:
            return Location(None, line_index + 1, column)
        return Location(page, line_index - self._page_line_base[page - 1] + 1, column)

    def offset(self, page: int | None, line: int) -> int:
        """Offset of the first character of `line` (on `page`, when the text has pages)."""
        base = 0
        if page is not None:
            if self._page_starts is None:
                raise ValueError("this document has no pages")
            if not 1 <= page <= len(self._page_starts):
                raise IndexError(f"page {page} outside 1..{len(self._page_starts)}")
            base = self._page_line_base[page - 1]
        index = base + line - 1
        if line < 1 or index >= len(self._line_starts):
            raise IndexError(f"line {line} outside the text")
        if page is not None and page < len(self._page_starts or ()) and index >= (
            self._page_line_base[page]
        ):
            raise IndexError(f"line {line} is past the end of page {page}")
        return int(self._line_starts[index])

    def line_span(self, offset: int) -> tuple[int, int]:
        """Start and end (exclusive, without the newline) of the line holding `offset`."""
        self._check_offset(offset)
        line_index = bisect_right(self._line_starts, offset) - 1
        start = int(self._line_starts[line_index])
        if line_index + 1 < len(self._line_starts):
            end = int(self._line_starts[line_index + 1]) - 1
        else:
            end = self._text_len
        return start, end


class Document:
    """One readable unit of the corpus: a PDF, a Word file, one email message, one log file.

    Text is loaded on first use (from the text cache), so a corpus of thousands of documents
    costs little memory until the text is needed.
    """

    __slots__ = (
        "_index",
        "_load_text",
        "_text",
        "id",
        "kind",
        "meta",
        "name",
        "page_starts",
        "parent",
        "path",
        "paths",
        "sha256",
        "size",
        "text_file",
    )

    def __init__(
        self,
        *,
        id: str,
        name: str,
        path: str,
        kind: str,
        sha256: str,
        size: int,
        meta: dict[str, Any] | None = None,
        text: str | None = None,
        load_text: Callable[[], str] | None = None,
        page_starts: Sequence[int] | None = None,
        parent: str | None = None,
        paths: Sequence[str] = (),
        text_file: tuple[str, int, int] | None = None,
    ) -> None:
        if text is None and load_text is None:
            raise ValueError("a Document needs its text or a way to load it")
        self.id = id
        self.name = name
        self.path = path
        self.paths: tuple[str, ...] = tuple(paths) or (path,)
        self.kind = kind
        self.sha256 = sha256
        self.size = size
        self.meta: dict[str, Any] = meta if meta is not None else {}
        self.parent = parent
        self.page_starts: tuple[int, ...] | None = tuple(page_starts) if page_starts else None
        self._text = text
        self._load_text = load_text
        self._index: TextIndex | None = None
        # Where the text sits in the cache (file, byte start, byte end): lets another
        # process (the REPL worker) read it without the text being sent to it.
        self.text_file = text_file

    @property
    def text(self) -> str:
        if self._text is None:
            assert self._load_text is not None
            self._text = self._load_text()
        return self._text

    @property
    def index(self) -> TextIndex:
        if self._index is None:
            self._index = TextIndex(self.text, self.page_starts)
        return self._index

    @property
    def pages(self) -> int | None:
        return len(self.page_starts) if self.page_starts else None

    def location(self, offset: int) -> Location:
        return self.index.location(offset)

    def offset(self, page: int | None, line: int) -> int:
        return self.index.offset(page, line)

    def page_text(self, page: int) -> str:
        """The text of one 1-based page."""
        if not self.page_starts:
            raise ValueError(f"{self.name} has no pages")
        if not 1 <= page <= len(self.page_starts):
            raise IndexError(f"page {page} outside 1..{len(self.page_starts)}")
        start = self.page_starts[page - 1]
        end = self.page_starts[page] if page < len(self.page_starts) else len(self.text)
        return self.text[start:end]

    def release_text(self) -> None:
        """Forget the loaded text (it is reloaded from the cache on next use)."""
        if self._load_text is not None:
            self._text = None
            self._index = None

    def __repr__(self) -> str:
        return f"Document(id={self.id!r}, name={self.name!r}, kind={self.kind!r})"


_WS = re.compile(r"\s+")


def one_line(text: str, limit: int = 80) -> str:
    """Collapse whitespace and cut to `limit` characters, for labels and tables."""
    flat = _WS.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
