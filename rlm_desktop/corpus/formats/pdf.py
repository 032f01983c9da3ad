"""PDF text page by page: pypdfium2 first (fast, tolerant), pypdf for what pdfium refuses.

A page pdfium cannot read is retried with pypdf, so one damaged page does not lose the
document. A page whose text objects pdfium cannot map to characters (CID fonts without a
ToUnicode map, common in Japanese and Chinese PDFs) is re-read with pdfminer.six, which
carries the Adobe CID-to-Unicode tables. Encrypted files with an empty user password open
as is; others need a password from the context and otherwise fail with PasswordRequired.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from rlm_desktop.corpus.document import normalize_text
from rlm_desktop.corpus.errors import DamagedFile, PasswordRequired
from rlm_desktop.corpus.formats.base import ExtractContext, Part, Source

_PDFIUM_PASSWORD_ERROR = 4  # FPDF_ERR_PASSWORD
_META_KEYS = {
    "Title": "title",
    "Author": "author",
    "Subject": "subject",
    "Keywords": "keywords",
    "Creator": "creator",
    "Producer": "producer",
    "CreationDate": "created",
    "ModDate": "modified",
}


def extract_pdf(source: Source, ctx: ExtractContext) -> Iterator[Part]:
    data = source.read(ctx.limits.max_parsed_bytes)
    start = data.find(b"%PDF-", 0, 1024)
    if start < 0:
        raise DamagedFile(f"not a PDF: the file does not start with %PDF- ({_looks_like(data)})")
    pages, meta = _with_pdfium(data, ctx)
    if pages is None:
        pages, meta = _with_pypdf(data, ctx)
    yield _part(pages, meta, ctx)


def _part(pages: list[str], meta: dict[str, Any], ctx: ExtractContext) -> Part:
    starts: list[int] = []
    chunks: list[str] = []
    offset = 0
    for raw in pages:
        # Every page ends with a line break so the next one starts on a line of its own.
        text = normalize_text(raw).strip("\n") + "\n"
        starts.append(offset)
        chunks.append(text)
        offset += len(text)
    meta["pages"] = len(pages)
    if pages and not any(page.strip() for page in pages):
        ctx.warn("no text layer: the pages are images (a scan without OCR?)")
    return Part(name="", kind="pdf", text="".join(chunks), meta=meta, page_starts=starts)


def _with_pdfium(data: bytes, ctx: ExtractContext) -> tuple[list[str] | None, dict[str, Any]]:
    import pypdfium2 as pdfium

    document = None
    password: str | None = None
    for password in (None, *ctx.passwords):
        try:
            document = pdfium.PdfDocument(data, password=password)
            break
        except pdfium.PdfiumError as exc:
            if getattr(exc, "err_code", None) != _PDFIUM_PASSWORD_ERROR:
                return None, {}  # pdfium refuses the file: let pypdf try
    if document is None:
        raise PasswordRequired(_password_message(ctx))
    meta: dict[str, Any] = {}
    with contextlib.suppress(pdfium.PdfiumError):
        meta = _clean_meta(document.get_metadata_dict())
    if password is not None:
        meta["encrypted"] = True
        meta["opened_with_password"] = True
    pages: list[str] = []
    fallback: Callable[[int], str] | None = None
    try:
        for index in range(len(document)):
            try:
                page = document[index]
                textpage = page.get_textpage()
                text = textpage.get_text_range()
                if _unmapped_text(pdfium, page, textpage.count_chars()):
                    text = _pdfminer_page(data, index, ctx, password) or text
                pages.append(text)
                textpage.close()
                page.close()
            except pdfium.PdfiumError:
                if fallback is None:
                    fallback = _pypdf_page_reader(data, ctx)
                pages.append(fallback(index))
    finally:
        document.close()
    return pages, meta


def _unmapped_text(pdfium: Any, page: Any, chars: int) -> bool:
    """True when the page draws more text objects than pdfium could turn into characters."""
    raw = pdfium.raw
    if chars >= raw.FPDFPage_CountObjects(page):
        return False  # the common case, decided by one C call
    text_objects = sum(1 for _ in page.get_objects(filter=[raw.FPDF_PAGEOBJ_TEXT], max_depth=3))
    return text_objects > chars


def _pdfminer_page(data: bytes, index: int, ctx: ExtractContext, password: str | None) -> str:
    try:
        from pdfminer.high_level import extract_text

        logging.getLogger("pdfminer").setLevel(logging.ERROR)
        return str(extract_text(io.BytesIO(data), page_numbers=[index], password=password or ""))
    except Exception as exc:  # pdfminer raises many types on odd files; pdfium's text stands
        ctx.warn(f"page {index + 1}: CID text could not be mapped ({_short(exc)})")
        return ""


def _pypdf_page_reader(data: bytes, ctx: ExtractContext) -> Callable[[int], str]:
    reader = _open_pypdf(data, ctx)

    def read(index: int) -> str:
        try:
            return str(reader.pages[index].extract_text())
        except Exception as exc:  # pypdf raises many types on damaged pages
            ctx.warn(f"page {index + 1} could not be read: {_short(exc)}")
            return ""

    return read


def _open_pypdf(data: bytes, ctx: ExtractContext) -> Any:
    import pypdf
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            for password in ("", *ctx.passwords):
                if reader.decrypt(password):
                    break
            else:
                raise PasswordRequired(_password_message(ctx))
        return reader
    except PasswordRequired:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise DamagedFile(
            f"damaged PDF that neither pdfium nor pypdf can read: {_short(exc)}"
        ) from exc


def _with_pypdf(data: bytes, ctx: ExtractContext) -> tuple[list[str], dict[str, Any]]:
    reader = _open_pypdf(data, ctx)
    meta: dict[str, Any] = {"reader": "pypdf"}
    try:
        info = reader.metadata or {}
        meta.update(_clean_meta({str(k).lstrip("/"): v for k, v in info.items()}))
        page_count = len(reader.pages)
    except Exception as exc:
        raise DamagedFile(f"damaged PDF: {_short(exc)}") from exc
    if page_count == 0:
        raise DamagedFile("damaged PDF: no readable pages")
    read = _pypdf_page_reader(data, ctx)
    ctx.warn("pdfium could not open this file; text recovered with pypdf")
    return [read(index) for index in range(page_count)], meta


def _clean_meta(raw: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key, name in _META_KEYS.items():
        value = raw.get(key)
        if value:
            text = " ".join(str(value).split())
            meta[name] = pdf_date(text) if key.endswith("Date") else text
    return meta


_PDF_DATE = re.compile(
    r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?\s*(?:([Zz])|([+-])(\d{2})'?(\d{2})?'?)?"
)


def pdf_date(value: str) -> str:
    """A PDF date ("D:20071206145701-05'00'") as ISO 8601; the raw value if it is not one."""
    match = _PDF_DATE.match(value)
    if not match:
        return value
    year, month, day, hour, minute, second, _z, sign, tz_h, tz_m = match.groups()
    try:
        offset = timedelta(0)
        if sign:
            offset = timedelta(hours=int(tz_h), minutes=int(tz_m or 0))
            offset = -offset if sign == "-" else offset
        stamp = datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
            int(second or 0), tzinfo=timezone(offset),
        )
    except ValueError:
        return value
    return stamp.isoformat()


def _password_message(ctx: ExtractContext) -> str:
    if ctx.passwords:
        return "password-protected PDF: none of the passwords given opens it"
    return "password-protected PDF: supply its password to open it"


def _looks_like(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    if not head:
        return "it is empty"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "it looks like an HTML page"
    if head.startswith(b"pk\x03\x04"):
        return "it looks like a zip archive"
    return "unknown content"


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 160 else text[:157] + "..."
