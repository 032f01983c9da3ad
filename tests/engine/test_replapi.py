"""The REPL helpers: Corpus, peek, grep, partition, and the grep engine's fast paths."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Sequence
from dataclasses import FrozenInstanceError
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlm_desktop.corpus.document import Document
from rlm_desktop.engine import helpers as helpers_module
from rlm_desktop.engine.grep import (
    BlobSearch,
    LineIndex,
    _LiteralMatcher,
    _Needle,
    compile_pattern,
    literal_alternatives,
)
from rlm_desktop.engine.helpers import make_helpers
from rlm_desktop.engine.replapi import Chunk, Corpus, Excerpt, Hit, Source

# The shared test corpus (tests/conftest.py's `corpus` fixture, shadowed here by a Corpus).
SHARED_CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
PDF_PAGES = ["Invoice 17\nTotal: 400 EUR\n", "Terms\nPayment due in 30 days\nLate fee ERROR\n",
             "Signed\nJ. Smith"]


def corpus_of(docs: Sequence[tuple[str, str, str]],
              page_starts: dict[int, list[int]] | None = None) -> Corpus:
    """A corpus from (name, kind, text) triples, laid out exactly as the worker lays it."""
    entries: list[dict[str, Any]] = []
    pos = 0
    for i, (name, kind, text) in enumerate(docs):
        entries.append({"id": f"id{i}", "name": name, "path": f"/data/{name}", "kind": kind,
                        "meta": {"n": i}, "start": pos, "end": pos + len(text),
                        "page_starts": (page_starts or {}).get(i)})
        pos += len(text) + 1
    return Corpus._from_blob("\n".join(text for _, _, text in docs), entries)


@pytest.fixture
def corpus() -> Corpus:
    pdf = "".join(PDF_PAGES)
    starts = [0, len(PDF_PAGES[0]), len(PDF_PAGES[0]) + len(PDF_PAGES[1])]
    return corpus_of([
        ("app.log", "log", "2024-01-01 INFO start\n2024-01-01 ERROR disk full\n"
                           "2024-01-02 error again ERROR twice\n2024-01-03 INFO stop"),
        ("contract.pdf", "pdf", pdf),
        ("m1.eml", "email", "From: a@x\nSubject: invoice\n\nPlease pay the ERROR fee.\n"),
        ("m2.eml", "email", "From: b@x\nSubject: re: invoice\n\nPaid.\n"),
        ("empty.txt", "text", ""),
    ], {1: starts})


@pytest.fixture
def helpers(corpus: Corpus) -> dict[str, Any]:
    return make_helpers(corpus)


def reference_grep(corpus: Corpus, pattern: str, ignore_case: bool,
                   target: Any = None) -> list[tuple[int, int, int, int, int | None, str]]:
    """Straightforward grep: each item's own text, line by line through re, one hit per line."""
    flags = re.MULTILINE | (re.IGNORECASE if ignore_case else 0)
    regex = re.compile(pattern, flags)
    merged: list[list[int]] = []  # overlapping parts of a document are searched as one
    for i, a, b in sorted(corpus.spans_of(target)):
        if merged and merged[-1][0] == i and a < merged[-1][2]:
            merged[-1][2] = max(merged[-1][2], b)
        else:
            merged.append([i, a, b])
    out = []
    for item in corpus._view([(i, a, b) for i, a, b in merged]):
        text, base = item.text, offset_of(item)
        document = item.document if isinstance(item, Excerpt) else item
        pos = 0
        while True:
            m = regex.search(text, pos)
            if m is None or (m.start() == len(text) and (not text or text.endswith("\n"))):
                break
            line_start = text.rfind("\n", 0, m.start()) + 1
            line_end = text.find("\n", m.start())
            line_end = len(text) if line_end < 0 else line_end
            loc = document.location(base + m.start())
            out.append((doc_index(corpus, item), base + m.start(), base + m.end(), loc.line,
                        loc.page, text[line_start:line_end]))
            if line_end == len(text):
                break
            pos = line_end + 1
    return out


