"""What the root model programs against inside the REPL: `context`, `peek`, `grep`, `partition`.

Runs inside the sandboxed worker (pure Python, Qt-free, no I/O). The worker receives every
document text back to back in one string (the *blob*) and builds a `Corpus` over it with
`Corpus._from_blob`; documents are `rlm_desktop.corpus.document.Document` objects whose text is
sliced from the blob on first use. `make_helpers` returns the three helper functions the worker
puts in the model's namespace; each call is recorded as one trace node.

Provenance is always relative to the *original* documents: a `Hit`, a `Chunk` (through its
`.sources`) or an `Excerpt` of a sub-corpus names the document, offsets in its text, and the
page and line as `Document.location` counts them (lines per page in a PDF). Blueprint §4 is the
contract; docs/repl-api.md describes it for users.
"""

from __future__ import annotations

import difflib
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from math import ceil, isfinite
from typing import Any, cast, overload

from rlm_desktop.corpus.document import Document
from rlm_desktop.engine.grep import BlobSearch, compile_pattern, cut_chars, cut_lines

Recorder = Callable[[str, dict[str, Any], Any, float, float], None]
"""record(kind, input, output_summary, started, ended): one trace node per helper call."""

#: grep returns at most this many hits unless max_hits says otherwise.
GREP_MAX_HITS = 100_000
#: peek returns at most this many characters.
PEEK_MAX = 100_000
#: partition refuses to make more chunks than this.
MAX_CHUNKS = 100_000
BY = ("chars", "lines", "pages", "messages", "documents")
_DEFAULT_SIZE = {"chars": 100_000, "lines": 1_000, "pages": 1, "messages": 1, "documents": 1}
_HIT_TEXT = 200

Span = tuple[int, int, int]
"""(document index in the root corpus, start, end): offsets in that document's text."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where a piece of text comes from: a stretch of one original document."""

    doc: str
    doc_index: int
    start: int
    end: int
    page: int | None
    line: int

    def to_json(self) -> dict[str, Any]:
        return {"doc": self.doc, "doc_index": self.doc_index, "start": self.start,
                "end": self.end, "page": self.page, "line": self.line}

    def __str__(self) -> str:
        where = f" p.{self.page}:{self.line}" if self.page is not None else f":{self.line}"
        return f"{self.doc}{where}"


@dataclass(frozen=True, slots=True)
class Hit:
    """One line that matched a grep: `.text` is the whole line; `.start`/`.end` are the
    offsets of the (first) match on it in the document's text."""

    doc: str
    line: int
    page: int | None
    text: str
    start: int
    end: int
    doc_index: int

    @property
    def sources(self) -> tuple[Source, ...]:
        return (Source(self.doc, self.doc_index, self.start, self.end, self.page, self.line),)

    def to_json(self) -> dict[str, Any]:
        return {"doc": self.doc, "doc_index": self.doc_index, "line": self.line,
                "page": self.page, "text": self.text, "start": self.start, "end": self.end}

    def __str__(self) -> str:
        where = f" p.{self.page}:{self.line}" if self.page is not None else f":{self.line}"
        text = self.text if len(self.text) <= _HIT_TEXT else self.text[: _HIT_TEXT - 1] + "…"
        return f"{self.doc}{where}: {text}"

    def __repr__(self) -> str:
        return f"<Hit {self}>"


class _HitBuilder:
    """Same slots as Hit, but mutable: filling one and switching its class to Hit is three
    times faster than the frozen dataclass __init__, which matters for 100,000 hits."""

    __slots__ = Hit.__slots__
    doc: str
    line: int
    page: int | None
    text: str
    start: int
    end: int
    doc_index: int


