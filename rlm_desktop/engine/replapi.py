"""What the root model programs against inside the REPL: `context`, `peek`, `grep`, `partition`.

Runs inside the sandboxed worker (pure Python, Qt-free, no I/O). The worker receives every
document text back to back in one string (the *blob*) and builds a `Corpus` over it with
`Corpus._from_blob`; documents are `rlm_desktop.corpus.document.Document` objects whose text is
sliced from the blob on first use. `rlm_desktop.engine.helpers.make_helpers` returns the three
helper functions the worker puts in the model's namespace.

Provenance is always relative to the *original* documents: a `Hit`, a `Chunk` (through its
`.sources`) or an `Excerpt` of a sub-corpus names the document, offsets in its text, and the
page and line as `Document.location` counts them (lines per page in a PDF). Blueprint §4 is the
contract; docs/repl-api.md describes it for users.
"""

from __future__ import annotations

import difflib
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast, overload

from rlm_desktop.corpus.document import Document
from rlm_desktop.engine.grep import BlobSearch

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