def doc_index(corpus: Corpus, item: Any) -> int:
    return item.doc_index if isinstance(item, Excerpt) else corpus._root.index_of(item)


def offset_of(item: Any) -> int:
    return item.start if isinstance(item, Excerpt) else 0


def as_tuples(hits: Sequence[Hit]) -> list[tuple[int, int, int, int, int | None, str]]:
    return [(h.doc_index, h.start, h.end, h.line, h.page, h.text) for h in hits]


# ------------------------------------------------------------------------------ Corpus


def test_corpus_sequence_protocol(corpus: Corpus) -> None:
    assert len(corpus) == 5
    assert corpus[0].name == "app.log"
    assert corpus[-1].name == "empty.txt"
    assert corpus["m1.eml"] is corpus[2]
    assert corpus["id3"] is corpus[3]  # an id works too
    assert "m2.eml" in corpus and "nope" not in corpus
    assert corpus[0] in corpus
    assert [d.name for d in corpus] == corpus.names()
    assert corpus.kinds() == {"log": 1, "pdf": 1, "email": 2, "text": 1}
    assert corpus.total_chars == sum(len(d.text) for d in corpus)
    assert repr(corpus) == (f"<Corpus: 5 documents (email 2, log 1, pdf 1, text 1), "
                            f"{corpus.total_chars:,} chars>")
    assert isinstance(corpus[1:3], Corpus) and corpus[1:3].names() == ["contract.pdf", "m1.eml"]


def test_documents_load_text_lazily_from_the_blob(corpus: Corpus) -> None:
    doc = corpus[1]
    assert isinstance(doc, Document)
    assert doc._text is None
    assert doc.text == "".join(PDF_PAGES)
    assert doc.pages == 3 and doc.meta == {"n": 1} and doc.path == "/data/contract.pdf"


def test_unknown_name_suggests_close_names(corpus: Corpus) -> None:
    with pytest.raises(KeyError, match=r"no document named 'm1.em'.*did you mean 'm1.eml'"):
        corpus["m1.em"]
    with pytest.raises(KeyError, match=r"context.names\(\)"):
        corpus["zzzzzz"]
    with pytest.raises(IndexError, match="context has 5 documents"):
        corpus[9]
    with pytest.raises(TypeError, match="index, a slice or a document name"):
        corpus[1.5]  # type: ignore[call-overload]


def test_from_blob_is_fast_for_10000_entries() -> None:
    texts = [f"line {i}\nmore {i}" for i in range(10_000)]
    blob = "\n".join(texts)
    entries, pos = [], 0
    for i, text in enumerate(texts):
        entries.append({"id": str(i), "name": f"d{i}.txt", "path": f"/d{i}.txt", "kind": "text",
                        "meta": {}, "start": pos, "end": pos + len(text), "page_starts": None})
        pos += len(text) + 1
    best = min(_timed(lambda: Corpus._from_blob(blob, entries)) for _ in range(3))
    assert best < 0.1  # the contract is 50 ms; leave room for a loaded CI machine
    assert Corpus._from_blob(blob, entries)[9_999].text == texts[-1]


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def test_from_blob_rejects_spans_outside_the_blob() -> None:
    with pytest.raises(ValueError, match="outside the blob"):
        Corpus._from_blob("abc", [{"name": "x", "start": 0, "end": 9}])


# -------------------------------------------------------------------------------- grep


def test_hits_carry_document_line_page_and_offsets(corpus: Corpus,
                                                   helpers: dict[str, Any]) -> None:
    hits = helpers["grep"]("ERROR")
    assert [(h.doc, h.line, h.page) for h in hits] == [
        ("app.log", 2, None), ("app.log", 3, None), ("contract.pdf", 3, 2), ("m1.eml", 4, None)]
    for hit in hits:
        doc = corpus[hit.doc_index]
        assert doc.text[hit.start : hit.end] == "ERROR"
        loc = doc.location(hit.start)
        assert (loc.page, loc.line) == (hit.page, hit.line)
        start, end = doc.index.line_span(hit.start)
        assert hit.text == doc.text[start:end]
    # several matches on a line: one hit, at the first
    assert hits[1].text == "2024-01-02 error again ERROR twice"
    assert hits[1].start == corpus[0].text.index("ERROR twice")
    assert str(hits[0]) == "app.log:2: 2024-01-01 ERROR disk full"
    assert str(hits[2]) == "contract.pdf p.2:3: Late fee ERROR"
    assert repr(hits[2]).startswith("<Hit contract.pdf p.2:3")
    assert hits[2].sources == (Source("contract.pdf", 1, hits[2].start, hits[2].end, 2, 3),)


