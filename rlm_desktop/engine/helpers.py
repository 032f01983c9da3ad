"""The helpers the root model calls (`peek`, `grep`, `partition`) over a `Corpus`.

`make_helpers(corpus, record)` returns them as plain functions (closures) for the REPL
worker's namespace; each call is recorded as one trace node through `record`. The types
they return (Hit, Chunk, Source, Excerpt) and the corpus itself are in `replapi`.
"""

from __future__ import annotations

import difflib
import time
from bisect import bisect_right
from collections.abc import Callable
from math import ceil, isfinite
from typing import Any, cast

from rlm_desktop.corpus.document import Document
from rlm_desktop.engine.grep import compile_pattern, cut_chars, cut_lines
from rlm_desktop.engine.replapi import (
    _DEFAULT_SIZE,
    BY,
    GREP_MAX_HITS,
    MAX_CHUNKS,
    PEEK_MAX,
    Chunk,
    Corpus,
    Excerpt,
    Hit,
    Hits,
    Recorder,
    Source,
    Span,
    _describe_sources,
    _new_hit,
    _Root,
)

_TRACE_TEXT = 1000  # characters of a helper's argument kept in its trace node
TRACE_SAMPLE = 20   # grep hits / partition chunks whose location a trace node keeps
_SAMPLE_TEXT = 300  # characters of a sampled line


def _located(doc: str, page: int | None, line: int, text: str | None = None
             ) -> dict[str, Any]:
    """A place in the corpus as the trace records it (the GUI opens it in the viewer)."""
    where: dict[str, Any] = {"doc": doc, "page": page, "line": line}
    if text is not None:
        where["text"] = text[:_SAMPLE_TEXT]
    return where


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
                    "first": [str(h) for h in hits[:5]], "truncated": hits.truncated,
                    "sample": [_located(h.doc, h.page, h.line, h.text)
                               for h in hits[:TRACE_SAMPLE]]}

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
                            "chars": sum(map(len, chunks)),
                            "sources": [dict(_located(s.doc, s.page, s.line), chunk=n)
                                        for n, c in enumerate(chunks[:TRACE_SAMPLE])
                                        for s in c.sources[:3]]}))

    return {"peek": peek, "grep": grep, "partition": partition}