def _new_hit(  # noqa: PLR0917 - positional: the hot path of grep
    doc: str, line: int, page: int | None, text: str, start: int, end: int,
             doc_index: int, _new: Callable[[type], Any] = object.__new__) -> Hit:
    hit = _new(_HitBuilder)
    hit.doc, hit.line, hit.page, hit.text = doc, line, page, text
    hit.start, hit.end, hit.doc_index = start, end, doc_index
    hit.__class__ = Hit
    return cast(Hit, hit)


class Hits(list[Hit]):
    """grep's result: a list of Hit; `.truncated` is True when the default cap cut it short."""

    truncated: bool = False


class Chunk(str):
    """A piece of text (a str, usable anywhere text is) that knows where it comes from:
    `.sources` lists the Source of each piece. String operations return plain str."""

    sources: tuple[Source, ...]

    def __new__(cls, text: str, sources: Sequence[Source] = ()) -> Chunk:
        chunk = super().__new__(cls, text)
        chunk.sources = tuple(sources)
        return chunk

    def __repr__(self) -> str:
        preview = str.__repr__(self[:60] + ("…" if len(self) > 60 else ""))
        return f"<Chunk {len(self):,} chars from {_describe_sources(self.sources)}: {preview}>"


def _describe_sources(sources: Sequence[Source]) -> str:
    if not sources:
        return "nowhere"
    if len(sources) == 1:
        return str(sources[0])
    names = list(dict.fromkeys(s.doc for s in sources))
    if len(names) == 1:
        return f"{names[0]} ({len(sources)} pieces)"
    shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
    return f"{len(names)} documents: {shown}"


class Excerpt:
    """Part of a document, as an item of a sub-corpus: reads like a Document (.id .name .path
    .kind .text .meta) and keeps `.document` (the original), `.start` and `.end` (offsets in
    the original's text)."""

    __slots__ = ("_root", "_text", "doc_index", "document", "end", "start")

    def __init__(self, root: _Root, doc_index: int, start: int, end: int) -> None:
        self._root = root
        self.doc_index = doc_index
        self.document: Document = root.docs[doc_index]
        self.start = start
        self.end = end
        self._text: str | None = None

    @property
    def id(self) -> str:
        return f"{self.document.id}:{self.start}-{self.end}"

    @property
    def name(self) -> str:
        return f"{self.document.name}[{self.start}:{self.end}]"

    @property
    def path(self) -> str:
        return self.document.path

    @property
    def kind(self) -> str:
        return self.document.kind

    @property
    def meta(self) -> dict[str, Any]:
        return {**self.document.meta, "excerpt_of": self.document.name,
                "start": self.start, "end": self.end}

    @property
    def text(self) -> str:
        if self._text is None:
            base = self._root.starts[self.doc_index]
            self._text = self._root.blob[base + self.start : base + self.end]
        return self._text

    @property
    def source(self) -> Source:
        return self._root.source(self.doc_index, self.start, self.end)

    def __len__(self) -> int:
        return self.end - self.start

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Excerpt) and (
            (self.document, self.start, self.end) == (other.document, other.start, other.end)
        )

    def __hash__(self) -> int:
        return hash((id(self.document), self.start, self.end))

    def __repr__(self) -> str:
        return f"Excerpt({self.document.name!r}, start={self.start}, end={self.end})"


Item = Document | Excerpt


def _slice_blob(blob: str, start: int, end: int) -> str:
    return blob[start:end]


