"""Documents: normalization, and offsets <-> (page, line) in both directions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlm_desktop.corpus.document import (
    Document,
    Location,
    TextIndex,
    count_lines,
    normalize_text,
)


def test_normalize_expands_ligatures_and_drops_marks() -> None:
    raw = "e\ufb03cient \ufb01le\r\nsoft\u00adhyphen\ufffe\rend\x00"
    assert normalize_text(raw) == "efficient file\nsofthyphen\nend"


def test_normalize_leaves_plain_text_alone() -> None:
    text = "plain ASCII log line\nnext"
    assert normalize_text(text) is text


@pytest.mark.parametrize(
    ("text", "lines"), [("", 0), ("a", 1), ("a\n", 1), ("a\nb", 2), ("\n\n", 2)]
)
def test_count_lines_counts_a_last_line_without_newline(text: str, lines: int) -> None:
    assert count_lines(text) == lines


def test_location_without_pages() -> None:
    index = TextIndex("alpha\nbeta\ngamma")
    assert index.location(0) == Location(None, 1, 0)
    assert index.location(6) == Location(None, 2, 0)
    assert index.location(8) == Location(None, 2, 2)
    assert index.location(16) == Location(None, 3, 5)
    assert index.offset(None, 3) == 11
    assert index.line_span(7) == (6, 10)
    assert index.line_span(12) == (11, 16)


def test_location_with_pages_counts_lines_per_page() -> None:
    pages = ["p1 l1\np1 l2\n", "p2 l1\np2 l2\np2 l3\n", "p3 l1\n"]
    text = "".join(pages)
    starts = [0, len(pages[0]), len(pages[0]) + len(pages[1])]
    index = TextIndex(text, starts)
    assert index.page_count == 3
    offset = text.index("p2 l3")
    assert index.location(offset) == Location(2, 3, 0)
    assert index.offset(2, 3) == offset
    assert index.offset(3, 1) == text.index("p3 l1")
    with pytest.raises(IndexError):
        index.offset(1, 3)  # page 1 has two lines
    with pytest.raises(IndexError):
        index.offset(4, 1)
    with pytest.raises(IndexError):
        index.location(len(text) + 1)


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\n"), max_size=12),
                min_size=1, max_size=40))
def test_every_line_start_round_trips(lines: list[str]) -> None:
    text = "\n".join(lines)
    index = TextIndex(text)
    offset = 0
    for number, line in enumerate(lines, start=1):
        assert index.location(offset) == Location(None, number, 0)
        assert index.offset(None, number) == offset
        assert index.line_span(offset) == (offset, offset + len(line))
        offset += len(line) + 1


@given(st.lists(st.lists(st.text(alphabet="ab ", max_size=6), min_size=1, max_size=5),
                min_size=1, max_size=8), st.data())
def test_paged_offsets_round_trip(pages: list[list[str]], data: st.DataObject) -> None:
    texts = ["\n".join(page) + "\n" for page in pages]
    starts, total = [], 0
    for page_text in texts:
        starts.append(total)
        total += len(page_text)
    text = "".join(texts)
    index = TextIndex(text, starts)
    offset = data.draw(st.integers(0, len(text) - 1))
    where = index.location(offset)
    assert where.page is not None
    assert index.offset(where.page, where.line) + where.column == offset
    assert starts[where.page - 1] <= offset


def test_document_loads_text_lazily_and_maps_pages() -> None:
    calls = []

    def load() -> str:
        calls.append(1)
        return "page one\nline two\npage two\n"

    doc = Document(id="x-0", name="x.pdf", path="/x.pdf", kind="pdf", sha256="0" * 64,
                   size=10, load_text=load, page_starts=[0, 18])
    assert not calls
    assert doc.pages == 2
    assert doc.page_text(2) == "page two\n"
    assert doc.location(18) == Location(2, 1, 0)
    assert calls == [1]
    doc.release_text()
    assert doc.text.startswith("page one")
    assert calls == [1, 1]
