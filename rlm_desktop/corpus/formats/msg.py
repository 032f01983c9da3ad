"""Outlook .msg files (MS-OXMSG): one email document per message, attachments as children.

An .msg is an OLE2 compound file holding MAPI properties. Strings and binary values are
streams named `__substg1.0_IIIITTTT` (property id, property type); fixed-size values (numbers,
times) are 16-byte entries in `__properties_version1.0`. Recipients, attachments and embedded
messages are sub-storages with the same layout. The message is rendered with the same header
block as .eml and .mbox messages, so every email reads alike whatever its container.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from typing import Any

import compressed_rtf
import olefile

from rlm_desktop.corpus.document import normalize_text
from rlm_desktop.corpus.errors import DamagedFile, ExtractionError, UnsupportedFormat
from rlm_desktop.corpus.formats import detect, extract_nested, looks_like_text
from rlm_desktop.corpus.formats.base import ExtractContext, Part, Source
from rlm_desktop.corpus.formats.html import html_to_text
from rlm_desktop.corpus.formats.mail import decode_header_value
from rlm_desktop.corpus.formats.mailtext import (
    MessageHeaders,
    message_meta,
    parse_date,
    render_message,
)
from rlm_desktop.corpus.formats.rtf import codec_for_codepage, rtf_to_text

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MAXREGSECT = 0xFFFFFFFA  # larger FAT values are markers (free, end of chain), not sectors
_SUBSTG = "__SUBSTG1.0_"
_PROPS = "__PROPERTIES_VERSION1.0"
_RECIP = "__RECIP_VERSION1.0_#"
_ATTACH = "__ATTACH_VERSION1.0_#"
_EMBEDDED = "__SUBSTG1.0_3701000D"  # PR_ATTACH_DATA_OBJ stored as a sub-storage
# Property ids.
_SUBJECT, _CLASS, _HEADERS, _BODY, _HTML, _RTF = 0x0037, 0x001A, 0x007D, 0x1000, 0x1013, 0x1009
_SENDER_NAMES = (0x0C1A, 0x0042)  # sender, then "sent representing"
# Sender SMTP address, sender address (an X.500 DN on Exchange, skipped then), the "sent
# representing" pair, and last the creator's SMTP address: on Exchange-originated sent items
# it is the only SMTP form of the sender's address.
_SENDER_ADDRESSES = (0x5D01, 0x0C1F, 0x5D02, 0x0065, 0x5D0A)
_MESSAGE_ID, _IN_REPLY_TO, _REFERENCES = 0x1035, 0x1042, 0x1039
_SUBMIT_TIME, _DELIVERY_TIME = 0x0039, 0x0E06
_MESSAGE_CODEPAGE, _INTERNET_CODEPAGE = 0x3FFD, 0x3FDE
_RECIP_TYPE, _DISPLAY_NAME, _SMTP_ADDRESS, _EMAIL_ADDRESS = 0x0C15, 0x3001, 0x39FE, 0x3003
_ATTACH_NAMES = (0x3707, 0x3704, 0x3001)  # long filename, 8.3 filename, display name
_ATTACH_DATA, _ATTACH_METHOD, _ATTACH_EMBEDDED_MSG = 0x3701, 0x3705, 5
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
#: Attachment formats read as child documents; others are listed by name only.
_READABLE = {"pdf", "docx", "text", "log", "markdown", "csv", "json", "html", "eml", "msg"}
#: What olefile and struct raise on broken structures (olefile's own errors are OSErrors; its
#: older code paths can fail with lookups on None). All of them mean a damaged file.
_PARSE_ERRORS = (
    OSError,
    EOFError,
    struct.error,
    ValueError,
    IndexError,
    KeyError,
    TypeError,
    AttributeError,
)
_SPECIALS = re.compile(r'[,;:<>@"()\[\]\\]')


def extract_msg(source: Source, ctx: ExtractContext) -> Iterator[Part]:
    data = source.read(ctx.limits.max_parsed_bytes)
    ole = _open(data)
    try:
        try:
            tree = _Tree(ole)
        except _PARSE_ERRORS as exc:
            raise DamagedFile(f"damaged Outlook .msg file: {exc}") from exc
        root = tree.children.get((), {})
        if _PROPS not in root and not any(name.startswith(_SUBSTG) for name in root):
            raise UnsupportedFormat(
                f"unsupported format: the file is {_ole_kind(root)}, not an Outlook message"
            )
        yield from _message_parts(tree, (), 32, "cp1252", ctx, name="", parent=None)
    finally:
        ole.close()


def _open(data: bytes) -> Any:
    if not data.startswith(_OLE_MAGIC):
        what = "a text file" if looks_like_text(data[:4096]) else "not an OLE2 compound file"
        raise DamagedFile(f"not an Outlook .msg file: it is {what}")
    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
        # olefile reads a cut-short file without complaint; a FAT chain that points past the
        # end of the file is the telltale sign.
        last = max((sector for sector in ole.fat if sector <= _MAXREGSECT), default=0)
    except _PARSE_ERRORS as exc:
        raise DamagedFile(
            f"not an Outlook .msg file: its OLE2 structure is damaged or cut short ({exc})"
        ) from exc
    if last >= ole.nb_sect:
        ole.close()
        raise DamagedFile("not an Outlook .msg file: the file is truncated (cut short)")
    return ole


def _ole_kind(root: dict[str, str]) -> str:
    if "WORDDOCUMENT" in root:
        return "a Word .doc document"
    if "WORKBOOK" in root or "BOOK" in root:
        return "an Excel .xls workbook"
    if "POWERPOINT DOCUMENT" in root:
        return "a PowerPoint .ppt presentation"
    return "an OLE2 compound file of another kind"


class _Tree:
    """The names in the OLE file, by storage path; lookups are case-insensitive, as in OLE."""

    def __init__(self, ole: Any) -> None:
        self.ole = ole
        self.children: dict[tuple[str, ...], dict[str, str]] = {}
        for entry in ole.listdir(streams=True, storages=True):
            self.children.setdefault(tuple(entry[:-1]), {})[entry[-1].upper()] = entry[-1]

    def storages(self, path: tuple[str, ...], prefix: str) -> list[tuple[str, ...]]:
        names = self.children.get(path, {})
        return [(*path, names[key]) for key in sorted(names) if key.startswith(prefix)]


class _Props:
    """The properties of one storage: a message, a recipient or an attachment."""

    def __init__(self, tree: _Tree, path: tuple[str, ...], header: int, codec: str) -> None:
        self.tree, self.path, self.codec = tree, path, codec
        self.names = tree.children.get(path, {})
        self.fixed: dict[int, bytes] = {}
        raw = self.stream(_PROPS) or b""
        # After the header, 16-byte entries: tag (type in the low 16 bits), flags, 8-byte value.
        for offset in range(header, len(raw) - 15, 16):
            tag = struct.unpack_from("<I", raw, offset)[0]
            self.fixed[tag] = raw[offset + 8 : offset + 16]

    def stream(self, name: str) -> bytes | None:
        actual = self.names.get(name)
        if actual is None:
            return None
        path = [*self.path, actual]
        ole = self.tree.ole
        if ole.get_type(path) != olefile.STGTY_STREAM:
            return None
        data: bytes = ole.openstream(path).read()
        if len(data) < ole.get_size(path):
            raise DamagedFile("damaged Outlook .msg file: a property stream is cut short")
        return data

    def has_storage(self, name: str) -> bool:
        actual = self.names.get(name)
        return actual is not None and self.tree.ole.get_type([*self.path, actual]) == (
            olefile.STGTY_STORAGE
        )

    def string(self, prop: int) -> str:
        data = self.stream(f"{_SUBSTG}{prop:04X}001F")
        if data is not None:
            text = data[: len(data) // 2 * 2].decode("utf-16-le", errors="replace")
        elif (data := self.stream(f"{_SUBSTG}{prop:04X}001E")) is not None:
            text = data.decode(self.codec, errors="replace")
        else:
            return ""
        return text.rstrip("\x00")

    def binary(self, prop: int) -> bytes | None:
        return self.stream(f"{_SUBSTG}{prop:04X}0102")

    def integer(self, prop: int) -> int | None:
        value = self.fixed.get(prop << 16 | 0x0003)
        if value is None:
            return None
        number: int = struct.unpack_from("<i", value)[0]
        return number

    def time(self, prop: int) -> datetime | None:
        value = self.fixed.get(prop << 16 | 0x0040)
        if value is None:
            return None
        ticks: int = struct.unpack_from("<Q", value)[0]  # 100 ns since 1601-01-01 UTC
        try:
            moment = _FILETIME_EPOCH + timedelta(microseconds=ticks // 10)
        except OverflowError:
            return None
        # Zero and the year-4501 "never" value mean no date.
        return moment.replace(microsecond=0) if 1601 < moment.year < 4500 else None


@dataclass(slots=True)
class _Attachment:
    name: str
    data: bytes | None = None
    embedded: tuple[str, ...] | None = None  # storage path of an attached message


def _message_parts(
    tree: _Tree,
    path: tuple[str, ...],
    header: int,
    codec: str,
    ctx: ExtractContext,
    *,
    name: str,
    parent: int | None,
) -> Iterator[Part]:
    """The message at `path` as a Part, then its readable attachments linked to it."""
    try:
        props = _Props(tree, path, header, codec)
        codepage = props.integer(_MESSAGE_CODEPAGE) or props.integer(_INTERNET_CODEPAGE)
        props.codec = codec_for_codepage(codepage, codec)
        headers, extra = _headers(props)
        body, extra["body_format"] = _body(props, ctx)
        attachments = [
            _attachment(tree, storage, props.codec) for storage in tree.storages(path, _ATTACH)
        ]
    except _PARSE_ERRORS as exc:
        raise DamagedFile(f"damaged Outlook .msg file: {exc}") from exc
    headers.attachments = [attachment.name for attachment in attachments]
    meta = message_meta(headers) | extra
    text = normalize_text(render_message(headers, body))
    yield Part(name=name, kind="email", text=text, meta=meta, parent=parent)
    index = ctx.last_index
    for attachment in attachments:
        try:
            if attachment.embedded is not None:
                yield from _message_parts(
                    tree,
                    attachment.embedded,
                    24,
                    props.codec,
                    ctx.nested(),
                    name=f"{name}/{attachment.name}",
                    parent=index,
                )
            elif attachment.data and _readable(attachment):
                source = Source(attachment.name, data=attachment.data)
                for child in extract_nested(source, ctx, index):
                    child.name = f"{name}{child.name}"
                    yield child
        except ExtractionError as exc:
            ctx.skip(f"attachment {attachment.name}", exc)


def _readable(attachment: _Attachment) -> bool:
    assert attachment.data is not None
    try:
        return detect(attachment.name, attachment.data[:8192]) in _READABLE
    except UnsupportedFormat:
        return False  # images and the like: listed by name in the header block only


def _attachment(tree: _Tree, path: tuple[str, ...], codec: str) -> _Attachment:
    props = _Props(tree, path, 8, codec)
    if props.has_storage(_EMBEDDED) and props.integer(_ATTACH_METHOD) in (
        _ATTACH_EMBEDDED_MSG,
        None,
    ):
        label = props.string(_DISPLAY_NAME) or props.string(0x3707) or "message.msg"
        return _Attachment(_safe_name(label), embedded=(*path, props.names[_EMBEDDED]))
    label = next((n for n in map(props.string, _ATTACH_NAMES) if n.strip()), "attachment")
    return _Attachment(_safe_name(label), data=props.binary(_ATTACH_DATA))


def _safe_name(name: str) -> str:
    # Only the final component: attachment names are never paths we trust.
    return re.split(r"[\\/]", name)[-1].strip()[:200] or "attachment"


def _headers(props: _Props) -> tuple[MessageHeaders, dict[str, Any]]:
    to, cc, bcc = _recipients(props)
    name = next((n for n in map(props.string, _SENDER_NAMES) if n.strip()), "")
    address = next((a for a in map(props.string, _SENDER_ADDRESSES) if _is_smtp(a)), "")
    date = props.time(_SUBMIT_TIME) or props.time(_DELIVERY_TIME)
    headers = MessageHeaders(
        sender=_address(name, address),
        to=to,
        cc=cc,
        date=date,
        subject=_one_line(props.string(_SUBJECT)),
        message_id=props.string(_MESSAGE_ID).strip(),
        in_reply_to=props.string(_IN_REPLY_TO).strip(),
        references=_one_line(props.string(_REFERENCES)),
    )
    transport = props.string(_HEADERS)
    if transport.strip():
        # The headers the message arrived with are what an .eml of it would show.
        parsed = HeaderParser(policy=compat32).parsestr(transport)
        headers.sender = _header(parsed, "From") or headers.sender
        headers.to = _header(parsed, "To") or headers.to
        headers.cc = _header(parsed, "Cc") or headers.cc
        headers.subject = headers.subject or _header(parsed, "Subject")
        headers.raw_date = _header(parsed, "Date")
        headers.date = parse_date(headers.raw_date) or headers.date
        headers.message_id = _header(parsed, "Message-ID") or headers.message_id
        headers.in_reply_to = _header(parsed, "In-Reply-To") or headers.in_reply_to
        headers.references = _header(parsed, "References") or headers.references
    extra: dict[str, Any] = {"message_class": props.string(_CLASS).strip()}
    if bcc:
        extra["bcc"] = bcc
    return headers, extra


def _recipients(props: _Props) -> tuple[str, str, str]:
    """To, Cc and Bcc from the recipient storages, in their stored order."""
    lists: dict[int, list[str]] = {1: [], 2: [], 3: []}
    for path in props.tree.storages(props.path, _RECIP):
        recipient = _Props(props.tree, path, 8, props.codec)
        name = recipient.string(_DISPLAY_NAME).strip()
        address = recipient.string(_SMTP_ADDRESS).strip()
        if not _is_smtp(address):
            email = recipient.string(_EMAIL_ADDRESS).strip()
            address = email if _is_smtp(email) else ""
        kind = recipient.integer(_RECIP_TYPE) or 1
        if name or address:
            lists.setdefault(kind & 0xF, []).append(_address(name, address))
    return ", ".join(lists[1]), ", ".join(lists[2]), ", ".join(lists[3])


def _is_smtp(address: str) -> bool:
    # Exchange stores X.500 names ("/O=EXCHANGELABS/OU=...") where SMTP addresses would be.
    return "@" in address and not address.startswith("/")


def _address(name: str, address: str) -> str:
    name, address = _one_line(name), address.strip()
    if not address or name.lower() in ("", address.lower()):
        return address or name
    if _SPECIALS.search(name):  # "Wilson, Chris" must stay one name, as in a From: header
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"


def _header(message: Message, field: str) -> str:
    """An RFC 2047-decoded header value; unknown charsets and bad bytes never fail."""
    return decode_header_value(message.get(field))


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _body(props: _Props, ctx: ExtractContext) -> tuple[str, str]:
    """The body text and where it came from: plain text, else HTML, else RTF."""
    text = props.string(_BODY)
    if text.strip():
        return text, "text"
    html = _html(props)
    if html and (converted := html_to_text(html)).strip():
        return converted, "html"
    compressed = props.binary(_RTF)
    if compressed:
        try:
            rtf = compressed_rtf.decompress(compressed)
        except Exception as exc:  # the library raises bare Exception on a bad CRC or size
            ctx.warn(f"the RTF body could not be decompressed: {exc}")
        else:
            if (converted := rtf_to_text(rtf)).strip():
                return converted, "rtf"
    return "", "text"  # no body at all, or only whitespace


def _html(props: _Props) -> str:
    data = props.binary(_HTML)
    if data is None:
        return props.string(_HTML)
    # HTML bytes are in the Internet code page, which can differ from the message's own.
    codepage = props.integer(_INTERNET_CODEPAGE) or props.integer(_MESSAGE_CODEPAGE)
    return data.decode(codec_for_codepage(codepage, props.codec), errors="replace")
