"""Logs and plain text (also Markdown, CSV, JSON, HTML), compressed or not, streamed in chunks.

Logs can be gigabytes: they are decompressed and decoded incrementally and handed on as
chunks that end at line breaks, so memory stays flat whatever the file size.
"""

from __future__ import annotations

import bz2
import codecs
import lzma
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from rlm_desktop.corpus.document import normalize_text
from rlm_desktop.corpus.errors import DamagedFile, LimitExceeded, UnsupportedFormat
from rlm_desktop.corpus.formats import (
    DOCUMENT_KIND,
    detect,
    looks_like_text,
    sniff_compression,
    split_compression,
)
from rlm_desktop.corpus.formats.base import ExtractContext, Part, Source, check_ratio

READ_BLOCK = 1024 * 1024
CHUNK_CHARS = 16 * 1024 * 1024
_SAMPLE = 64 * 1024


def extract_text(source: Source, ctx: ExtractContext) -> Iterator[Part]:
    head = source.head()
    fmt = detect(source.name, head)
    kind = DOCUMENT_KIND.get(fmt, "text")
    named_compression = split_compression(source.name)[1]
    actual = sniff_compression(head)
    if named_compression and actual != named_compression:
        raise DamagedFile(
            f"not a {named_compression} file: the name says compressed, the content is not"
        )
    if actual and not named_compression and fmt not in ("log", "text"):
        raise UnsupportedFormat(f"unsupported format: {actual}-compressed {fmt}")
    if kind == "html":  # needs the whole document to find its structure
        with source.open() as handle:
            blocks = _decompressed(handle, actual, ctx, source.name) if actual else _raw(handle)
            data = b"".join(_bounded(blocks, ctx.limits.max_parsed_bytes))
        from rlm_desktop.corpus.formats.html import html_to_text

        text = html_to_text(decode_bytes(data, ctx))
        yield Part(name="", kind=kind, text=normalize_text(text))
        return
    chunks = _stream(source, actual, ctx)
    # The first chunk is read now so that a binary or damaged file fails here, not later
    # in whoever consumes the text; the generator keeps the file open until it is done.
    first = next(chunks, None)
    if first is None:
        raise DamagedFile("no text: the file decompresses to nothing")
    meta = {"compression": actual} if actual else {}
    yield Part(name="", kind=kind, text=_chain(first, chunks), meta=meta)


def _stream(
    source: Source, compression: str | None, ctx: ExtractContext
) -> Iterator[str | bytes]:
    with source.open() as handle:
        blocks = (
            _decompressed(handle, compression, ctx, source.name) if compression
            else _raw(handle)
        )
        yield from _decoded_chunks(blocks, ctx)


def _chain(first: str | bytes, rest: Iterator[str | bytes]) -> Iterator[str | bytes]:
    yield first
    yield from rest


def _raw(handle: BinaryIO) -> Iterator[bytes]:
    while block := handle.read(READ_BLOCK):
        yield block