def test_hit_is_a_frozen_hashable_value(helpers: dict[str, Any]) -> None:
    hit = helpers["grep"]("disk")[0]
    assert isinstance(hit, Hit) and type(hit) is Hit
    with pytest.raises(FrozenInstanceError):
        hit.line = 3  # type: ignore[misc]
    same = Hit(hit.doc, hit.line, hit.page, hit.text, hit.start, hit.end, hit.doc_index)
    assert same == hit and hash(same) == hash(hit) and len({hit, same}) == 1
    assert hit.to_json() == {"doc": "app.log", "doc_index": 0, "line": 2, "page": None,
                             "text": "2024-01-01 ERROR disk full", "start": hit.start,
                             "end": hit.end}
    long = Hit("a", 1, None, "x" * 500, 0, 1, 0)
    assert len(str(long)) < 220 and str(long).endswith("…")


def test_matches_never_span_documents() -> None:
    c = corpus_of([("a", "text", "x foo"), ("b", "text", "bar y"), ("c", "text", "foo\nbar")])
    grep = make_helpers(c)["grep"]
    assert [(h.doc, h.line) for h in grep(r"foo\nbar")] == [("c", 1)]
    assert [h.doc for h in grep(r"foo\s+bar")] == ["c"]
    assert [h.doc for h in grep(r"(?s)foo.bar")] == ["c"]
    assert [(h.doc, h.line) for h in grep("foo$")] == [("a", 1), ("c", 1)]
    assert [(h.doc, h.line) for h in grep("^bar")] == [("b", 1), ("c", 2)]
    assert [h.doc for h in grep(r"\Abar")] == ["b"]
    assert [h.doc for h in grep(r"foo\Z")] == ["a"]
    assert [h.doc for h in grep(r"(?<=\n)bar")] == ["c"]


def test_ignore_case_max_hits_and_one_hit_per_line(helpers: dict[str, Any]) -> None:
    grep = helpers["grep"]
    assert len(grep("error")) == 1
    assert [h.line for h in grep("error", ignore_case=True)][:2] == [2, 3]
    assert len(grep("error", ignore_case=True)) == 4
    assert len(grep("error", ignore_case=True, max_hits=2)) == 2
    assert len(grep("INFO|ERROR|error")) == 6
    assert [h.line for h in grep("INFO", "app.log")] == [1, 4]
    assert len(grep("", "app.log")) == 4  # the empty pattern matches every line
    assert len(grep("^", "empty.txt")) == 0
    with pytest.raises(ValueError, match="max_hits must be >= 1"):
        grep("x", max_hits=0)


def test_truncation_to_the_default_cap(monkeypatch: pytest.MonkeyPatch,
                                       helpers: dict[str, Any]) -> None:
    monkeypatch.setattr(helpers_module, "GREP_MAX_HITS", 3)
    hits = helpers["grep"]("e")
    assert len(hits) == 3 and hits.truncated
    assert not helpers["grep"]("e", max_hits=3).truncated
    assert not helpers["grep"]("ERROR disk").truncated


