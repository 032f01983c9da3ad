"""How one email message becomes a document: the same header block and meta for every mail format.

A message's text starts with a short header block (From, To, Cc, Date, Subject, and the
attachment names), a blank line, then the body. `meta` holds the same fields for code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, getaddresses, parsedate_to_datetime
from typing import Any


@dataclass(slots=True)
class MessageHeaders:
    """Decoded header values (RFC 2047 already undone)."""

    sender: str = ""
    to: str = ""
    cc: str = ""
    date: datetime | None = None
    raw_date: str = ""
    subject: str = ""
    message_id: str = ""
    in_reply_to: str = ""
    references: str = ""
    attachments: list[str] = field(default_factory=list)


def parse_date(value: str) -> datetime | None:
    """A header date as an aware datetime, or None when it cannot be understood."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def addresses(value: str) -> list[str]:
    """Lower-cased email addresses found in an address header."""
    return [addr.lower() for _name, addr in getaddresses([value]) if addr]


def message_meta(headers: MessageHeaders) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "from": headers.sender,
        "to": headers.to,
        "cc": headers.cc,
        "date": headers.date.isoformat() if headers.date else headers.raw_date or None,
        "subject": headers.subject,
        "message_id": headers.message_id,
        "in_reply_to": headers.in_reply_to,
    }
    if headers.references:
        meta["references"] = headers.references
    if headers.attachments:
        meta["attachments"] = list(headers.attachments)
    return meta


def render_message(headers: MessageHeaders, body: str) -> str:
    """The document text of a message: header block, blank line, body."""
    lines = [f"From: {headers.sender}"]
    if headers.to:
        lines.append(f"To: {headers.to}")
    if headers.cc:
        lines.append(f"Cc: {headers.cc}")
    if headers.date is not None:
        lines.append(f"Date: {format_datetime(headers.date)}")
    elif headers.raw_date:
        lines.append(f"Date: {headers.raw_date}")
    lines.append(f"Subject: {headers.subject}")
    if headers.attachments:
        lines.append(f"Attachments: {', '.join(headers.attachments)}")
    head = "\n".join(_one_line(line) for line in lines)
    body = body.strip("\n")
    return f"{head}\n\n{body}\n" if body else f"{head}\n"


def _one_line(value: str) -> str:
    return " ".join(value.split())
