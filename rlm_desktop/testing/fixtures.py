"""Deterministic generators of test and benchmark inputs (PDF, mbox, DOCX, logs).

Nothing here is committed as a binary fixture: every input is produced in code from a
seed, so a test states exactly what it feeds the ingester and a benchmark can ask for
200 MB of mail without a 200 MB file in the repository.  The same seed always gives the
same bytes (except DOCX, whose zip container carries python-docx's own metadata).

Each generator streams to disk in large buffered writes and keeps only bounded
bookkeeping in memory, and each returns (or is given) a description of what it wrote,
so tests assert against that description instead of re-deriving it.
"""

# ruff: noqa: S311  (seeded PRNGs are the point here: reproducible data, not secrets)
from __future__ import annotations

import base64
import binascii
import bz2
import gzip
import hashlib
import io
import lzma
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Literal

import docx
from pypdf import PdfWriter

StrPath = str | os.PathLike[str]
Compression = Literal["gzip", "bz2", "xz"]
DocxBlock = str | Sequence[Sequence[str]]  # a paragraph, or a table given as rows of cells


__all__ = [
    "DETAIL_LIMIT", "LogCorpusInfo", "LogInfo", "MboxInfo", "PdfCorpusInfo", "make_log_corpus",
    "make_pdf_corpus", "write_docx", "write_encrypted_pdf", "write_log", "write_mbox",
    "write_text_pdf",
]

# Word-like text with no "from"/"From": a body line starting with "From " must only ever
# appear where write_mbox puts one on purpose (and escapes it).
_VOCABULARY = """
    agreement amendment annex appeal approval arbitration audit balance board breach budget
    clause client closing committee compliance consent contract counsel court creditor damages
    deadline debtor deed default deposition director disclosure dispute dividend draft due
    diligence escrow estate evidence exhibit filing fiduciary forecast governance guarantee
    hearing indemnity injunction invoice jurisdiction lease ledger liability licence litigation
    memorandum merger motion negotiation notice obligation option payment penalty petition
    pleading policy premium principal proceeds quarter ratio receivable record regulator release
    remedy report revenue review schedule settlement shareholder statement statute subpoena
    subsidiary summary tax tenant term testimony transfer trust trustee valuation vendor venue
    verdict waiver warranty witness the of and to in for with on by under per shall may must
    will not any all each such other within without upon after before"""
_WORDS = tuple(_VOCABULARY.split())
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EPOCH = datetime(1970, 1, 1)  # naive: arithmetic on it is cheaper than aware datetimes
_START = 1_672_650_000  # 2023-01-02 09:00 UTC, the first timestamp of every generated corpus
_FLUSH = 8 << 20  # bytes of text gathered before one write() call


def _line_pool(rng: random.Random, count: int, width: int) -> list[str]:
    """Lines of word-like text about `width` characters long.

    Generators draw whole lines from a pool instead of words from the vocabulary, which is
    what makes hundreds of megabytes of text cheap; the pool is large enough that pages and
    bodies do not visibly repeat.
    """
    pool: list[str] = []
    for _ in range(count):
        words: list[str] = []
        n = 0
        while n < width:
            w = str(rng.randint(1, 99_999)) if rng.random() < 0.04 else rng.choice(_WORDS)
            words.append(w)
            n += len(w) + 1
        line = " ".join(words)
        pool.append(line[0].upper() + line[1:] + ".")
    return pool


# --------------------------------------------------------------------------- PDF

_PDF_LEADING = 14  # points between baselines
_PDF_MARGIN = 72