def test_targets(corpus: Corpus, helpers: dict[str, Any]) -> None:
    grep = helpers["grep"]
    assert {h.doc for h in grep("ERROR", "m1.eml")} == {"m1.eml"}
    assert {h.doc for h in grep("ERROR", 1)} == {"contract.pdf"}
    assert {h.doc for h in grep("ERROR", corpus[0])} == {"app.log"}
    assert {h.doc for h in grep("ERROR", ["m1.eml", 0])} == {"app.log", "m1.eml"}
    # the same document twice: still one hit per line
    assert len(grep("ERROR", [0, "app.log", corpus[0]])) == 2
    # a Hit as a target is its line: grep within earlier results
    assert [h.line for h in grep("twice", grep("ERROR"))] == [3]
    # a Chunk as a target is its sources
    chunk = helpers["partition"]("app.log", by="lines", size=2)[1]
    assert [h.line for h in grep("INFO", chunk)] == [4]
    with pytest.raises(TypeError, match="cannot use a dict as a target"):
        grep("x", {"a": 1})


def test_grep_errors_speak_to_the_model(helpers: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as info:
        helpers["grep"]("(")
    assert str(info.value) == ("grep: invalid regular expression '(': missing ), "
                               "unterminated subpattern at position 0")
    with pytest.raises(TypeError, match="pattern must be a str"):
        helpers["grep"](b"x")
    assert len(helpers["grep"](re.compile("error", re.I))) == 4  # a compiled pattern works


# --------------------------------------------------------------- grep == reference (random)

_ALPHABET = st.sampled_from(list("aab  \nAB.Kı\u0130\u017fé\u212a"))
_TEMPLATES = ["a+", "^a", "b$", "a\\nb", "\\s+", "a|", "(?s)a.b", "x*", "$", "^", "(?<=a)b",
              "a(?=\\n)", "\\Ab", "b\\Z", "[ab]{2}", "\\bab\\b", "(?i)ab", "a\\s*$", "\\n"]


@st.composite
def _corpora(draw: st.DrawFn) -> Corpus:
    texts = draw(st.lists(st.text(_ALPHABET, max_size=40), min_size=1, max_size=6))
    docs = [(f"d{i}", draw(st.sampled_from(["log", "email", "pdf"])), t)
            for i, t in enumerate(texts)]
    pages: dict[int, list[int]] = {}
    for i, (_, kind, text) in enumerate(docs):
        if kind == "pdf" and text:
            cuts = sorted(set(draw(st.lists(st.integers(1, len(text)), max_size=3))))
            pages[i] = [0, *cuts]
    return corpus_of(docs, pages)


@st.composite
def _patterns(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["literal", "alternation", "escaped", "template"]))
    words = st.text(st.sampled_from(list("abAB .Kıſé")), min_size=1, max_size=3)
    if kind == "literal":
        return draw(words.filter(lambda w: re.escape(w) == w or "." not in w))
    if kind == "alternation":
        return "|".join(re.escape(w) for w in draw(st.lists(words, min_size=2, max_size=3)))
    if kind == "escaped":
        return re.escape(draw(words))
    return draw(st.sampled_from(_TEMPLATES))


@st.composite
def _targets(draw: st.DrawFn, corpus: Corpus) -> Any:
    choice = draw(st.sampled_from(["all", "some", "excerpts"]))
    if choice == "all":
        return None
    if choice == "some":
        return draw(st.lists(st.integers(0, len(corpus) - 1), min_size=1, max_size=4))
    spans = []
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(corpus) - 1))
        length = len(corpus[i].text)
        a = draw(st.integers(0, length))
        spans.append((i, a, draw(st.integers(a, length))))
    return corpus._view(spans)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_grep_equals_the_reference(data: st.DataObject) -> None:
    corpus = data.draw(_corpora())
    pattern = data.draw(_patterns())
    ignore_case = data.draw(st.booleans())
    target = data.draw(_targets(corpus))
    hits = make_helpers(corpus)["grep"](pattern, target, ignore_case=ignore_case)
    expected = reference_grep(corpus, pattern, ignore_case, target)
    assert as_tuples(hits) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(st.sampled_from(list("ab\n")), max_size=30), min_size=1, max_size=5),
       st.data())