class _Root:
    """What all views of one corpus share: the blob, the documents, the search state."""

    __slots__ = ("_by_id", "_line_base", "blob", "docs", "ends", "search", "starts")

    def __init__(self, blob: str, docs: list[Document], starts: list[int], ends: list[int]):
        self.blob = blob
        self.docs = docs
        self.starts = starts
        self.ends = ends
        self.search = BlobSearch(blob)
        self._by_id: dict[int, int] | None = None
        self._line_base: dict[tuple[int, int], int] = {}

    def index_of(self, doc: Document) -> int:
        if self._by_id is None:
            self._by_id = {id(d): i for i, d in enumerate(self.docs)}
        index = self._by_id.get(id(doc))
        if index is None:
            raise ValueError(f"{doc.name!r} is not a document of this corpus")
        return index

    def base_lines(self, doc_index: int, page_start: int) -> int:
        """Newlines in the blob before `page_start` of document `doc_index` (cached)."""
        key = (doc_index, page_start)
        lines = self._line_base.get(key)
        if lines is None:
            lines = self.search.lines.lines_before(self.starts[doc_index] + page_start)
            self._line_base[key] = lines
        return lines

    def locate(self, doc_index: int, offset: int) -> tuple[int | None, int]:
        """(page, line) of an offset in a document, exactly as Document.location has it."""
        page_starts = self.docs[doc_index].page_starts
        lines = self.search.lines.lines_before(self.starts[doc_index] + offset)
        if not page_starts:
            return None, lines - self.base_lines(doc_index, 0) + 1
        page = max(1, bisect_right(page_starts, offset))
        return page, lines - self.base_lines(doc_index, page_starts[page - 1]) + 1

    def source(self, doc_index: int, start: int, end: int) -> Source:
        page, line = self.locate(doc_index, start)
        return Source(self.docs[doc_index].name, doc_index, start, end, page, line)


