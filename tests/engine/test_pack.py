"""The corpus pack: what the REPL worker reads instead of receiving the text through a pipe."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rlm_desktop.corpus.document import Document
from rlm_desktop.corpus.ingest import ingest
from rlm_desktop.engine import pack as pack_module
from rlm_desktop.engine.pack import build_pack, load_pack


def _doc(name: str, text: str) -> Document:
    return Document(id=name, name=name, path=f"/x/{name}", kind="text", sha256="0" * 64,
                    size=len(text), text=text)


def _roundtrip(documents: list[Document]) -> None:
    pack = build_pack(documents)
    try:
        blob, entries = load_pack(pack.to_json())
        assert len(entries) == len(documents)
        for doc, entry in zip(documents, entries, strict=True):
            assert blob[entry["start"]:entry["end"]] == doc.text
            assert entry["name"] == doc.name and entry["chars"] == len(doc.text)
        assert blob == "\n".join(d.text for d in documents)
    finally:
        pack.cleanup()


def test_documents_in_memory_never_touch_the_disk_when_small() -> None:
    docs = [_doc("a", "ascii only\n"), _doc("b", "Grüße, 東京 and 🙂"), _doc("c", "")]
    pack = build_pack(docs)
    assert pack.temp_dir is None and not pack.files and len(pack.inline) == 3
    _roundtrip(docs)


def test_large_uncached_text_goes_through_one_private_pack_file(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pack_module, "INLINE_CHARS", 10)
    docs = [_doc("a", "ascii only\n"), _doc("b", "Grüße, 東京 and 🙂"), _doc("c", "")]
    pack = build_pack(docs)
    assert pack.temp_dir is not None
    folder = pack.temp_dir.name
    assert oct(os.stat(folder).st_mode & 0o777) == "0o700"
    pack.cleanup()
    assert not Path(folder).exists()
    _roundtrip(docs)
    monkeypatch.undo()


def test_cached_documents_are_read_from_the_text_cache(tmp_path: Path) -> None:
    (tmp_path / "one.log").write_text("first line\nsecond line\n")
    (tmp_path / "two.txt").write_text("naïve café\nline two\n")
    documents = ingest([tmp_path]).documents
    assert all(d.text_file is not None for d in documents)
    pack = build_pack(documents)
    assert pack.temp_dir is None  # nothing had to be written
    _roundtrip(documents)
