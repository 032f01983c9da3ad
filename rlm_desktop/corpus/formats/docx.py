"""Word .docx: body paragraphs and tables in reading order, headers, footers, footnotes, comments.

The archive is checked (member count, declared sizes, compression ratio, no DTDs) before
python-docx opens it, so a zip bomb or an entity-expansion attack is refused up front.
Text is taken from the XML directly rather than through python-docx's paragraph objects so
that content controls, text boxes, form checkboxes and tracked insertions are not lost.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

from rlm_desktop.corpus.document import normalize_text
from rlm_desktop.corpus.errors import DamagedFile, LimitExceeded
from rlm_desktop.corpus.formats.base import ExtractContext, Part, Source

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
W14 = "{http://schemas.microsoft.com/office/word/2010/wordml}"
_P, _TBL, _TR, _TC = W + "p", W + "tbl", W + "tr", W + "tc"
_CONTAINERS = {W + "sdt", W + "sdtContent", W + "customXml", W + "smartTag", W + "ins"}
_RUN_TEXT = {W + "t": None, W + "tab": "\t", W + "br": "\n", W + "cr": "\n",
             W + "noBreakHyphen": "-", W + "softHyphen": ""}


def extract_docx(source: Source, ctx: ExtractContext) -> Iterator[Part]:
    data = source.read(ctx.limits.max_parsed_bytes)
    _check_archive(data, ctx)
    import docx
    from lxml import etree

    try:
        document = docx.Document(io.BytesIO(data))
        text, meta = _document_text(document)
    except etree.XMLSyntaxError as exc:
        reason = "its XML is nested too deeply" if "depth" in str(exc).lower() else str(exc)
        raise DamagedFile(f"damaged Word document: {reason}") from exc
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DamagedFile(f"damaged Word document: {exc}") from exc
    except Exception as exc:
        if type(exc).__name__ == "PackageNotFoundError":
            raise DamagedFile("not a Word document (no main document part)") from exc
        raise
    yield Part(name="", kind="docx", text=normalize_text(text), meta=meta)


def _check_archive(data: bytes, ctx: ExtractContext) -> None:
    limits = ctx.limits
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise DamagedFile("not a Word document: the file is not a .docx (zip) package") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_archive_members:
            raise LimitExceeded(f"the package has {len(infos):,} parts; refusing to open it")
        total = 0
        for info in infos:
            total += info.file_size
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > limits.ratio_floor_bytes and ratio > limits.max_compression_ratio:
                raise LimitExceeded(
                    f"{info.filename} expands {ratio:,.0f}:1 to "
                    f"{info.file_size / 2**20:,.0f} MiB (a decompression bomb?); refused"
                )
        if total > limits.max_decompressed_bytes:
            raise LimitExceeded(
                f"the package expands to {total / 2**20:,.0f} MiB, over the limit; refused"
            )
        for info in infos:
            if info.filename.endswith((".xml", ".rels")):
                with archive.open(info) as member:
                    if b"<!DOCTYPE" in member.read(4096).upper():
                        raise DamagedFile(
                            f"{info.filename} declares a DTD, which Word never writes "
                            "(an entity-expansion attack?); refused"
                        )


def _document_text(document: Any) -> tuple[str, dict[str, Any]]:
    stats = {"paragraphs": 0, "tables": 0}
    body = _blocks(document.element.body, stats)
    headers: list[str] = []
    footers: list[str] = []
    for section in document.sections:
        for attr, bucket in (
            ("first_page_header", headers), ("header", headers), ("even_page_header", headers),
            ("first_page_footer", footers), ("footer", footers), ("even_page_footer", footers),
        ):
            part = getattr(section, attr)
            if part.is_linked_to_previous:
                continue
            text = "\n".join(_blocks(part._element, {})).strip()
            if text and text not in bucket:
                bucket.append(text)
    notes = _notes(document)
    comments = _comments(document)
    sections = []
    if headers:
        sections.append("[Header]\n" + "\n".join(headers))
    sections.append("\n".join(body).strip("\n"))
    if footers:
        sections.append("[Footer]\n" + "\n".join(footers))
    if notes:
        sections.append("[Notes]\n" + "\n".join(notes))
    if comments:
        sections.append("[Comments]\n" + "\n".join(comments))
    props = document.core_properties
    meta: dict[str, Any] = {
        "title": props.title or None,
        "author": props.author or None,
        "last_modified_by": props.last_modified_by or None,
        "created": props.created.isoformat() if props.created else None,
        "modified": props.modified.isoformat() if props.modified else None,
        **stats,
        "comments": len(comments),
    }
    return "\n\n".join(s for s in sections if s) + "\n", {k: v for k, v in meta.items()
                                                           if v is not None}


def _blocks(container: Any, stats: dict[str, int]) -> list[str]:
    """Lines of a body, header, cell or note: paragraphs and tables in document order."""
    lines: list[str] = []
    stack = [iter(container)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            continue
        tag = child.tag
        if tag == _P:
            lines.append(_paragraph(child))
            stats["paragraphs"] = stats.get("paragraphs", 0) + 1
        elif tag == _TBL:
            stats["tables"] = stats.get("tables", 0) + 1
            for row in child.iterchildren(_TR):
                cells = [_cell(cell) for cell in row.iterchildren(_TC)]
                lines.append("\t".join(cells))
        elif tag in _CONTAINERS:
            stack.append(iter(child))
    return lines


def _cell(cell: Any) -> str:
    # A cell's paragraphs (and nested tables) become one TSV field.
    text = " ".join(line for line in _blocks(cell, {}) if line.strip())
    return " ".join(text.replace("\t", " ").split())


def _paragraph(paragraph: Any) -> str:
    out: list[str] = []
    for node in paragraph.iter():
        tag = node.tag
        if tag in _RUN_TEXT:
            replacement = _RUN_TEXT[tag]
            out.append(node.text or "" if replacement is None else replacement)
        elif tag == W14 + "checkbox" or tag == W + "checkBox":
            out.append("☒ " if _checked(node) else "☐ ")
    return "".join(out)


def _checked(box: Any) -> bool:
    for node in box.iter(W14 + "checked", W + "checked", W + "default"):
        value = node.get(W14 + "val") or node.get(W + "val") or "1"
        if value in ("1", "true", "on"):
            return True
    return False


def _notes(document: Any) -> list[str]:
    """Footnote and endnote texts (ids 0 and -1 are Word's separator notes)."""
    from lxml import etree

    notes: list[str] = []
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    for part in document.part.package.iter_parts():
        name = str(part.partname)
        if name.endswith(("/footnotes.xml", "/endnotes.xml")):
            root = etree.fromstring(part.blob, parser)
            for note in root:
                if int(note.get(W + "id", "0")) > 0:
                    text = " ".join(line for line in _blocks(note, {}) if line.strip()).strip()
                    if text:
                        notes.append(f"[{note.get(W + 'id')}] {text}")
    return notes


def _comments(document: Any) -> list[str]:
    try:
        comments = list(document.comments)
    except (AttributeError, KeyError, ValueError):
        return []
    out = []
    for comment in comments:
        text = " ".join(" ".join(_blocks(comment._element, {})).split())
        author = getattr(comment, "author", "") or "unknown"
        if text:
            out.append(f"{author}: {text}")
    return out