class Corpus(Sequence[Item]):
    """The `context` variable: a sequence of documents (or excerpts, in a sub-corpus).

    `len(context)`, `context[3]`, `context["report.pdf"]`, `for doc in context`,
    `"report.pdf" in context`, `context.names()`, `context.kinds()`, `context.total_chars`.
    """

    __slots__ = ("_items", "_names", "_root", "_spans", "_stream")

    def __init__(self, root: _Root, items: list[Item], spans: list[Span]) -> None:
        self._root = root
        self._items = items
        self._spans = spans
        self._names: dict[str, int] | None = None
        self._stream: list[int] | None = None

    @classmethod
    def _from_blob(cls, blob: str, entries: Sequence[dict[str, Any]]) -> Corpus:
        """A corpus over `blob` (all texts back to back, "\\n" between them); entries[i] has
        id, name, path, kind, meta, start, end (offsets in blob), page_starts (relative to the
        document). Texts are sliced from the blob only when a document's .text is read."""
        docs: list[Document] = []
        starts: list[int] = []
        ends: list[int] = []
        size = len(blob)
        for i, entry in enumerate(entries):  # ~2 µs per entry: keep this loop lean
            get = entry.get
            start, end = entry["start"], entry["end"]
            if not 0 <= start <= end <= size:
                raise ValueError(f"entry {i}: span {start}..{end} is outside the blob")
            docs.append(Document(
                id=get("id") or str(i), name=get("name") or f"document {i}",
                path=get("path") or "", kind=get("kind") or "text", sha256=get("sha256") or "",
                size=get("size") or end - start, meta=get("meta") or {},
                load_text=partial(_slice_blob, blob, start, end),
                page_starts=get("page_starts") or None,
            ))
            starts.append(start)
            ends.append(end)
        root = _Root(blob, docs, starts, ends)
        spans = [(i, 0, end - start)
                 for i, (start, end) in enumerate(zip(starts, ends, strict=True))]
        return cls(root, list(docs), spans)

    # ------------------------------------------------------------------ sequence protocol

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, key: int) -> Item: ...
    @overload
    def __getitem__(self, key: slice) -> Corpus: ...
    @overload
    def __getitem__(self, key: str) -> Item: ...
    def __getitem__(self, key: int | slice | str) -> Item | Corpus:
        if isinstance(key, str):
            return self._items[self._lookup(key)]
        if isinstance(key, slice):
            return Corpus(self._root, self._items[key], self._spans[key])
        if isinstance(key, bool) or not isinstance(key, int):
            raise TypeError(f"context[...] takes an index, a slice or a document name, "
                            f"not {type(key).__name__}")
        try:
            return self._items[key]
        except IndexError:
            raise IndexError(f"context has {len(self):,} documents (indexes 0..{len(self) - 1}"
                             f" or negative); {key} is out of range") from None

    def __iter__(self) -> Iterator[Item]:
        return iter(self._items)

    def __contains__(self, value: object) -> bool:
        if isinstance(value, str):
            return value in self._name_index()
        return any(item is value or item == value for item in self._items)

    def _name_index(self) -> dict[str, int]:
        if self._names is None:
            names: dict[str, int] = {}
            for i, item in enumerate(self._items):
                names.setdefault(item.name, i)
            self._names = names
        return self._names

    def _lookup(self, name: str) -> int:
        index = self._name_index().get(name)
        if index is not None:
            return index
        for i, item in enumerate(self._items):  # also accept an id or a path
            if name in (item.id, item.path):
                return i
        close = difflib.get_close_matches(name, list(self._name_index()), n=5, cutoff=0.5)
        if not close:
            lowered = name.lower()
            close = [n for n in self._name_index() if lowered in n.lower()][:5]
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else (
            "; use context.names() to list them")
        raise KeyError(f"no document named {name!r} among {len(self):,} documents{hint}")

    # ------------------------------------------------------------------------ description

    def names(self) -> list[str]:
        return [item.name for item in self._items]

    @property
    def total_chars(self) -> int:
        return sum(end - start for _, start, end in self._spans)

    def kinds(self) -> Counter[str]:
        return Counter(item.kind for item in self._items)

    def __repr__(self) -> str:
        n = len(self)
        kinds = ", ".join(f"{kind} {count:,}" for kind, count in self.kinds().most_common())
        noun = "document" if n == 1 else "documents"
        return f"<Corpus: {n:,} {noun}" + (f" ({kinds})" if kinds else "") + (
            f", {self.total_chars:,} chars>")

    # ----------------------------------------------------------------- views and targets

    def _view(self, spans: Sequence[tuple[int, int, int]]) -> Corpus:
        """A sub-corpus of (doc_index, start, end) spans of the root corpus: a whole document
        stays that Document, part of one becomes an Excerpt."""
        root = self._root
        items: list[Item] = []
        checked: list[Span] = []
        for doc_index, start, end in spans:
            if not 0 <= doc_index < len(root.docs):
                raise IndexError(f"document index {doc_index} is outside 0..{len(root.docs) - 1}")
            length = root.ends[doc_index] - root.starts[doc_index]
            if not 0 <= start <= end <= length:
                raise ValueError(f"span {start}..{end} is outside {root.docs[doc_index].name!r}"
                                 f" (0..{length})")
            whole = start == 0 and end == length
            items.append(root.docs[doc_index] if whole else Excerpt(root, doc_index, start, end))
            checked.append((doc_index, start, end))
        return Corpus(root, items, checked)

    def spans_of(self, target: Any) -> list[Span]:
        """Spans of a target: None (everything), a Document, an Excerpt, an index or a name
        in this corpus, a Hit (its line), a Chunk (its sources), a Source, a Corpus, or a
        list of those. Every span is checked against the documents it names."""
        root = self._root
        spans = self._spans_of(target)
        for index, start, end in spans:
            if not (0 <= index < len(root.docs)
                    and 0 <= start <= end <= root.ends[index] - root.starts[index]):
                raise ValueError(f"that target points outside the corpus "
                                 f"(document {index}, {start}..{end})")
        return spans

    def _spans_of(self, target: Any) -> list[Span]:
        root = self._root
        if target is None:
            return list(self._spans)
        if isinstance(target, Corpus):
            if target._root is not root:
                raise ValueError("that corpus is not part of this one")
            return list(target._spans)
        if isinstance(target, Chunk):
            return [(s.doc_index, s.start, s.end) for s in target.sources]
        if isinstance(target, str):
            return [self._spans[self._lookup(target)]]
        if isinstance(target, bool):
            raise TypeError("a target cannot be a bool")
        if isinstance(target, int):
            self[target]  # raises a helpful IndexError
            return [self._spans[target]]
        if isinstance(target, Document):
            index = root.index_of(target)
            return [(index, 0, root.ends[index] - root.starts[index])]
        if isinstance(target, Excerpt):
            if target._root is not root:
                raise ValueError("that excerpt is not part of this corpus")
            return [(target.doc_index, target.start, target.end)]
        if isinstance(target, Hit):
            base, blob = root.starts[target.doc_index], root.blob
            end = blob.find("\n", base + target.start, root.ends[target.doc_index])
            start = blob.rfind("\n", base, base + target.start) + 1 or base
            end = root.ends[target.doc_index] if end < 0 else end
            return [(target.doc_index, start - base, end - base)]
        if isinstance(target, Source):
            return [(target.doc_index, target.start, target.end)]
        if isinstance(target, list | tuple | set | frozenset | range):
            return [span for item in target for span in self._spans_of(item)]
        raise TypeError(
            f"cannot use a {type(target).__name__} as a target: give None (the whole context), "
            "a document, its index or name, a Hit, a Chunk, or a list of those"
        )

    def _blob_span(self, span: Span) -> tuple[int, int]:
        base = self._root.starts[span[0]]
        return base + span[1], base + span[2]

    # ------------------------------------------------------------------- the text stream

    def _header(self, index: int) -> str:
        item = self._items[index]
        return f"=== {item.name} ({item.kind}) ===\n"

    def stream_length(self) -> int:
        return self._stream_offsets()[-1]

    def _stream_offsets(self) -> list[int]:
        """Start of each item in the presented stream (header, text, "\\n"), then the total."""
        if self._stream is None:
            offsets, total = [0], 0
            for i, (_, start, end) in enumerate(self._spans):
                total += len(self._header(i)) + end - start + 1
                offsets.append(total)
            self._stream = offsets
        return self._stream

    def stream_slice(self, start: int, stop: int) -> str:
        """stream[start:stop] of the whole corpus shown as `=== name (kind) ===` sections."""
        offsets, blob, parts = self._stream_offsets(), self._root.blob, []
        i = max(0, bisect_right(offsets, start) - 1)
        while i < len(self._spans) and offsets[i] < stop:
            header = self._header(i)
            lo, hi = self._blob_span(self._spans[i])
            section_start = offsets[i]
            a, b = max(start - section_start, 0), stop - section_start
            body_start = len(header)
            if a < body_start:
                parts.append(header[a:b])
            text_a, text_b = max(a - body_start, 0), min(b - body_start, hi - lo)
            if text_a < text_b:
                parts.append(blob[lo + text_a : lo + text_b])
            if b > body_start + hi - lo:
                parts.append("\n")
            i += 1
        return "".join(parts)