def test_grep_in_a_view_of_adjacent_excerpts(texts: list[str], data: st.DataObject) -> None:
    """Excerpts cut anywhere (mid-line, back to back) are each searched as their own text."""
    corpus = corpus_of([(f"d{i}", "text", t) for i, t in enumerate(texts)])
    spans: list[tuple[int, int, int]] = []
    for i, text in enumerate(texts):
        cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=3)))
        bounds = [0, *cuts, len(text)]
        spans.extend((i, a, b) for a, b in pairwise(bounds))
    view = corpus._view(spans)
    pattern = data.draw(st.sampled_from(["a", "ab|b", "^a", "b$", "$", "a\\nb", "x*", "a*"]))
    hits = make_helpers(view)["grep"](pattern)
    expected = reference_grep(corpus, pattern, False, view)
    assert as_tuples(hits) == expected


def test_fast_paths_on_a_large_blob_equal_plain_re() -> None:
    """Above 1 MiB the literal search may go through a rare character (memchr) and give up on
    it when it is common after all; the results stay those of re."""
    rng = random.Random(7)
    words = ["alpha", "beta", "Gamma", "delta", "zq", "QUUX", "kelvin", "x7"]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 8))) for _ in range(60_000)]
    lines[-5_000:] = ["zq " * 20] * 5_000  # "z" and "q" are rare in the sample, common here
    for i in range(0, 55_000, 3_001):
        lines[i] += " Jx-4711"  # "J" is rare
    docs = [(f"d{i}.log", "log", "\n".join(lines[i : i + 997])) for i in range(0, 60_000, 997)]
    corpus = corpus_of(docs)
    search = corpus._root.search
    assert len(search.blob) > 1 << 20
    assert search._rare_char(search.blob, "Jx-4711") in set("J-41")  # memchr path
    grep = make_helpers(corpus)["grep"]
    for pattern, ignore_case in [("zq", False), ("QUUX", False), ("quux", True),
                                 ("x7 zq|kelvin Gamma", False), ("zq|gamma|QUUX", True),
                                 ("Jx-4711", False), ("jx-4711|zz", True),
                                 ("delta alpha", False), ("nothing here", True)]:
        hits = grep(pattern, ignore_case=ignore_case)
        assert as_tuples(hits) == reference_grep(corpus, pattern, ignore_case), pattern


def test_needle_gives_up_on_a_common_rare_character() -> None:
    text = "ab" * 100_000 + "abc"
    needle = _Needle("abc", "a")
    assert needle.find(text, 0, len(text)) == len(text) - 3
    assert needle.rare is None  # switched to plain str.find
    matcher = _LiteralMatcher([_Needle("ab", None), _Needle("abc", None)], "xxabcab")
    assert matcher.search(0, 7, False) == (2, 4)  # at one position the first alternative wins


def test_literal_detection() -> None:
    assert literal_alternatives("Failed password") == ["Failed password"]
    assert literal_alternatives(re.escape("a.b (c) [d]")) == ["a.b (c) [d]"]
    assert literal_alternatives("foo|bar|baz") == ["foo", "bar", "baz"]
    assert literal_alternatives("(?:foo|bar)") == ["foo", "bar"]
    assert literal_alternatives("(foo|bar)") == ["foo", "bar"]
    for regex in ["a.b", "a|", "\\d+", "(?i)foo", "a\\nb", "(a)|(b)", "", "x{2}", "(?=a)"]:
        assert literal_alternatives(regex) is None, regex


def test_case_folding_matches_re_ignorecase() -> None:
    text = "Kelvin \u212a ı İ ſ STRASSE Σίσυφος é\n" * 3
    search = BlobSearch(text)
    folded = search.folded()
    assert folded is not None and len(folded) == len(text)
    for pattern in ["k", "i", "s", "kelvin", "strasse"]:
        regex = compile_pattern(pattern, True)
        expected = [m.start() for m in regex.finditer(text)]
        assert [m.start() for m in re.finditer(re.escape(pattern), folded)] == expected


@given(st.text(st.sampled_from(list("ab\n")), max_size=300), st.data())
def test_line_index(text: str, data: st.DataObject) -> None:
    index = LineIndex(text)
    for pos in sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=5))):
        assert index.lines_before(pos) == text.count("\n", 0, pos)
    n = data.draw(st.integers(0, text.count("\n") + 2))
    expected = len(text) if n > text.count("\n") else (
        0 if n == 0 else [i for i, c in enumerate(text) if c == "\n"][n - 1] + 1)
    assert index.line_start(n) == expected


