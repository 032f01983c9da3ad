"""Email: .eml files and .mbox mailboxes (streamed message by message), one document per message.

Parsing uses the stdlib with the compat32 policy (several times faster than policy.default).
Headers are RFC 2047-decoded, HTML bodies become text, and attachments that are documents
(PDF, Word, text, attached messages) become child documents linked to their message.
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Iterator
from email import message_from_bytes
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32
from typing import Any, BinaryIO, TypeGuard

from rlm_desktop.corpus.document import normalize_text
from rlm_desktop.corpus.errors import DamagedFile, ExtractionError, LimitExceeded
from rlm_desktop.corpus.formats import detect, extract_nested
from rlm_desktop.corpus.formats.base import ExtractContext, Part, Source, text_of
from rlm_desktop.corpus.formats.html import html_to_text
from rlm_desktop.corpus.formats.mailtext import (
    MessageHeaders,
    message_meta,
    parse_date,
    render_message,
)
from rlm_desktop.corpus.formats.mime import MimePart, NotSimple, parse_message

_BLOCK = 8 * 1024 * 1024
_SURROGATE = re.compile("[\udc80-\udcff]")
_FROM_LINE = re.compile(rb"From \S*.*\d\d?:\d\d")
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "x-sjis": "shift_jis",
    "unknown-8bit": "utf-8",
    "x-unknown": "utf-8",
    "us-ascii": "utf-8",  # mislabelled 8-bit text is common; UTF-8 is a superset of ASCII
}
#: Attachment formats read as child documents; others are listed by name only.
_READABLE_ATTACHMENTS = {"pdf", "docx", "text", "log", "markdown", "csv", "json", "html", "eml"}


def extract_eml(source: Source, ctx: ExtractContext) -> Iterator[Part]:
    data = source.read(ctx.limits.max_parsed_bytes).lstrip(b" \t\r\n")
    if data.startswith(b"From ") and not _looks_like_header_block(data):
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    if not _looks_like_header_block(data):
        raise DamagedFile("not an email message: no mail headers at the start of the file")
    message = _parse(data, ctx)
    yield from message_parts(message, ctx, name="")


def extract_mbox(source: Source, ctx: ExtractContext) -> Iterator[Part]:
    with source.open() as handle:
        count = 0
        for raw, consumed in _split_mbox(handle):
            count += 1
            try:
                message = _parse(raw, ctx)
                yield from message_parts(message, ctx, name=f"#{count}")
            except LimitExceeded as exc:
                ctx.skip(f"message {count} skipped", exc)
                yield _placeholder(count, str(exc))
            except (ExtractionError, ValueError, LookupError, RecursionError) as exc:
                ctx.warn(f"message {count} could not be parsed: {exc}")
                yield _placeholder(count, str(exc))
            if ctx.on_progress is not None and count % 64 == 0:
                ctx.on_progress(consumed)
        if count == 0:
            raise DamagedFile("not an mbox mailbox: no messages found")


def _placeholder(number: int, reason: str) -> Part:
    # Keeps message numbering (and counts) true even when one message is unreadable.
    text = f"[message {number} could not be read: {reason}]\n"
    return Part(name=f"#{number}", kind="email", text=text, meta={"error": reason})


def _split_mbox(handle: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """Raw messages (without their From_ line) and the bytes consumed so far."""
    buffer = handle.read(_BLOCK)
    lead = len(buffer) - len(buffer.lstrip(b"\r\n"))
    if not buffer[lead:].startswith(b"From "):
        raise DamagedFile("not an mbox mailbox: the file does not start with a 'From ' line")
    consumed = len(buffer)
    start = lead
    search = start + 1
    while True:
        cut = buffer.find(b"\nFrom ", search)
        if cut < 0:
            more = handle.read(_BLOCK)
            if not more:
                yield _strip_from_line(buffer[start:]), consumed
                return
            consumed += len(more)
            buffer = buffer[start:] + more
            search = max(1, len(buffer) - len(more) - 6)
            start = 0
            continue
        line_end = buffer.find(b"\n", cut + 1)
        if line_end < 0 and (more := handle.read(_BLOCK)):
            consumed += len(more)
            buffer = buffer[start:] + more
            search, start = cut - start, 0
            continue
        if _FROM_LINE.match(buffer, cut + 1, line_end if line_end >= 0 else len(buffer)):
            yield _strip_from_line(buffer[start : cut + 1]), consumed
            start = cut + 1
        search = cut + 1


def _strip_from_line(raw: bytes) -> bytes:
    newline = raw.find(b"\n")
    return raw[newline + 1 :] if newline >= 0 else b""


def _looks_like_header_block(data: bytes) -> bool:
    first = data.lstrip(b"\r\n")[:1000].split(b"\n", 1)[0]
    return bool(re.match(rb"[!-9;-~]+:", first))


MailPart = Message | MimePart


def _parse(data: bytes, ctx: ExtractContext) -> MailPart:
    """The fast reader for ordinary mail, the stdlib parser for anything unusual."""
    try:
        return parse_message(data, 0, ctx.limits.max_mime_depth)
    except NotSimple:
        return message_from_bytes(data, policy=compat32)


def _is_part(value: object) -> TypeGuard[MailPart]:
    return isinstance(value, Message | MimePart)


def message_parts(message: MailPart, ctx: ExtractContext, *, name: str) -> Iterator[Part]:
    """The message as a Part, then its readable attachments as parts linked to it."""
    headers = _headers(message)
    bodies: list[str] = []
    attachments: list[tuple[str, MailPart]] = []
    _walk(message, ctx, bodies, attachments, depth=0)
    headers.attachments = [filename for filename, _ in attachments]
    cleaned = (normalize_text(text).strip("\n") for text in bodies)
    body = "\n\n".join(text for text in cleaned if text.strip())
    text = normalize_text(render_message(headers, body))
    if "\ufffd" in text:
        where = f"message {name.lstrip('/')}" if name else "the message"
        ctx.warn(f"{where}: bytes that are not valid in its charset were replaced with U+FFFD")
    meta: dict[str, Any] = message_meta(headers)
    yield Part(name=name, kind="email", text=text, meta=meta)
    index = ctx.last_index
    for filename, part in attachments:
        yield from _attachment(filename, part, ctx, name, index)


def _attachment(
    filename: str, part: MailPart, ctx: ExtractContext, name: str, parent: int
) -> Iterator[Part]:
    try:
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            inner_message = inner[0] if isinstance(inner, list) and inner else None
            if _is_part(inner_message):
                for child in message_parts(inner_message, ctx.nested(), name=f"{name}/{filename}"):
                    if child.parent is None:
                        child.parent = parent
                    yield child
                return
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            return
        fmt = detect(filename, payload[:8192])
        if fmt not in _READABLE_ATTACHMENTS:
            return
        source = Source(filename, data=payload)
        children = []
        for child in extract_nested(source, ctx, parent):
            child.name = f"{name}{child.name}"
            # Read streamed text now, so a damaged attachment fails here, not the mailbox.
            child.text = text_of(child)
            children.append(child)
        yield from children
    except ExtractionError as exc:
        ctx.skip(f"attachment {filename}", exc)


def _walk(
    part: MailPart,
    ctx: ExtractContext,
    bodies: list[str],
    attachments: list[tuple[str, MailPart]],
    depth: int,
) -> None:
    if depth > ctx.limits.max_mime_depth:
        raise LimitExceeded(f"MIME parts nested more than {ctx.limits.max_mime_depth} deep")
    ctype = part.get_content_type()
    filename = _filename(part)
    if ctype == "message/rfc822":
        attachments.append((filename or "attached-message.eml", part))
        return
    if part.is_multipart():
        children: list[MailPart] = [p for p in part.get_payload() or [] if _is_part(p)]
        if part.get_content_subtype() == "alternative" and children:
            children = [_best_alternative(children)]
        for child in children:
            _walk(child, ctx, bodies, attachments, depth + 1)
        return
    disposition = (part.get("Content-Disposition") or "").split(";", 1)[0].strip().lower()
    if filename or disposition == "attachment":
        attachments.append((filename or f"attachment-{len(attachments) + 1}", part))
    elif ctype == "text/plain" or (ctype.startswith("text/") and ctype != "text/html"):
        bodies.append(_decode_payload(part))
    elif ctype == "text/html":
        bodies.append(html_to_text(_decode_payload(part)))


def _best_alternative(children: list[MailPart]) -> MailPart:
    """Plain text when it has content, else the richest other version."""
    for child in children:
        if child.get_content_type() == "text/plain" and _decode_payload(child).strip():
            return child
    return children[-1]


def _filename(part: MailPart) -> str:
    raw = part.get_filename()
    if not raw:
        return ""
    name = decode_header_value(raw)
    # Only the final component: attachment names are never paths we trust.
    name = re.split(r"[\\/]", name)[-1].strip().strip(".")
    return name[:200]


def _decode_payload(part: MailPart) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    if not payload.isascii():
        # Valid multi-byte UTF-8 is almost never legitimate text in another charset, while
        # UTF-8 mislabelled as gb2312 or latin-1 is common: trust the bytes over the label.
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return decode_labelled(payload, part.get_content_charset())


def _known_codec(charset: str | None) -> str | None:
    """The Python codec for a MIME charset label (aliases applied), None if unknown."""
    label = (charset or "").strip().strip('"').lower()
    if not label:
        return None
    try:
        return codecs.lookup(_CHARSET_ALIASES.get(label, label)).name
    except LookupError:
        return None


def codec_for(charset: str | None) -> str:
    """A Python codec for a MIME charset label, tolerant of unknown and mislabelled ones."""
    return _known_codec(charset) or "utf-8"


def decode_labelled(data: bytes, charset: str | None) -> str:
    """Bytes in their declared charset (bad bytes replaced); with no usable label, UTF-8 if
    the bytes are valid UTF-8, else Windows-1252."""
    codec = _known_codec(charset)
    if codec is not None:
        return data.decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def decode_header_value(value: object, fallback: str = "cp1252") -> str:
    """A header as readable text: RFC 2047 words decoded; raw 8-bit bytes read as UTF-8 or,
    failing that, in the `fallback` codec (the message's charset when it declares one)."""
    if value is None:
        return ""
    return _decode_header_text(str(value), fallback)


@functools.lru_cache(maxsize=8192)
def _decode_header_text(text: str, fallback: str) -> str:
    # Cached: in a mailbox the same senders, lists and subjects recur thousands of times.
    if not text.isascii() and _SURROGATE.search(text):
        raw = text.encode("utf-8", "surrogateescape")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode(fallback, errors="replace")
    if "=?" not in text:
        return " ".join(text.split())
    try:
        chunks = decode_header(text)
    except HeaderParseError:  # a broken encoded word: show the header as it is
        return " ".join(text.split())
    try:
        decoded = str(make_header(chunks))
    except (LookupError, UnicodeError, ValueError, AssertionError):
        pieces = []
        for chunk, charset in chunks:
            if isinstance(chunk, str):
                pieces.append(chunk)
            elif charset is None:
                # decode_header hands back unencoded runs as raw-unicode-escape bytes.
                pieces.append(chunk.decode("raw-unicode-escape", errors="replace"))
            else:
                pieces.append(decode_labelled(chunk, charset))
        decoded = "".join(pieces)
    return " ".join(decoded.split())


def _headers(message: MailPart) -> MessageHeaders:
    charset = _first_charset(message)
    fallback = charset if charset != "utf-8" else "cp1252"
    # raw_items() gives the header as parsed (8-bit bytes surrogate-escaped); get() would
    # replace them with U+FFFD before we can try the right charset.
    raw: dict[str, str] = {}
    for key, value in message.raw_items():
        raw.setdefault(key.lower(), value)

    def header(name: str) -> str:
        return decode_header_value(raw.get(name.lower()), fallback)

    raw_date = header("Date")
    return MessageHeaders(
        sender=header("From"),
        to=header("To"),
        cc=header("Cc"),
        date=parse_date(raw_date),
        raw_date=raw_date,
        subject=header("Subject"),
        message_id=header("Message-ID"),
        in_reply_to=header("In-Reply-To"),
        references=header("References"),
    )


def _first_charset(message: MailPart) -> str:
    """The charset a message's text declares: the best guess for raw 8-bit headers."""
    for part in message.walk():
        charset = part.get_content_charset()
        if charset:
            return codec_for(charset)
    return "cp1252"
