"""The text cache: extracted text by sha256 of the source bytes, so re-opening a set is instant.

Layout under the user cache dir: `index.sqlite3` (a manifest per source, and a stat index
path+size+mtime -> sha256 so unchanged files are not even re-hashed) and one UTF-8 file per
source holding the text of all its documents back to back. Documents load their slice of
that file on first use. Decrypted text of password-protected files is never cached.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from rlm_desktop import paths

SCHEMA = 1


@dataclass(slots=True)
class CachedPart:
    """Where one document's text sits in the source's text file, and what is known of it."""

    name: str
    kind: str
    start: int  # byte offsets in the text file
    end: int
    chars: int
    lines: int
    meta: dict[str, Any] = field(default_factory=dict)
    page_starts: list[int] | None = None
    parent: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "start": self.start, "end": self.end,
            "chars": self.chars, "lines": self.lines, "meta": self.meta,
            "page_starts": self.page_starts, "parent": self.parent,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CachedPart:
        return cls(**data)


@dataclass(slots=True)
class Manifest:
    """Everything extraction learnt about one source (by sha256)."""

    sha256: str
    size: int
    format: str | None
    parts: list[CachedPart] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error_code: str | None = None
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps({
            "sha256": self.sha256, "size": self.size, "format": self.format,
            "parts": [p.to_json() for p in self.parts], "warnings": self.warnings,
            "error_code": self.error_code, "error": self.error,
        })

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data["parts"] = [CachedPart.from_json(p) for p in data["parts"]]
        return cls(**data)


class TextCache:
    """SQLite index plus text files; safe to use from one thread at a time per instance."""

    def __init__(self, root: Path | None = None, extractor: str = "1") -> None:
        self.root = root or (paths.cache_dir() / f"text-v{SCHEMA}")
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.extractor = extractor
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.root / "index.sqlite3", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS sources (
                sha256 TEXT NOT NULL, extractor TEXT NOT NULL, manifest TEXT NOT NULL,
                created REAL NOT NULL, PRIMARY KEY (sha256, extractor));
            CREATE TABLE IF NOT EXISTS files (
                path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                inode INTEGER NOT NULL, sha256 TEXT NOT NULL);
            """
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    # -- stat index -----------------------------------------------------------------------

    def known_sha256(self, path: str, stat: os.stat_result) -> str | None:
        """The sha256 recorded for `path` if the file has not changed since."""
        with self._lock:
            row = self._db.execute(
                "SELECT size, mtime_ns, inode, sha256 FROM files WHERE path = ?", (path,)
            ).fetchone()
        if row and row[0] == stat.st_size and row[1] == stat.st_mtime_ns and row[2] == (
            stat.st_ino
        ):
            return str(row[3])
        return None

    def remember_file(self, path: str, stat: os.stat_result, sha256: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                (path, stat.st_size, stat.st_mtime_ns, stat.st_ino, sha256),
            )
            self._db.commit()

    # -- manifests and text ---------------------------------------------------------------

    def manifest(self, sha256: str) -> Manifest | None:
        with self._lock:
            row = self._db.execute(
                "SELECT manifest FROM sources WHERE sha256 = ? AND extractor = ?",
                (sha256, self.extractor),
            ).fetchone()
        if row is None:
            return None
        manifest = Manifest.from_json(row[0])
        if manifest.parts and not self.text_path(sha256).exists():
            return None  # text file removed behind our back: extract again
        return manifest

    def store(self, manifest: Manifest) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?)",
                (manifest.sha256, self.extractor, manifest.to_json(), time.time()),
            )
            self._db.commit()

    def text_path(self, sha256: str) -> Path:
        return self.root / "text" / sha256[:2] / f"{sha256}.{self.extractor}.txt"

    def pending_text(self, sha256: str) -> PendingText:
        """A file to append a source's text to, published atomically on commit()."""
        return PendingText(self.text_path(sha256))

    def copy_text(self, sha256: str, source: str) -> int:
        """Store a file that is its own text (plain ASCII); returns the bytes copied."""
        final = self.text_path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = final.with_name(f"{final.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            shutil.copyfile(source, tmp)
            size = tmp.stat().st_size
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return size

    def forget_text(self, sha256: str) -> None:
        self.text_path(sha256).unlink(missing_ok=True)

    def read_text(self, sha256: str, start: int, end: int) -> str:
        with open(self.text_path(sha256), "rb") as handle:
            handle.seek(start)
            return handle.read(end - start).decode("utf-8")


class PendingText:
    """Text of one source being received; becomes visible only when committed."""

    def __init__(self, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._final = final
        self._tmp = final.with_name(f"{final.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        self._handle: BinaryIO = open(self._tmp, "wb")  # noqa: SIM115 - commit/discard close it
        self.offset = 0

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self.offset += len(data)

    def commit(self) -> None:
        self._handle.close()
        os.replace(self._tmp, self._final)

    def discard(self) -> None:
        self._handle.close()
        self._tmp.unlink(missing_ok=True)
