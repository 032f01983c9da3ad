"""Zip archives walked in memory: every safe member read as the file it would be on disk.

Nothing is ever written out, but member names are still checked (no absolute paths, no
"..", no drive letters), declared sizes and ratios are checked before reading, and reads
are bounded in case the declared sizes lie.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator

from rlm_desktop.corpus.errors import DamagedFile, ExtractionError, LimitExceeded
from rlm_desktop.corpus.formats import extract_nested
from rlm_desktop.corpus.formats.base import ExtractContext, Part, Source

_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_member_name(name: str) -> str | None:
    """The member's path with forward slashes, or None when it tries to escape its folder."""
    path = name.replace("\\", "/")
    if path.startswith("/") or _DRIVE.match(path) or "\x00" in path:
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or not parts:
        return None
    return "/".join(parts)


def extract_zip(source: Source, ctx: ExtractContext) -> Iterator[Part]:
    data = source.read(ctx.limits.max_parsed_bytes)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as exc:
        raise DamagedFile(f"damaged zip archive: {exc}") from exc
    limits = ctx.limits
    with archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        if len(infos) > limits.max_archive_members:
            raise LimitExceeded(f"the archive holds {len(infos):,} files; refusing to open it")
        total = sum(info.file_size for info in infos)
        if total > limits.max_decompressed_bytes:
            raise LimitExceeded(f"the archive expands to {total / 2**20:,.0f} MiB; refused")
        found = 0
        for info in infos:
            name = safe_member_name(info.filename)
            if name is None:
                ctx.warn(f"{info.filename!r} skipped: unsafe path in archive")
                continue
            if name.rsplit("/", 1)[-1].startswith(".") or name.startswith("__MACOSX/"):
                continue  # Finder and dotfile clutter, never documents
            try:
                member = _read_member(archive, info, ctx)
                # Members stand alone (parent None): the zip itself is not a document.
                for part in extract_nested(Source(name, data=member), ctx, parent=None):
                    found += 1
                    yield part
            except ExtractionError as exc:
                ctx.skip(name, exc)
        if not found:
            raise DamagedFile("the archive holds no readable documents")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, ctx: ExtractContext) -> bytes:
    limits = ctx.limits
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > limits.ratio_floor_bytes and ratio > limits.max_compression_ratio:
        raise LimitExceeded(f"expands {ratio:,.0f}:1 (a decompression bomb?); skipped")
    if info.file_size > limits.max_parsed_bytes:
        raise LimitExceeded(f"{info.file_size / 2**20:,.0f} MiB uncompressed; over the limit")
    try:
        with archive.open(info) as handle:
            # zipfile stops at the declared size and checks the CRC, so lying headers fail.
            return handle.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise DamagedFile(f"damaged archive member: {exc}") from exc
    except RuntimeError as exc:  # zipfile's "encrypted, password required"
        raise DamagedFile(f"encrypted archive member: {exc}") from exc