def test_line_index_on_a_large_text_uses_checkpoints() -> None:
    text = "".join(f"{'x' * (i % 50)}\n" for i in range(100_000))
    index = LineIndex(text)
    for wanted in [0, 5, 70_000, 1_000_000, len(text) - 1, len(text), 33, 2_000_000]:
        pos = min(wanted, len(text))
        assert index.lines_before(pos) == text.count("\n", 0, pos)
    assert index.line_start(50_000) == text.index("\n", index.line_start(49_999)) + 1


def test_real_log_literal_count_equals_a_line_by_line_count() -> None:
    path = SHARED_CORPUS / "logs" / "OpenSSH_2k.log"
    if not path.is_file():
        pytest.fail(f"the shared corpus is missing at {SHARED_CORPUS}")
    text = path.read_text()
    lines = text.split("\n")
    c = corpus_of([("OpenSSH_2k.log", "log", text), ("again.log", "log", text[:5000])])
    grep = make_helpers(c)["grep"]
    for literal in ["Failed password", "Invalid user", "pam_unix(sshd:auth)", "preauth]"]:
        hits = grep(re.escape(literal), "OpenSSH_2k.log")
        assert len(hits) == sum(1 for line in lines if literal in line) > 0
        assert all(h.text == lines[h.line - 1] for h in hits)
    hits = grep("failed|invalid", "OpenSSH_2k.log", ignore_case=True)
    assert len(hits) == sum(1 for line in lines if re.search("failed|invalid", line, re.I))


# --------------------------------------------------------------------------- partition


def test_partition_chars_cuts_at_line_breaks_and_never_mixes_documents() -> None:
    lines = [f"line {i:04d} " + "x" * (i % 17) for i in range(2_000)]
    text = "\n".join(lines)
    c = corpus_of([("big.log", "log", text), ("small.log", "log", "tiny")])
    chunks = make_helpers(c)["partition"](size=1_000)
    assert [ch.sources[0].doc for ch in chunks][-1] == "small.log"
    assert "".join(ch for ch in chunks if ch.sources[0].doc == "big.log") == text
    for chunk in chunks[:-2]:
        assert 900 <= len(chunk) <= 1_000 and chunk.endswith("\n")
    for chunk in chunks:
        (source,) = chunk.sources
        doc = c[source.doc]
        assert doc.text[source.start : source.end] == chunk
        loc = doc.location(source.start)
        assert (loc.page, loc.line) == (source.page, source.line)
    by_parts = make_helpers(c)["partition"]("big.log", parts=4)
    assert len(by_parts) == 4 and "".join(by_parts) == text
    assert max(map(len, by_parts)) - min(map(len, by_parts)) < len(text) // 10


def test_partition_lines(corpus: Corpus, helpers: dict[str, Any]) -> None:
    partition = helpers["partition"]
    chunks = partition("app.log", by="lines", size=3)
    assert [str(ch) for ch in chunks] == [
        "2024-01-01 INFO start\n2024-01-01 ERROR disk full\n2024-01-02 error again ERROR twice\n",
        "2024-01-03 INFO stop"]
    assert [(s.line, s.start) for ch in chunks for s in ch.sources] == [
        (1, 0), (4, corpus[0].text.index("2024-01-03"))]
    assert len(partition("app.log", by="lines", parts=2)) == 2
    everything = partition(by="lines")  # default 1,000 lines: one chunk per document
    assert len(everything) == 4  # the empty document has no lines
    big = corpus_of([("n.txt", "text", "\n".join(map(str, range(10_000))))])
    chunks = make_helpers(big)["partition"](by="lines")
    assert len(chunks) == 10 and all(ch.count("\n") == 1_000 for ch in chunks[:-1])
    assert [ch.sources[0].line for ch in chunks] == list(range(1, 10_001, 1_000))