# ---------------------------------------------------------------------------- helpers


_TRACE_TEXT = 1000  # characters of a helper's argument kept in its trace node


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, int | bool):
        return value
    if isinstance(value, float):
        return value if isfinite(value) else repr(value)
    if isinstance(value, str):
        return value if len(value) <= _TRACE_TEXT else value[:_TRACE_TEXT] + "…"
    return repr(value)[:200]


def _describe(corpus: Corpus, target: Any) -> Any:
    """A target as a small JSON value for the trace: names, not objects."""
    if target is None or isinstance(target, str):
        return _jsonable(target)
    if isinstance(target, bool):
        return target
    if isinstance(target, int):
        return corpus[target].name if -len(corpus) <= target < len(corpus) else target
    if isinstance(target, Document | Excerpt):
        return target.name
    if isinstance(target, Hit | Source):
        return str(target).split(": ", 1)[0] if isinstance(target, Hit) else str(target)
    if isinstance(target, Chunk):
        return f"chunk of {len(target):,} chars from {_describe_sources(target.sources)}"
    if isinstance(target, Corpus):
        return "context" if target is corpus else repr(target)
    if isinstance(target, list | tuple | set | frozenset):
        items = list(target)
        described = [_describe(corpus, item) for item in items[:20]]
        if len(items) > 20:
            described.append(f"... ({len(items) - 20:,} more)")
        return described
    return _jsonable(target)