def _bounded(blocks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    total = 0
    for block in blocks:
        total += len(block)
        if total > limit:
            raise LimitExceeded(f"file is larger than the {limit / 2**20:,.0f} MiB limit")
        yield block


def _decompressed(
    handle: BinaryIO, method: str, ctx: ExtractContext, name: str
) -> Iterator[bytes]:
    """Decompressed blocks, bounded in size and ratio; a damaged stream raises DamagedFile."""
    consumed = produced = 0
    decompressor = _new_decompressor(method)
    try:
        while data := handle.read(READ_BLOCK):
            consumed += len(data)
            while data:
                if decompressor.eof:
                    # Concatenated streams (`cat a.gz b.gz`, pbzip2, multi-stream xz) start
                    # anew; zero padding after the last one is ignored.
                    if not data.strip(b"\x00"):
                        break
                    decompressor = _new_decompressor(method)
                for out in _feed(decompressor, data):
                    produced += len(out)
                    check_ratio(ctx, produced, consumed, name)
                    yield out
                data = decompressor.unused_data if decompressor.eof else b""
            if ctx.on_progress is not None:
                ctx.on_progress(consumed)
    except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as exc:
        raise DamagedFile(f"damaged {method} stream: {exc}") from exc
    if not decompressor.eof:
        raise DamagedFile(
            f"damaged {method} stream: it ends early (truncated file?) after "
            f"{produced:,} bytes of text"
        )


Decompressor = Any


def _new_decompressor(method: str) -> Decompressor:
    if method == "gzip":
        return zlib.decompressobj(wbits=31)
    if method == "bzip2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor()


def _feed(decompressor: Decompressor, data: bytes) -> Iterator[bytes]:
    """All output for `data`, in blocks of at most READ_BLOCK bytes."""
    out: bytes = decompressor.decompress(data, READ_BLOCK)
    if out:
        yield out
    if hasattr(decompressor, "unconsumed_tail"):  # zlib
        while not decompressor.eof:
            tail = decompressor.unconsumed_tail
            out = decompressor.decompress(tail, READ_BLOCK)
            if not out and not tail:
                break
            if out:
                yield out
    else:  # bz2, lzma
        while not decompressor.eof and not decompressor.needs_input:
            out = decompressor.decompress(b"", READ_BLOCK)
            if out:
                yield out


def choose_encoding(sample: bytes) -> tuple[str, str | None]:
    """(codec, warning) for a text sample: BOMs first, then UTF-8, then Windows-1252."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", None
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", None
    if not looks_like_text(sample):
        raise UnsupportedFormat("not a text file: the content is binary data")
    try:
        sample.decode("utf-8")
        return "utf-8", None
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 3:  # only a character cut off at the sample's end
            return "utf-8", None
    decoded = sample.decode("utf-8", errors="replace")
    bad = decoded.count("\ufffd")
    has_real_utf8 = any(ord(ch) > 127 and ch != "\ufffd" for ch in decoded)
    if not has_real_utf8 and bad * 200 > len(sample):
        return "cp1252", "not valid UTF-8; decoded as Windows-1252"
    return "utf-8", None


def _decoded_chunks(blocks: Iterator[bytes], ctx: ExtractContext) -> Iterator[str | bytes]:
    """Normalized text chunks, each ending at a line break (the last one may not).

    For ASCII-compatible encodings the bytes are cut at their last newline before decoding,
    so each block is decoded once, without joining large strings; a block that is plain
    ASCII with nothing to normalize is passed on as bytes, untouched.
    """
    pending: list[bytes] = []
    sample = b""
    for block in blocks:
        pending.append(block)
        sample += block[: _SAMPLE - len(sample)]
        if len(sample) >= _SAMPLE:
            break
    if not sample:
        return
    encoding, warning = choose_encoding(sample)
    if warning:
        ctx.warn(warning)
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    by_bytes = encoding != "utf-16"  # in UTF-16 a newline is two bytes: cut after decoding
    ascii_ok = encoding in ("utf-8", "cp1252")
    replaced = 0
    carry_bytes = b""
    carry_text = ""

    def all_blocks() -> Iterator[bytes]:
        yield from pending
        yield from blocks

    for block in all_blocks():
        if by_bytes:
            data = carry_bytes + block if carry_bytes else block
            cut = data.rfind(b"\n") + 1
            if cut == 0 and len(data) < CHUNK_CHARS:
                carry_bytes = data  # a line longer than a block: wait for its end
                continue
            cut = cut or len(data)
            carry_bytes = data[cut:]
            head = data[:cut]
            if ascii_ok and head.isascii() and b"\r" not in head and b"\x00" not in head:
                yield head  # already normalized text: no decode/encode round trip
                continue
            text = decoder.decode(head)
        else:
            text = carry_text + decoder.decode(block)
            cut = text.rfind("\n") + 1
            if cut == 0 and len(text) < CHUNK_CHARS:
                carry_text = text
                continue
            cut = cut or len(text)
            text, carry_text = text[:cut], text[cut:]
        if "\ufffd" in text:
            replaced += text.count("\ufffd")
        yield normalize_text(text)
    text = carry_text + decoder.decode(carry_bytes, final=True)
    if text:
        replaced += text.count("\ufffd")
        yield normalize_text(text)
    if replaced:
        ctx.warn(f"{replaced:,} invalid byte sequences replaced with U+FFFD")


def decode_bytes(data: bytes, ctx: ExtractContext) -> str:
    """Decode a whole small text (HTML, an attachment) the way files are decoded."""
    encoding, warning = choose_encoding(data[:_SAMPLE])
    if warning:
        ctx.warn(warning)
    text = data.decode(encoding, errors="replace")
    return text