def test_partition_pages(corpus: Corpus, helpers: dict[str, Any]) -> None:
    chunks = helpers["partition"]("contract.pdf", by="pages")
    assert [str(ch) for ch in chunks] == PDF_PAGES
    assert [(s.page, s.line) for ch in chunks for s in ch.sources] == [(1, 1), (2, 1), (3, 1)]
    two = helpers["partition"]("contract.pdf", by="pages", size=2)
    assert [str(ch) for ch in two] == [PDF_PAGES[0] + PDF_PAGES[1], PDF_PAGES[2]]
    assert len(helpers["partition"]("contract.pdf", by="pages", parts=2)) == 2
    with pytest.raises(ValueError, match=r"'app.log' has no pages.*by='lines'"):
        helpers["partition"]("app.log", by="pages")


def test_partition_messages_and_documents(corpus: Corpus, helpers: dict[str, Any]) -> None:
    partition = helpers["partition"]
    messages = partition(by="messages")
    assert len(messages) == 2
    assert messages[0].startswith("=== m1.eml (email) ===\nFrom: a@x")
    assert [s.doc for s in messages[0].sources] == ["m1.eml"]
    both = partition(by="messages", parts=1)
    assert len(both) == 1 and [s.doc for s in both[0].sources] == ["m1.eml", "m2.eml"]
    assert "=== m2.eml (email) ===\nFrom: b@x" in both[0]
    docs = partition(by="documents", size=2)
    assert [len(ch.sources) for ch in docs] == [2, 2, 1]
    assert len(partition(by="documents", parts=2)) == 2
    with pytest.raises(ValueError, match="needs email messages"):
        partition("app.log", by="messages")


def test_partition_argument_errors(helpers: dict[str, Any]) -> None:
    partition = helpers["partition"]
    with pytest.raises(ValueError, match=r"by='line' is not one of .*did you mean 'lines'"):
        partition(by="line")
    with pytest.raises(ValueError, match="not both"):
        partition(parts=2, size=10)
    with pytest.raises(ValueError, match="parts must be >= 1"):
        partition(parts=0)
    with pytest.raises(TypeError, match="size must be an int"):
        partition(size=2.5)
    with pytest.raises(ValueError, match="at most 100,000"):
        make_helpers(corpus_of([("a", "text", "x" * 200_001)]))["partition"](size=1)


def test_chunks_are_strings_with_sources(helpers: dict[str, Any]) -> None:
    chunk = helpers["partition"]("m1.eml")[0]
    assert isinstance(chunk, str) and isinstance(chunk, Chunk)
    assert type(chunk.upper()) is str and type(chunk[2:]) is str and type(chunk + "x") is str
    assert chunk == "From: a@x\nSubject: invoice\n\nPlease pay the ERROR fee.\n"
    assert repr(chunk).startswith("<Chunk 54 chars from m1.eml:1: 'From: a@x")


# ----------------------------------------------------------------------- views, excerpts


def test_views_keep_original_provenance(corpus: Corpus) -> None:
    pdf = corpus[1].text
    start = pdf.index("Payment")
    view = corpus._view([(1, start, len(pdf)), (2, 0, len(corpus[2].text))])
    excerpt, message = view[0], view[1]
    assert isinstance(excerpt, Excerpt) and message is corpus[2]
    assert excerpt.text == pdf[start:] and excerpt.kind == "pdf" and excerpt.document is corpus[1]
    assert excerpt.name == f"contract.pdf[{start}:{len(pdf)}]"
    assert excerpt.meta["excerpt_of"] == "contract.pdf"
    helpers = make_helpers(view)
    (hit,) = helpers["grep"]("fee", 0)
    assert (hit.doc, hit.page, hit.line, hit.start) == ("contract.pdf", 2, 3, pdf.index("fee"))
    chunks = helpers["partition"](excerpt, by="lines", size=1)
    assert [(s.page, s.line, s.start) for ch in chunks for s in ch.sources] == [
        (2, 2, start), (2, 3, pdf.index("Late")), (3, 1, pdf.index("Signed")),
        (3, 2, pdf.index("J. Smith"))]
    assert view.spans_of(None) == [(1, start, len(pdf)), (2, 0, len(corpus[2].text))]
    assert corpus.spans_of([hit]) == [(1, pdf.index("Late"), pdf.index("Late fee ERROR") + 14)]
    child = corpus._view(corpus.spans_of(chunks[0]))
    assert child[0].text == "Payment due in 30 days\n"
    with pytest.raises(ValueError, match="outside"):
        corpus._view([(1, 0, 10_000)])