def _check_int(helper: str, name: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{helper}: {name} must be an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{helper}: {name} must be >= {minimum}, got {value}")
    return value


def _merged(spans: list[Span]) -> list[Span]:
    """Sorted, with overlapping spans of one document merged (so no line is reported twice)."""
    out: list[Span] = []
    for doc, start, end in sorted(spans):
        if out and out[-1][0] == doc and start < out[-1][2]:
            prev = out[-1]
            out[-1] = (doc, prev[1], max(prev[2], end))
        else:
            out.append((doc, start, end))
    return out


def _peek(corpus: Corpus, target: Any, start: int, length: int) -> str:
    _check_int("peek", "start", start)
    _check_int("peek", "length", length, 0)
    note = ""
    if length > PEEK_MAX:
        length = PEEK_MAX
        note = (f"\n[peek: length is capped at {PEEK_MAX:,} characters; peek again with a "
                "larger start for more]")
    root = corpus._root
    if isinstance(target, Chunk):
        text = str(target)
        begin = max(0, len(text) + start) if start < 0 else start
        return text[begin : begin + length] + note
    if isinstance(target, Hit):
        (span,) = corpus.spans_of(target)  # the hit's line
        base = root.starts[span[0]]
        begin = min(max(base, base + span[1] + start), root.ends[span[0]])
        return root.blob[begin : min(begin + length, root.ends[span[0]])] + note
    single = target is not None and not isinstance(target, list | tuple | set | frozenset
                                                   | range | Corpus)
    if single:
        (span,) = corpus.spans_of(target)
        lo, hi = corpus._blob_span(span)
        begin = max(lo, hi + start) if start < 0 else min(hi, lo + start)
        return root.blob[begin : min(begin + length, hi)] + note
    shown = corpus if target is None else (
        target if isinstance(target, Corpus) else corpus._view(corpus.spans_of(target)))
    total = shown.stream_length()
    begin = max(0, total + start) if start < 0 else start
    return shown.stream_slice(begin, begin + length) + note


def _grep(corpus: Corpus, pattern: Any, target: Any, ignore_case: bool,
          max_hits: int | None) -> Hits:
    regex = compile_pattern(pattern, bool(ignore_case))
    if max_hits is not None:
        _check_int("grep", "max_hits", max_hits, 1)
    limit = GREP_MAX_HITS + 1 if max_hits is None else max_hits
    root = corpus._root
    spans = _merged(corpus.spans_of(target))
    blob_spans = [corpus._blob_span(span) for span in spans]
    raw = root.search.scan(regex, blob_spans, limit)
    hits = Hits()
    if max_hits is None and len(raw) > GREP_MAX_HITS:
        del raw[GREP_MAX_HITS:]
        hits.truncated = True
    blob, docs, starts, locate = root.blob, root.docs, root.starts, root.locate
    rfind, append = blob.rfind, hits.append
    for k, s, e, line_end in raw:
        doc_index, lo = spans[k][0], blob_spans[k][0]
        base = starts[doc_index]
        line_start = rfind("\n", lo, s) + 1 or lo
        page, line = locate(doc_index, s - base)
        append(_new_hit(docs[doc_index].name, line, page, blob[line_start:line_end], s - base,
                        e - base, doc_index))
    return hits


def _pieces_chars(root: _Root, span: Span, size: int | None, pieces: int) -> list[Span]:
    doc, lo, hi = span
    base = root.starts[doc]
    return [(doc, a - base, b - base)
            for a, b in cut_chars(root.blob, base + lo, base + hi, size, pieces)]


def _pieces_lines(root: _Root, span: Span, size: int | None, pieces: int) -> list[Span]:
    doc, lo, hi = span
    base = root.starts[doc]
    return [(doc, a - base, b - base)
            for a, b in cut_lines(root.search.lines, base + lo, base + hi, size, pieces)]


def _pieces_pages(root: _Root, span: Span, size: int | None, pieces: int) -> list[Span]:
    doc, lo, hi = span
    page_starts = root.docs[doc].page_starts
    if not page_starts:
        raise ValueError(f"partition: {root.docs[doc].name!r} has no pages (only PDFs have "
                         "pages); use by='lines' or by='chars'")
    bounds = [0, *page_starts[1:], root.ends[doc] - root.starts[doc]]
    first = max(1, bisect_right(page_starts, lo))
    last = max(1, bisect_right(page_starts, hi - 1))
    count = last - first + 1
    per = size if size is not None else max(1, ceil(count / pieces))
    return [(doc, max(lo, bounds[p - 1]), min(hi, bounds[min(p + per - 1, last)]))
            for p in range(first, last + 1, per)]


def _partition(corpus: Corpus, target: Any, parts: int | None, size: int | None,
               by: str) -> list[Chunk]:
    if by not in BY:
        close = difflib.get_close_matches(str(by), BY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"partition: by={by!r} is not one of "
                         f"{', '.join(map(repr, BY))}{hint}")
    if parts is not None and size is not None:
        raise ValueError("partition: give parts (how many chunks) or size (units per chunk), "
                         "not both")
    if parts is not None:
        _check_int("partition", "parts", parts, 1)
    if size is not None:
        _check_int("partition", "size", size, 1)
    elif parts is None:
        size = _DEFAULT_SIZE[by]
    root = corpus._root
    spans = [span for span in corpus.spans_of(target) if span[2] > span[1] or by in (
        "messages", "documents")]
    if by in ("messages", "documents"):
        if by == "messages":
            spans = [span for span in spans if root.docs[span[0]].kind == "email"]
            if not spans:
                raise ValueError("partition: by='messages' needs email messages, and the target "
                                 "holds none; use by='documents'")
        per = size if size is not None else ceil(len(spans) / cast(int, parts))
        _check_count(ceil(len(spans) / per))
        return [_joined(root, spans[i : i + per]) for i in range(0, len(spans), per)]
    cut = {"chars": _pieces_chars, "lines": _pieces_lines, "pages": _pieces_pages}[by]
    total = sum(hi - lo for _, lo, hi in spans)
    if by == "chars" and size is not None:
        _check_count(sum(ceil((hi - lo) / size) for _, lo, hi in spans))
    pieces: list[Span] = []
    for span in spans:
        share = 1 if parts is None or total == 0 else max(
            1, round(parts * (span[2] - span[1]) / total))
        pieces.extend(cut(root, span, size, share))
        _check_count(len(pieces))
    blob = root.blob
    return [Chunk(blob[root.starts[d] + lo : root.starts[d] + hi], (root.source(d, lo, hi),))
            for d, lo, hi in pieces]


def _check_count(count: int) -> None:
    if count > MAX_CHUNKS:
        raise ValueError(f"partition: that would make {count:,} chunks (at most "
                         f"{MAX_CHUNKS:,}); use a larger size or fewer parts")


def _joined(root: _Root, spans: list[Span]) -> Chunk:
    texts, sources = [], []
    for doc, lo, hi in spans:
        document, base = root.docs[doc], root.starts[doc]
        whole = lo == 0 and hi == root.ends[doc] - base
        name = document.name if whole else f"{document.name}[{lo}:{hi}]"
        texts.append(f"=== {name} ({document.kind}) ===\n{root.blob[base + lo : base + hi]}")
        sources.append(root.source(doc, lo, hi))
    return Chunk("\n".join(texts), sources)


def make_helpers(corpus: Corpus, record: Recorder | None = None) -> dict[str, Callable[..., Any]]:
    """The helper functions for the model's namespace: {"peek", "grep", "partition"}."""

    def recorded(kind: str, inputs: dict[str, Any], run: Callable[[], Any],
                 summarize: Callable[[Any], Any]) -> Any:
        started = time.time()
        try:
            result = run()
        except Exception as exc:
            if record is not None:
                record(kind, inputs, {"error": f"{type(exc).__name__}: {exc}"}, started,
                       time.time())
            raise
        if record is not None:
            record(kind, inputs, summarize(result), started, time.time())
        return result

    def peek(target: Any = None, start: int = 0, length: int = 2000) -> str:
        """Text of `target` from `start`, at most `length` characters (capped at 100,000).

        target: None (the whole context, each document under a `=== name (kind) ===` line),
        a document, its index or name, a Hit (start counts from the start of the hit's line,
        so peek(hit, -500, 1000) shows the text around it), a Chunk, or a list of those.
        A negative start counts from the end (except for a Hit).
        """
        inputs = {"target": _describe(corpus, target), "start": _jsonable(start),
                  "length": _jsonable(length)}
        return cast(str, recorded("peek", inputs, lambda: _peek(corpus, target, start, length),
                                  lambda text: text[:2000]))

    def grep(pattern: Any, target: Any = None, *, ignore_case: bool = False,
             max_hits: int | None = None) -> Hits:
        """Lines matching a Python regular expression (`re` syntax), in corpus order.

        One Hit per matching line, at its first match: .doc (document name), .line (1-based;
        per page in PDFs), .page (1-based or None), .text (the whole line), .start/.end
        (offsets of the match in the document's text), .doc_index. `^` and `$` match at line
        starts and ends (re.MULTILINE); a match never runs from one document into the next.
        target: None (everything), a document, its index or name, a Hit (its line), a Chunk,
        or a list of those. max_hits stops early; without it at most 100,000 hits are
        returned and the list's `.truncated` is True if there were more.
        """
        pattern_text = getattr(pattern, "pattern", pattern)
        inputs = {"pattern": _jsonable(pattern_text), "target": _describe(corpus, target),
                  "ignore_case": _jsonable(ignore_case), "max_hits": _jsonable(max_hits)}

        def summary(hits: Hits) -> dict[str, Any]:
            return {"hits": len(hits), "documents": len({h.doc_index for h in hits}),
                    "first": [str(h) for h in hits[:5]], "truncated": hits.truncated}

        return cast(Hits, recorded(
            "grep", inputs, lambda: _grep(corpus, pattern, target, ignore_case, max_hits),
            summary))

    def partition(target: Any = None, *, parts: int | None = None, size: int | None = None,
                  by: str = "chars") -> list[Chunk]:
        """Split `target` (None = everything) into Chunks: strs that carry `.sources`.

        by: "chars" (size = characters per chunk, default 100,000; cut at a line break in
        the chunk's last 10% when there is one), "lines" (default 1,000 per chunk), "pages"
        (PDFs; default 1), "messages" (email documents; default 1 per chunk) or "documents"
        (default 1). parts = how many roughly equal chunks instead of a size. chars, lines and
        pages chunks never mix documents (each is split on its own, so you may get more chunks
        than parts); messages and documents chunks join whole documents, each under a
        `=== name (kind) ===` line. For many small documents use by="documents".
        """
        inputs = {"target": _describe(corpus, target), "parts": _jsonable(parts),
                  "size": _jsonable(size), "by": _jsonable(by)}
        return cast(list[Chunk], recorded(
            "partition", inputs, lambda: _partition(corpus, target, parts, size, by),
            lambda chunks: {"chunks": len(chunks), "sizes": [len(c) for c in chunks[:10]],
                            "chars": sum(map(len, chunks))}))

    return {"peek": peek, "grep": grep, "partition": partition}