def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsiEncoding (cp1252 matches it for every defined code)."""
    try:
        raw = text.encode("cp1252")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not representable in WinAnsiEncoding: {text!r}") from exc
    raw = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    return b"(" + raw.replace(b"\r", b"\\r") + b")"


def _pdf_text_string(text: str) -> bytes:
    """A PDF *text string* for /Info: UTF-16BE with BOM handles any title or author."""
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode("ascii") + b">"


def _page_content(text: str) -> tuple[bytes, int]:
    """Content stream drawing `text` line by line, and the page height it needs.

    Pages grow taller instead of overflowing, so callers may pass any number of lines.
    """
    lines = text.split("\n")
    height = max(792, 2 * _PDF_MARGIN + len(lines) * _PDF_LEADING)
    ops = [b"BT\n/F1 10 Tf\n%d TL\n%d %d Td\n" % (_PDF_LEADING, _PDF_MARGIN, height - _PDF_MARGIN)]
    for k, line in enumerate(lines):
        if k:
            ops.append(b"T*\n")  # next line: moves down by TL, so extractors see a line break
        if line.rstrip("\r"):
            ops.append(_pdf_string(line.rstrip("\r")) + b" Tj\n")
    ops.append(b"ET\n")
    return b"".join(ops), height


def _write_pdf(fh: BinaryIO, pages: Sequence[str], title: str | None, author: str | None) -> None:
    """Write a PDF 1.4 file by hand: catalog, page tree, one font, info, page+content pairs.
    Object numbers are fixed in advance (page k is 5+2k, its content 6+2k) so the page tree
    can be written first and pages streamed afterwards in a single pass.
    """
    offsets: list[int] = []
    pos = 0
    digest = hashlib.md5(usedforsecurity=False)  # only for a deterministic trailer /ID

    def put(data: bytes) -> None:
        nonlocal pos
        fh.write(data)
        pos += len(data)

    def obj(body: bytes) -> None:
        offsets.append(pos)
        put(b"%d 0 obj\n%b\nendobj\n" % (len(offsets), body))

    put(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")  # binary comment: marks the file as 8-bit data
    obj(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = b" ".join(b"%d 0 R" % (5 + 2 * k) for k in range(len(pages)))
    obj(b"<< /Type /Pages /Kids [%b] /Count %d >>" % (kids, len(pages)))
    obj(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    info = b"/Producer (rlm_desktop.testing.fixtures)"
    if title is not None:
        info += b" /Title " + _pdf_text_string(title)
    if author is not None:
        info += b" /Author " + _pdf_text_string(author)
    obj(b"<< " + info + b" >>")
    for text in pages:
        content, height = _page_content(text)
        digest.update(content)
        obj(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 %d] /Resources << /Font << /F1 3 0 R"
            b" >> >> /Contents %d 0 R >>" % (height, len(offsets) + 2)
        )
        obj(b"<< /Length %d >>\nstream\n%b\nendstream" % (len(content), content))
    xref = pos
    # Each xref entry is exactly 20 bytes: 10-digit offset, 5-digit generation, type, " \n".
    entries = [b"0000000000 65535 f \n"] + [b"%010d 00000 n \n" % off for off in offsets]
    doc_id = digest.hexdigest().upper().encode("ascii")
    put(b"xref\n0 %d\n%b" % (len(entries), b"".join(entries)))
    put(
        b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R /ID [<%b> <%b>] >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(entries), doc_id, doc_id, xref)
    )


def _pdf_bytes(pages: Sequence[str], title: str | None = None) -> bytes:
    buf = io.BytesIO()
    _write_pdf(buf, pages, title, None)
    return buf.getvalue()


def write_text_pdf(
    path: StrPath, pages: Sequence[str], *, title: str | None = None, author: str | None = None
) -> None:
    """One page per string, one text line per "\\n"-separated line, Helvetica/WinAnsi.

    Characters outside Windows-1252 (e.g. CJK) raise ValueError rather than turning into
    "?", because a test would then silently compare against the wrong text.
    """
    with open(path, "wb", buffering=1 << 20) as fh:
        _write_pdf(fh, pages, title, author)


def write_encrypted_pdf(
    src: StrPath, dst: StrPath, user_password: str, owner_password: str, *,
    algorithm: Literal["AES-128", "AES-256"] = "AES-256",
) -> None:
    """Re-save `src` encrypted with pypdf.  With user_password="" the file opens without a
    password but is still marked encrypted (the common "owner-password only" case)."""
    writer = PdfWriter(clone_from=Path(src))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm=algorithm)
    with open(dst, "wb") as fh:
        writer.write(fh)


@dataclass(frozen=True)
class PdfCorpusInfo:
    directory: Path
    paths: list[Path]  # file k is paths[k]; its markers use "file k"
    pages_per_file: int
    total_pages: int
    total_chars: int  # characters of page text (marker and newlines included)

    @staticmethod
    def marker(file_index: int, page_number: int) -> str:
        """The marker line on page `page_number` (1-based) of file `file_index` (0-based)."""
        return f"PAGE-MARKER file {file_index} page {page_number}"


def make_pdf_corpus(
    directory: StrPath, files: int, pages_per_file: int, seed: int = 0
) -> PdfCorpusInfo:
    """`files` PDFs of `pages_per_file` text-heavy pages (~40 lines, ~2,500 characters).

    Each page carries its marker line at a seeded position, so a search for it proves the
    right page of the right file was extracted.
    """
    rng = random.Random(seed)
    pool = _line_pool(random.Random(seed + 1), 1024, 58)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    chars = 0
    for f in range(files):
        texts: list[str] = []
        for p in range(1, pages_per_file + 1):
            lines = rng.choices(pool, k=39)
            lines.insert(rng.randrange(40), PdfCorpusInfo.marker(f, p))
            texts.append("\n".join(lines))
            chars += len(texts[-1])
        path = out / f"doc-{f:04d}.pdf"
        write_text_pdf(path, texts, title=f"Benchmark document {f}", author="RLM fixtures")
        paths.append(path)
    return PdfCorpusInfo(out, paths, pages_per_file, files * pages_per_file, chars)


# --------------------------------------------------------------------------- mbox

DETAIL_LIMIT = 1000  # per-message details are kept for this many messages; counts for all

# (display name, address as written, how the From header spells the name)
_SENDERS = (
    ("Alice Example", "alice@example.com", "plain"),
    ("Bob Smith", "Bob.Smith@Example.org", "plain"),  # mixed case: counts use lower case
    ("O'Brien, Pat", "pat.obrien@example.net", "quoted"),  # comma needs a quoted-string
    ("Zoë Ærøskøbing", "zoe@aeroskobing.example", "utf8-b"),
    ("Jürgen Müller", "juergen.mueller@example.de", "latin1-q"),
    ("李雷", "li.lei@example.cn", "utf8-b"),
    ("Ana María Pérez", "ana.perez@example.es", "utf8-q"),
    ("", "noreply@alerts.example", "bare"),
)
_SENDER_CUM = tuple(sum((5, 4, 2, 3, 3, 2, 2, 1)[: k + 1]) for k in range(len(_SENDERS)))
_TZ = ("+0000", "-0500", "+0100", "+0100", "+0100", "+0800", "+0100", "+0000")  # per sender
_SUBJECTS = (
    "Quarterly report", "Meeting notes for Thursday", "Contract draft v2", "Settlement figures",
    "Grüße aus München", "Café budget — Q3", "Überweisung bestätigt", "会议纪要",
    "Zoë's Ærøskøbing trip", "Deposition schedule", "Invoice query", "Smörgåsbord à la carte",
)
_UNICODE_LINES = (
    "Grüße aus Köln: naïve café, crème brûlée, 15 € pro Person.",
    "Zoë Ærøskøbing wrote — «Smörgåsbord» is booked for Friday.",
    "李雷 says 你好 to 韩梅梅; Jürgen Müller agrees.",
)
# Most plain-text, some of everything else; by position so the mix is easy to reason about.
_KIND_CYCLE = ("plain", "qp", "plain", "html", "alt", "mixed", "plain", "qp", "alt", "mixed")


def _encoded_words(text: str, charset: str, mode: Literal["B", "Q"]) -> str:
    """RFC 2047 encoded words, split so none exceeds 75 characters, folded onto new lines."""
    prefix = f"=?{charset.upper()}?{mode}?"
    budget = 75 - len(prefix) - 2
    chunks: list[bytes] = []
    chunk, used = b"", 0
    for ch in text:
        data = ch.encode(charset)
        if mode == "B":  # base64 length of the chunk so far plus this character
            cost = -(-(len(chunk) + len(data)) // 3) * 4 - used
        else:
            cost = sum(1 if (chr(b).isalnum() and b < 128) or b == 32 else 3 for b in data)
        if chunk and used + cost > budget:
            chunks.append(chunk)
            chunk, used = b"", 0
            cost = -(-len(data) // 3) * 4 if mode == "B" else cost
        chunk += data
        used += cost
    chunks.append(chunk)

    def enc(raw: bytes) -> str:
        if mode == "B":
            return base64.b64encode(raw).decode("ascii")
        return "".join(
            "_" if b == 32 else chr(b) if chr(b).isalnum() and b < 128 else f"={b:02X}" for b in raw
        )

    return "\n ".join(prefix + enc(c) + "?=" for c in chunks)


def _sender_header(name: str, addr: str, style: str) -> str:
    if style == "bare":
        return addr
    if style == "quoted":
        return f'"{name}" <{addr}>'
    if style == "plain":
        return f"{name} <{addr}>"
    if style == "utf8-b":
        return f"{_encoded_words(name, 'utf-8', 'B')} <{addr}>"
    charset = "utf-8" if style == "utf8-q" else "iso-8859-1"
    return f"{_encoded_words(name, charset, 'Q')} <{addr}>"


_SENDER_HEADERS = tuple(_sender_header(*s) for s in _SENDERS)


def _subject_header(base: int, variant: int) -> str:
    """Header spelling of subject `base`: ASCII as is; Latin-1 text alternates between
    ISO-8859-1 Q and UTF-8 B encoded words; anything else is UTF-8 B."""
    text = _SUBJECTS[base]
    if text.isascii():
        return text
    if variant or any(ord(ch) > 255 for ch in text):
        return _encoded_words(text, "utf-8", "B")
    return _encoded_words(text, "iso-8859-1", "Q")


_SUBJECT_HEADERS = {(b, v): _subject_header(b, v) for b in range(len(_SUBJECTS)) for v in (0, 1)}


def _dates(sec: int, tz: str) -> tuple[str, str]:
    """(asctime in UTC for the "From " line, RFC 5322 Date in the sender's zone)."""
    d = _EPOCH + timedelta(seconds=sec)
    asctime = f"{_DAYS[d.weekday()]} {_MONTHS[d.month - 1]} {d.day:2d} {d:%H:%M:%S} {d.year}"
    off = (1 if tz[0] == "+" else -1) * (int(tz[1:3]) * 3600 + int(tz[3:]) * 60)
    d += timedelta(seconds=off)
    date = f"{_DAYS[d.weekday()]}, {d.day} {_MONTHS[d.month - 1]} {d.year} {d:%H:%M:%S} {tz}"
    return asctime, date


def _message_id(index: int, seed: int) -> str:
    return f"<m{index}.s{seed}@fixtures.rlm.example>"


@dataclass
class MboxInfo:
    """What write_mbox wrote.  Lists and dicts keyed by message index (0-based, file order)
    only cover indexes below `detail_limit`; `counts` and `sender_counts` cover all."""

    path: Path
    seed: int
    detail_limit: int
    messages: int = 0
    file_bytes: int = 0
    sender_counts: dict[str, int] = field(default_factory=dict)  # lower-case address -> n
    kind_counts: dict[str, int] = field(default_factory=dict)  # plain/qp/html/alt/mixed -> n
    counts: dict[str, int] = field(default_factory=dict)  # totals of the index lists below
    subjects: list[str] = field(default_factory=list)  # decoded
    encoded_subjects: list[int] = field(default_factory=list)  # RFC 2047 in the header
    html_only: list[int] = field(default_factory=list)
    quoted_printable: list[int] = field(default_factory=list)  # some part is QP
    base64_encoded: list[int] = field(default_factory=list)  # some part is base64
    with_attachments: list[int] = field(default_factory=list)
    from_escaped: list[int] = field(default_factory=list)  # body has ">From " lines
    attachments: dict[int, list[str]] = field(default_factory=dict)  # index -> file names
    invoice_lines: dict[int, str] = field(default_factory=dict)  # index -> text in its PDF
    replies: dict[int, int] = field(default_factory=dict)  # index -> parent index

    def message_id(self, index: int) -> str:
        return _message_id(index, self.seed)

    def _mark(self, name: str, index: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1
        if index < self.detail_limit:
            getattr(self, name).append(index)


def _part(ctype: str, cte: str, body: str, filename: str | None = None) -> str:
    head = f"Content-Type: {ctype}"
    if filename:
        head += f'; name="{filename}"\nContent-Disposition: attachment; filename="{filename}"'
    return f"{head}\nContent-Transfer-Encoding: {cte}\n\n{body}"


def _multipart(subtype: str, boundary: str, parts: Sequence[str]) -> str:
    inner = "".join(f"--{boundary}\n{p}" for p in parts)
    return (
        f'Content-Type: multipart/{subtype}; boundary="{boundary}"\n\n'
        f"This is a multi-part message in MIME format.\n\n{inner}--{boundary}--\n"
    )


def write_mbox(
    path: StrPath, messages: int, *, seed: int = 0, target_bytes: int | None = None,
    detail_limit: int = DETAIL_LIMIT,
) -> MboxInfo:
    """An mboxo file of `messages` messages; with `target_bytes`, messages (with bodies of a
    few KB) keep coming until the file is at least that large.

    Messages are assembled as text rather than with the email package: it is ~20x faster,
    and it lets the file contain exactly the encodings we claim (the email package picks
    its own).  Kinds follow _KIND_CYCLE by index; every third message replies to a recent
    one; every plain message at an index divisible by 7 has escaped "From " body lines.
    """
    rng = random.Random(seed)
    pool = _line_pool(random.Random(seed + 1), 512, 66)
    pool2 = pool + pool  # any slice pool2[k:k+n] with k < len(pool) is n lines, no wrap-around
    lo, hi = (30, 70) if target_bytes is not None else (3, 12)
    info = MboxInfo(Path(path), seed, detail_limit)
    recent: list[tuple[int, int, int, int]] = []  # (index, subject, thread number, sender)
    sec = _START
    buf: list[str] = []
    buffered = 0
    senders = range(len(_SENDERS))
    with open(path, "wb") as fh:
        i = 0
        while i < messages or (target_bytes is not None and info.file_bytes < target_bytes):
            kind = _KIND_CYCLE[i % len(_KIND_CYCLE)]
            info.kind_counts[kind] = info.kind_counts.get(kind, 0) + 1
            s = rng.choices(senders, cum_weights=_SENDER_CUM)[0]
            addr = _SENDERS[s][1]
            info.sender_counts[addr.lower()] = info.sender_counts.get(addr.lower(), 0) + 1
            sec += rng.randint(60, 5400)
            asctime, date = _dates(sec, _TZ[s])
            parent = recent[rng.randrange(len(recent))] if recent and i % 3 == 2 else None
            if parent:
                subj, number, to = parent[1], parent[2], parent[3]  # answer the parent's sender
            else:
                subj, number = rng.randrange(len(_SUBJECTS)), i
                to = (s + 1 + rng.randrange(len(_SENDERS) - 1)) % len(_SENDERS)
            head = _SUBJECT_HEADERS[(subj, i & 1)]
            subject = f"{'Re: ' if parent else ''}{head} #{number}"
            headers = [f"From {addr} {asctime}", f"From: {_SENDER_HEADERS[s]}",
                       f"To: {_SENDER_HEADERS[to]}"]
            if i % 4 == 1:
                cc = next(c for c in ((to + k) % len(_SENDERS) for k in (1, 2)) if c != s)
                headers.append(f"Cc: {_SENDER_HEADERS[cc]}")
            headers += [f"Subject: {subject}", f"Date: {date}", f"Message-ID: {info.message_id(i)}"]
            if parent:
                pid = info.message_id(parent[0])
                headers += [f"In-Reply-To: {pid}", f"References: {pid}"]
                info.counts["replies"] = info.counts.get("replies", 0) + 1
                if i < detail_limit:
                    info.replies[i] = parent[0]
            headers.append("MIME-Version: 1.0\n")
            if "=?" in head:
                info._mark("encoded_subjects", i)
            if i < detail_limit:
                info.subjects.append(f"{'Re: ' if parent else ''}{_SUBJECTS[subj]} #{number}")
            k = rng.randrange(len(pool))
            text = "\n".join(pool2[k : k + rng.randint(lo, hi)]) + "\n"
            if kind == "plain":
                if i % 7 == 0:  # mboxo: body lines starting "From " are written as ">From "
                    text = f">From the desk of the legal team:\n{text}>From now on, reply-all.\n"
                    info._mark("from_escaped", i)
                body = _part("text/plain; charset=us-ascii", "7bit", text)
            elif kind == "qp":
                raw = f"{_UNICODE_LINES[i % 3]}\n{text}".encode()
                body = _part("text/plain; charset=utf-8", "quoted-printable",
                             binascii.b2a_qp(raw).decode("ascii"))
                info._mark("quoted_printable", i)
            else:
                paras = "".join(f"<p>{line}</p>\n" for line in text.splitlines())
                html = f"<html><body>\n{paras}<p>Café &amp; crème</p>\n</body></html>\n".encode()
                if kind == "html":
                    body = _part("text/html; charset=utf-8", "base64",
                                 base64.encodebytes(html).decode("ascii"))
                    info._mark("html_only", i)
                    info._mark("base64_encoded", i)
                elif kind == "alt":
                    body = _multipart("alternative", f"=_alt{i}", [
                        _part("text/plain; charset=us-ascii", "7bit", text),
                        _part("text/html; charset=utf-8", "quoted-printable",
                              binascii.b2a_qp(html).decode("ascii")),
                    ])
                    info._mark("quoted_printable", i)
                else:
                    names = [f"report-{i}.txt"]
                    report = f"Report {i}\n{pool[k]}\n{pool[k - 1]}\n".encode()
                    parts = [_part("text/plain; charset=us-ascii", "7bit", text),
                             _part("text/plain; charset=utf-8", "base64",
                                   base64.encodebytes(report).decode("ascii"), names[0])]
                    if (i // len(_KIND_CYCLE)) % 2 == 0:  # "sometimes" an invoice PDF too
                        line = f"Invoice {i} total {i * 7919 % 100_000 / 100:.2f} EUR"
                        pdf = _pdf_bytes([f"ACME Legal Services\n{line}\nPayable within 30 days"])
                        names.append(f"invoice-{i}.pdf")
                        parts.append(_part("application/pdf", "base64",
                                           base64.encodebytes(pdf).decode("ascii"), names[1]))
                        info.counts["pdf_attachments"] = info.counts.get("pdf_attachments", 0) + 1
                        if i < detail_limit:
                            info.invoice_lines[i] = line
                    body = _multipart("mixed", f"=_mix{i}", parts)
                    info._mark("with_attachments", i)
                    info._mark("base64_encoded", i)
                    if i < detail_limit:
                        info.attachments[i] = names
            msg = "\n".join(headers) + body + "\n"  # blank line before the next "From "
            buf.append(msg)
            buffered += len(msg)  # all ASCII, so characters == bytes
            info.file_bytes += len(msg)
            if buffered >= _FLUSH:
                fh.write("".join(buf).encode("ascii"))
                buf, buffered = [], 0
            recent.append((i, subj, number, s))
            if len(recent) > 16:
                del recent[0]
            i += 1
        fh.write("".join(buf).encode("ascii"))
    info.messages = i
    return info


# --------------------------------------------------------------------------- DOCX


def write_docx(
    path: StrPath, body: Sequence[DocxBlock], *, header: str | None = None,
    footer: str | None = None, title: str | None = None, author: str | None = None,
) -> None:
    """A DOCX whose body is `body` in order: a str is a paragraph ("\\n" becomes a line
    break), a sequence of rows is a table.  Header/footer go on the only section."""
    document = docx.Document()
    for block in body:
        if isinstance(block, str):
            document.add_paragraph(block)
            continue
        rows = [list(row) for row in block]
        cols = max((len(row) for row in rows), default=0)
        if not cols:
            raise ValueError("a table needs at least one cell")
        table = document.add_table(rows=len(rows), cols=cols)
        for r, row in enumerate(rows):
            cells = table.rows[r].cells
            for c, text in enumerate(row):
                cells[c].text = text
    section = document.sections[0]
    if header is not None:
        section.header.paragraphs[0].text = header
    if footer is not None:
        section.footer.paragraphs[0].text = footer
    if title is not None:
        document.core_properties.title = title
    if author is not None:
        document.core_properties.author = author
    document.save(os.fspath(path))


# --------------------------------------------------------------------------- logs

_HOSTS = ("web01", "web02", "db01", "mail01", "gw")
_USERS = ("root", "admin", "oracle", "deploy", "test", "ubuntu")
_IPS = ("203.0.113.7", "198.51.100.23", "192.0.2.145", "203.0.113.200", "198.51.100.4")
_ERRORS = ("database connection lost", "payment gateway timeout", "disk quota exceeded")


@dataclass(frozen=True)
class LogInfo:
    """What a log file holds.  Marker counts are per line and case-sensitive: lines with
    a lower-case "[error]" exist and are deliberately not counted as "ERROR"."""

    path: Path
    lines: int
    uncompressed_bytes: int
    error_lines: int  # lines containing "ERROR"
    failed_password_lines: int  # lines "... Failed password for [invalid user ]U from IP ..."
    failed_password_by_ip: dict[str, int]
    compression: Compression | None


def _log_templates(rng: random.Random, count: int) -> list[tuple[str, bool, str]]:
    """Everything after the timestamp, with (contains ERROR, failed-password IP or "")."""
    out: list[tuple[str, bool, str]] = []
    for _ in range(count):
        r, host, pid = rng.random(), rng.choice(_HOSTS), rng.randint(200, 65_000)
        ip, user, port = rng.choice(_IPS), rng.choice(_USERS), rng.randint(1024, 65_535)
        if r < 0.10:
            who = f"invalid user {user}" if rng.random() < 0.5 else user
            text = f"sshd[{pid}]: Failed password for {who} from {ip} port {port} ssh2"
            out.append((f"{host} {text}", False, ip))
            continue
        if r < 0.18:
            code = rng.randint(1, 99)
            text = f"app[{pid}]: ERROR {rng.choice(_ERRORS)} (code {code})"
        elif r < 0.23:
            text = f"nginx[{pid}]: [error] upstream timed out while reading response header"
        elif r < 0.30:
            text = f"sshd[{pid}]: Accepted publickey for {user} from {ip} port {port} ssh2"
        elif r < 0.38:
            text = f"CRON[{pid}]: ({user}) CMD (/usr/local/bin/backup --incremental)"
        elif r < 0.45:
            text = f"kernel: [{rng.uniform(1, 99_999):11.6f}] eth0: link up, 1000Mbps, full-duplex"
        else:
            path = rng.choice(("/api/cases", "/api/docs/42", "/login", "/health"))
            text = f"app[{pid}]: INFO GET {path} 200 {rng.randint(1, 900)}ms"
        out.append((f"{host} {text}", "ERROR" in text, ""))
    return out


def _open_out(
    path: StrPath, compress: Compression | None
) -> BinaryIO | gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile:
    if compress is None:
        return open(path, "wb", buffering=1 << 20)  # the caller closes it
    if compress == "gzip":  # mtime=0 keeps the bytes identical from run to run
        return gzip.GzipFile(path, "wb", compresslevel=6, mtime=0)
    if compress == "bz2":
        return bz2.BZ2File(path, "wb")
    return lzma.LZMAFile(path, "wb", preset=1)  # low preset: xz is otherwise very slow


def _emit_log(
    path: StrPath, templates: list[tuple[str, bool, str]], *, start: int, offset: int,
    lines: int | None, max_bytes: int | None, compress: Compression | None,
    eol: str = "\n", trailing_newline: bool = True,
) -> tuple[LogInfo, int]:
    """Write lines templates[offset], templates[offset+1], ... (cycling), one every ~0.75 s
    from `start`, until `lines` lines or `max_bytes` bytes.  Returns the info and the last
    timestamp.  The per-line work is a lookup and a concatenation: 100 MB takes ~1 s."""
    n_t = len(templates)
    sizes = [16 + len(t[0]) + len(eol) for t in templates]  # "Mmm dd HH:MM:SS " + text + eol
    buf: list[str] = []
    k = total = 0
    day, prefix, sec = -1, "", start
    with _open_out(path, compress) as fh:
        while (lines is None or k < lines) and (max_bytes is None or total < max_bytes):
            j = (k + offset) % n_t
            sec = start + (k * 3 >> 2)
            d, rem = divmod(sec, 86_400)
            if d != day:
                day, when = d, _EPOCH + timedelta(days=d)
                prefix = f"{_MONTHS[when.month - 1]} {when.day:2d} "
            h, rem = divmod(rem, 3600)
            buf.append(f"{eol if k else ''}{prefix}{h:02d}:{rem // 60:02d}:{rem % 60:02d} ")
            buf.append(templates[j][0])
            total += sizes[j]
            k += 1
            if len(buf) >= 32_768:
                fh.write("".join(buf).encode("ascii"))
                buf = []
        if k and trailing_newline:
            buf.append(eol)
        else:
            total -= len(eol) if k else 0
        fh.write("".join(buf).encode("ascii"))
    # Template j was used k // n_t times, plus once more if it fell in the partial cycle.
    errors = failed = 0
    by_ip: dict[str, int] = {}
    for j, (_, is_error, ip) in enumerate(templates):
        uses = k // n_t + ((j - offset) % n_t < k % n_t)
        errors += uses * is_error
        if ip and uses:
            failed += uses
            by_ip[ip] = by_ip.get(ip, 0) + uses
    return LogInfo(Path(path), k, total, errors, failed, by_ip, compress), sec


def write_log(
    path: StrPath, lines: int, *, seed: int = 0, compress: Compression | None = None,
    crlf: bool = False, trailing_newline: bool = True,
) -> LogInfo:
    """A syslog-style file: "Jan  2 09:00:00 host proc[pid]: message" lines."""
    templates = _log_templates(random.Random(seed), max(1, min(lines, 4096)))
    info, _ = _emit_log(path, templates, start=_START, offset=0, lines=lines, max_bytes=None,
                        compress=compress, eol="\r\n" if crlf else "\n",
                        trailing_newline=trailing_newline)
    return info


@dataclass(frozen=True)
class LogCorpusInfo:
    directory: Path
    files: list[LogInfo]  # uncompressed_bytes of .gz files is their decompressed size
    total_uncompressed_bytes: int
    gz_uncompressed_bytes: int
    error_lines: int
    failed_password_lines: int


def make_log_corpus(
    directory: StrPath, total_bytes: int, gz_fraction: float = 0.3, seed: int = 0
) -> LogCorpusInfo:
    """A folder like /var/log: for each of syslog, auth, app, kern a NAME.log.2.gz, NAME.log.1
    and NAME.log, oldest first and continuing in time, about `total_bytes` uncompressed in
    all, `gz_fraction` of it in the .gz files.  One template block is generated and each
    file reads it from its own offset with its own timestamps."""
    rng = random.Random(seed)
    templates = _log_templates(rng, 4096)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    weights = {"syslog": 0.4, "auth": 0.3, "app": 0.2, "kern": 0.1}
    files: list[LogInfo] = []
    for name, weight in weights.items():
        start = _START
        share = total_bytes * weight
        for suffix, size in (
            (".log.2.gz", share * gz_fraction),
            (".log.1", share * (1 - gz_fraction) / 2),
            (".log", share * (1 - gz_fraction) / 2),
        ):
            info, last = _emit_log(out / f"{name}{suffix}", templates, start=start,
                                   offset=rng.randrange(len(templates)), lines=None,
                                   max_bytes=round(size),
                                   compress="gzip" if suffix.endswith(".gz") else None)
            files.append(info)
            start = last + 1
    return LogCorpusInfo(
        out, files, sum(f.uncompressed_bytes for f in files),
        sum(f.uncompressed_bytes for f in files if f.compression),
        sum(f.error_lines for f in files), sum(f.failed_password_lines for f in files),
    )
