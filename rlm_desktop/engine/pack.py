"""How the corpus reaches the REPL worker without being sent through a pipe or pickled.

The parent describes where each document's text lies: a byte range of a file in the text
cache, or of one private pack file it writes once per run for documents that were never
cached. The worker reads those ranges itself at start-up (a 100 MB corpus loads in about
0.2 s) and every child RLM of the run reuses the same description.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_desktop.corpus.document import Document

# Uncached text up to this size goes to the worker inside its start frame (JSON escapes
# can make a character six bytes; the frame limit is 256 MiB); more is written to a private
# temporary pack file for the length of the run.
INLINE_CHARS = 32 * 1024 * 1024


@dataclass(slots=True)
class CorpusPack:
    """JSON-able description of a corpus: entries in corpus order and the byte ranges."""

    entries: list[dict[str, Any]]
    files: dict[str, list[tuple[int, int, int]]]  # path -> [(entry index, start, end)]
    temp_dir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    inline: dict[int, str] = field(default_factory=dict, repr=False)  # sent in the frame

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "entries": self.entries,
            "files": [{"path": p, "ranges": r} for p, r in self.files.items()]}
        if self.inline:
            data["inline"] = {str(i): text for i, text in self.inline.items()}
        return data

    def cleanup(self) -> None:
        if self.temp_dir is not None:
            self.temp_dir.cleanup()
            self.temp_dir = None


def build_pack(documents: Sequence[Document]) -> CorpusPack:
    entries: list[dict[str, Any]] = []
    files: dict[str, list[tuple[int, int, int]]] = {}
    pending: list[tuple[int, Document]] = []
    for index, doc in enumerate(documents):
        meta = {k: v for k, v in doc.meta.items() if _jsonable(v)}
        chars = meta.get("chars")
        entry: dict[str, Any] = {
            "id": doc.id, "name": doc.name, "path": doc.path, "kind": doc.kind, "meta": meta,
            "page_starts": list(doc.page_starts) if doc.page_starts else None,
            "pages": doc.pages,
        }
        if doc.text_file is not None and Path(doc.text_file[0]).is_file():
            path, start, end = doc.text_file
            files.setdefault(path, []).append((index, start, end))
            entry["chars"] = int(chars) if isinstance(chars, int) else None
        else:
            pending.append((index, doc))
        entries.append(entry)
    temp_dir = None
    inline: dict[int, str] = {}
    if pending and sum(len(doc.text) for _, doc in pending) <= INLINE_CHARS:
        # Text that was never cached (decrypted PDFs, --no-cache) travels in the worker's
        # start frame and never touches the disk.
        for index, doc in pending:
            inline[index] = doc.text
            entries[index]["chars"] = len(doc.text)
        pending = []
    if pending:
        temp_dir = tempfile.TemporaryDirectory(prefix="rlm-pack-")
        os.chmod(temp_dir.name, 0o700)
        pack_path = os.path.join(temp_dir.name, "corpus.txt")
        ranges: list[tuple[int, int, int]] = []
        with open(pack_path, "wb") as handle:
            offset = 0
            for index, doc in pending:
                data = doc.text.encode("utf-8")
                handle.write(data)
                ranges.append((index, offset, offset + len(data)))
                offset += len(data)
                entries[index]["chars"] = len(doc.text)
        files[pack_path] = ranges
    for index, doc in enumerate(documents):
        if entries[index].get("chars") is None:
            entries[index]["chars"] = len(doc.text)
    return CorpusPack(entries, files, temp_dir, inline)


def load_pack(spec: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """In the worker: the blob (all texts joined by "\\n") and entries with char offsets."""
    entries: list[dict[str, Any]] = [dict(e) for e in spec["entries"]]
    inline = spec.get("inline") or {}
    joined = None if inline else _read_joined(spec, len(entries))
    lengths: list[int]
    if joined is None:
        texts = _read_separately(spec, len(entries))
        for key, text in inline.items():
            texts[int(key)] = str(text)
        blob = "\n".join(texts)
        lengths = [len(text) for text in texts]
        del texts
    elif joined[0].isascii():
        # The common case (logs, most mail): one decode straight into the blob, and the byte
        # lengths are the character lengths. Decoding each text and then joining them would
        # copy the whole corpus once more, and in a fresh process every copied page is a
        # page fault: that copy was a third of the start-up time of a 100 MB corpus.
        buffer, lengths = joined
        del joined
        blob = buffer.decode("ascii")
        del buffer
    else:
        buffer, sizes = joined
        del joined
        texts = []
        with memoryview(buffer) as view:
            position = 0
            for size in sizes:
                texts.append(str(view[position : position + size], "utf-8"))
                position += size + 1
        del buffer
        blob = "\n".join(texts)
        lengths = [len(text) for text in texts]
        del texts
    offset = 0
    for entry, length in zip(entries, lengths, strict=True):
        entry["start"] = offset
        entry["end"] = offset + length
        entry["chars"] = length
        offset += length + 1
    return blob, entries


def _read_joined(spec: dict[str, Any], count: int) -> tuple[bytearray, list[int]] | None:
    """Every text's bytes, in entry order with b"\\n" between them, read straight into one
    buffer, and the byte size of each text; None when the ranges are not one plain range per
    entry or a file is shorter than its ranges say (then `_read_separately` decides)."""
    sizes = [0] * count
    seen = [False] * count
    for item in spec["files"]:
        for index, start, end in item["ranges"]:
            if not 0 <= index < count or seen[index] or not 0 <= start <= end:
                return None
            seen[index] = True
            sizes[index] = end - start
    starts = []
    total = 0
    for size in sizes:
        starts.append(total)
        total += size + 1
    buffer = bytearray(max(0, total - 1))
    with memoryview(buffer) as view:
        for item in spec["files"]:
            with open(item["path"], "rb", buffering=0) as handle:
                for index, start, end in item["ranges"]:
                    if start == end:
                        continue
                    handle.seek(start)
                    target = view[starts[index] : starts[index] + end - start]
                    while target:
                        got = handle.readinto(target)
                        if not got:
                            return None  # the file ends before the range does
                        target = target[got:]
    for position in starts[1:]:
        buffer[position - 1] = 0x0A  # "\n"
    return buffer, sizes


def _read_separately(spec: dict[str, Any], count: int) -> list[str]:
    """Each text decoded on its own from its file: exact for any ranges."""
    texts: list[str] = [""] * count
    for item in spec["files"]:
        with open(item["path"], "rb") as handle:
            data = handle.read()
        view = memoryview(data)
        for index, start, end in item["ranges"]:
            texts[index] = str(view[start:end], "utf-8")
        del view, data
    return texts


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