# -------------------------------------------------------------------------------- peek


def test_peek_forms(corpus: Corpus, helpers: dict[str, Any]) -> None:
    peek = helpers["peek"]
    stream = peek(None, 0, 100_000)
    assert stream.startswith("=== app.log (log) ===\n2024-01-01 INFO start\n")
    assert "\n=== contract.pdf (pdf) ===\nInvoice 17\n" in stream
    assert stream.endswith("=== empty.txt (text) ===\n\n")
    assert peek() == stream[:2000]
    assert peek(None, 30, 40) == stream[30:70]
    assert peek(None, -10) == stream[-10:]
    assert peek("m2.eml") == corpus[3].text
    assert peek(3, 6, 3) == "b@x"
    assert peek(corpus[0], -4) == "stop"
    hit = helpers["grep"]("disk")[0]
    assert peek(hit, 0, 26) == "2024-01-01 ERROR disk full"
    assert peek(hit, -6, 5) == "start"
    chunk = helpers["partition"]("m1.eml")[0]
    assert peek(chunk, 6, 3) == "a@x"
    assert peek(["m2.eml", "m1.eml"], 0, 25) == "=== m2.eml (email) ===\nFr"
    big = make_helpers(corpus_of([("a", "text", "y" * 200_000)]))["peek"]
    capped = big("a", 0, 150_000)
    assert capped.startswith("y" * 100_000) and "capped at 100,000" in capped
    with pytest.raises(ValueError, match="length must be >= 0"):
        peek(None, 0, -1)
    with pytest.raises(KeyError, match="did you mean"):
        peek("m3.eml")


# ---------------------------------------------------------------------------- recording


def test_every_call_records_one_trace_node(corpus: Corpus) -> None:
    nodes: list[tuple[str, dict[str, Any], Any, float, float]] = []
    helpers = make_helpers(corpus, lambda *node: nodes.append(node))
    hits = helpers["grep"]("ERROR", ["app.log", 2], ignore_case=True)
    helpers["peek"](hits[0], -5, 10)
    helpers["partition"](corpus[1], by="pages")
    with pytest.raises(ValueError):
        helpers["grep"]("[")
    kinds = [node[0] for node in nodes]
    assert kinds == ["grep", "peek", "partition", "grep"]
    grep_node = nodes[0]
    assert grep_node[1] == {"pattern": "ERROR", "target": ["app.log", "m1.eml"],
                            "ignore_case": True, "max_hits": None}
    assert grep_node[2]["hits"] == 3 and grep_node[2]["documents"] == 2
    assert grep_node[2]["first"][0] == "app.log:2: 2024-01-01 ERROR disk full"
    assert grep_node[2]["sample"][0] == {"doc": "app.log", "page": None, "line": 2,
                                         "text": "2024-01-01 ERROR disk full"}
    assert len(grep_node[2]["sample"]) == 3
    assert grep_node[3] <= grep_node[4]
    assert nodes[1][1] == {"target": "app.log:2", "start": -5, "length": 10}
    assert nodes[2][1]["target"] == "contract.pdf"
    assert nodes[2][2] == {"chunks": 3, "sizes": [len(p) for p in PDF_PAGES],
                           "chars": sum(map(len, PDF_PAGES)),
                           "sources": [{"chunk": n, "doc": "contract.pdf", "page": n + 1,
                                        "line": 1} for n in range(3)]}
    assert nodes[3][2]["error"].startswith("ValueError: grep: invalid regular expression")
    assert helpers["grep"].__doc__ and helpers["peek"].__doc__ and helpers["partition"].__doc__
