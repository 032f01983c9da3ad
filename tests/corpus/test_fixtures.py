"""The fixture generators produce what they claim, checked with independent readers.

PDFs are read back with pypdf and pypdfium2, mbox files with the stdlib mailbox + email
packages, DOCX with python-docx and raw zipfile/XML, logs with gzip/bz2/lzma.  Sizes are
small so the whole module runs in a few seconds.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import mailbox
import re
import zipfile
from collections import Counter
from collections.abc import Callable
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import docx
import pypdf
import pypdfium2 as pdfium
import pytest

from rlm_desktop.testing import fixtures as fx


def lines_of(text: str) -> list[str]:
    """Non-blank lines, whitespace-normalised: extractors drop blank lines and differ on
    runs of spaces and on \\r\\n vs \\n, none of which the generators promise."""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def pdfium_pages(path: Path | io.BytesIO, password: str | None = None) -> list[str]:
    doc = pdfium.PdfDocument(path, password=password)
    try:
        return [doc[i].get_textpage().get_text_range() for i in range(len(doc))]
    finally:
        doc.close()


# --------------------------------------------------------------------------- PDF

PAGES = [
    "Hello (world) with a back\\slash and ((nested)) parens\nSecond line",
    "Zoë Ærøskøbing, Jürgen Müller, Straße\n\nnaïve café 12.50 € — done",
    "",
    "\n".join(f"line {n} of a long page" for n in range(80)),  # taller than one Letter page
]


def test_text_pdf_round_trips_through_pdfium_and_pypdf(tmp_path: Path) -> None:
    path = tmp_path / "a.pdf"
    fx.write_text_pdf(path, PAGES, title="Zoë 李雷 (title)", author="Jürgen Müller")

    assert [lines_of(t) for t in pdfium_pages(path)] == [lines_of(p) for p in PAGES]
    reader = pypdf.PdfReader(path, strict=True)
    assert [lines_of(p.extract_text()) for p in reader.pages] == [lines_of(p) for p in PAGES]
    assert reader.metadata is not None
    assert reader.metadata.title == "Zoë 李雷 (title)"
    assert reader.metadata.author == "Jürgen Müller"


def test_text_pdf_xref_offsets_point_at_their_objects(tmp_path: Path) -> None:
    path = tmp_path / "a.pdf"
    fx.write_text_pdf(path, PAGES)
    data = path.read_bytes()
    startxref = int(data.rsplit(b"startxref", 1)[1].split()[0])
    assert data[startxref:].startswith(b"xref\n0 ")
    table = data[startxref:].split(b"trailer", 1)[0].split(b"\n", 2)[2]
    entries = [table[k : k + 20] for k in range(0, len(table), 20)]
    assert entries[0] == b"0000000000 65535 f \n"
    for number, entry in enumerate(entries[1:], start=1):
        assert entry.endswith(b" 00000 n \n")
        assert data[int(entry[:10]) :].startswith(b"%d 0 obj" % number)


def test_text_pdf_rejects_text_outside_winansi(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="WinAnsi"):
        fx.write_text_pdf(tmp_path / "a.pdf", ["李雷"])


@pytest.mark.parametrize("algorithm", ["AES-128", "AES-256"])
def test_encrypted_pdf_needs_the_user_password(tmp_path: Path, algorithm: Any) -> None:
    plain, locked = tmp_path / "plain.pdf", tmp_path / "locked.pdf"
    fx.write_text_pdf(plain, PAGES[:2])
    fx.write_encrypted_pdf(plain, locked, "user-pw", "owner-pw", algorithm=algorithm)

    with pytest.raises(pdfium.PdfiumError):
        pdfium.PdfDocument(locked)
    assert lines_of(pdfium_pages(locked, "user-pw")[1]) == lines_of(PAGES[1])
    reader = pypdf.PdfReader(locked)
    assert reader.is_encrypted
    assert reader.decrypt("wrong") == pypdf.PasswordType.NOT_DECRYPTED
    assert reader.decrypt("user-pw") != pypdf.PasswordType.NOT_DECRYPTED
    assert lines_of(reader.pages[0].extract_text()) == lines_of(PAGES[0])


def test_encrypted_pdf_with_empty_user_password_opens_without_one(tmp_path: Path) -> None:
    plain, locked = tmp_path / "plain.pdf", tmp_path / "locked.pdf"
    fx.write_text_pdf(plain, PAGES[:2])
    fx.write_encrypted_pdf(plain, locked, "", "owner-pw")

    assert lines_of(pdfium_pages(locked)[0]) == lines_of(PAGES[0])
    reader = pypdf.PdfReader(locked)
    assert reader.is_encrypted
    assert lines_of(reader.pages[1].extract_text()) == lines_of(PAGES[1])


def test_pdf_corpus_pages_carry_their_markers(tmp_path: Path) -> None:
    info = fx.make_pdf_corpus(tmp_path / "pdfs", files=3, pages_per_file=4, seed=5)

    assert info.total_pages == 12
    assert [p.name for p in info.paths] == ["doc-0000.pdf", "doc-0001.pdf", "doc-0002.pdf"]
    chars = 0
    for f, path in enumerate(info.paths):
        pages = pdfium_pages(path)
        assert len(pages) == 4
        for p, text in enumerate(pages, start=1):
            assert info.marker(f, p) in lines_of(text)
            assert 30 <= len(lines_of(text)) <= 45
            chars += len(text.replace("\r\n", "\n"))
        reader = pypdf.PdfReader(path)
        assert info.marker(f, 3) in reader.pages[2].extract_text()
    assert chars == info.total_chars
    assert 2000 <= info.total_chars / info.total_pages <= 3000


def test_pdf_corpus_is_deterministic(tmp_path: Path) -> None:
    a = fx.make_pdf_corpus(tmp_path / "a", files=1, pages_per_file=3, seed=1)
    b = fx.make_pdf_corpus(tmp_path / "b", files=1, pages_per_file=3, seed=1)
    c = fx.make_pdf_corpus(tmp_path / "c", files=1, pages_per_file=3, seed=2)
    assert a.paths[0].read_bytes() == b.paths[0].read_bytes()
    assert a.paths[0].read_bytes() != c.paths[0].read_bytes()


# --------------------------------------------------------------------------- mbox


def read_mbox(path: Path) -> list[EmailMessage]:
    box = mailbox.mbox(path, create=False)
    try:
        parser = BytesParser(policy=default)
        return [parser.parsebytes(box.get_bytes(key)) for key in box.iterkeys()]
    finally:
        box.close()


@pytest.fixture(scope="module")
def mbox(tmp_path_factory: pytest.TempPathFactory) -> tuple[fx.MboxInfo, list[EmailMessage]]:
    path = tmp_path_factory.mktemp("mbox") / "mail.mbox"
    info = fx.write_mbox(path, 120, seed=3)
    return info, read_mbox(path)


def test_mbox_message_count_senders_and_subjects(mbox: tuple[fx.MboxInfo, list[Any]]) -> None:
    info, msgs = mbox
    assert info.messages == len(msgs) == 120
    assert info.file_bytes == info.path.stat().st_size
    assert sum(info.kind_counts.values()) == 120
    senders = Counter(m["From"].addresses[0].addr_spec.lower() for m in msgs)
    assert senders == Counter(info.sender_counts)
    assert [str(m["Subject"]) for m in msgs] == info.subjects
    assert [m["Message-ID"] for m in msgs] == [info.message_id(i) for i in range(120)]
    assert all(not m.defects for m in msgs)


def test_mbox_encoded_words_decode(mbox: tuple[fx.MboxInfo, list[Any]]) -> None:
    info, msgs = mbox
    raw = info.path.read_text("ascii")  # every byte of the file is ASCII
    assert "=?UTF-8?B?" in raw
    assert "=?ISO-8859-1?Q?" in raw
    assert "=?UTF-8?Q?" in raw
    names = {m["From"].addresses[0].display_name for m in msgs}
    assert {"Zoë Ærøskøbing", "Jürgen Müller", "李雷", "Ana María Pérez", "O'Brien, Pat"} <= names
    encoded = [i for i, line in enumerate(re.findall(r"\nSubject: (.*)", raw)) if "=?" in line]
    assert encoded == info.encoded_subjects
    assert any(not s.isascii() for s in info.subjects)


def test_mbox_from_lines_and_escaping(mbox: tuple[fx.MboxInfo, list[Any]]) -> None:
    info, msgs = mbox
    raw = info.path.read_text("ascii")
    separators = re.findall(r"(?m)^From (\S+) (.*)$", raw)
    assert len(separators) == 120  # the escaped body lines did not start messages
    asctime = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ \d]\d [\d:]{8} \d{4}")
    assert all(asctime.fullmatch(when) for _, when in separators)
    bodies = [m.get_body(("plain", "html")).get_content() for m in msgs]
    escaped = [i for i, body in enumerate(bodies) if "\n>From " in "\n" + body]
    assert escaped == info.from_escaped
    assert escaped


def test_mbox_body_encodings_and_attachments(mbox: tuple[fx.MboxInfo, list[Any]]) -> None:
    info, msgs = mbox
    encodings = [{p["Content-Transfer-Encoding"] for p in m.walk()} for m in msgs]
    assert [i for i, e in enumerate(encodings) if "quoted-printable" in e] == info.quoted_printable
    assert [i for i, e in enumerate(encodings) if "base64" in e] == info.base64_encoded
    html_only = [i for i, m in enumerate(msgs) if m.get_content_type() == "text/html"]
    assert html_only == info.html_only
    for i in info.quoted_printable:  # the QP parts carry non-ASCII text
        qp = [p for p in msgs[i].walk() if p["Content-Transfer-Encoding"] == "quoted-printable"]
        assert all(not p.get_content().isascii() for p in qp)
    names = {i: [a.get_filename() for a in m.iter_attachments()] for i, m in enumerate(msgs)}
    assert {i: n for i, n in names.items() if n} == info.attachments
    assert [i for i in names if names[i]] == info.with_attachments
    assert info.invoice_lines
    for i, line in info.invoice_lines.items():
        (pdf,) = [a for a in msgs[i].iter_attachments() if a.get_filename().endswith(".pdf")]
        data = pdf.get_content()
        assert line in pypdf.PdfReader(io.BytesIO(data)).pages[0].extract_text()
        assert line in lines_of(pdfium_pages(io.BytesIO(data))[0])
    for i, files in info.attachments.items():
        (report,) = [a for a in msgs[i].iter_attachments() if a.get_filename() == files[0]]
        assert report.get_content().startswith(f"Report {i}\n")


def test_mbox_threads(mbox: tuple[fx.MboxInfo, list[Any]]) -> None:
    info, msgs = mbox
    replies = {i: m["In-Reply-To"] for i, m in enumerate(msgs) if m["In-Reply-To"]}
    assert replies == {i: info.message_id(p) for i, p in info.replies.items()}
    for i, parent in info.replies.items():
        assert parent < i
        assert str(msgs[i]["Subject"]) == "Re: " + str(msgs[parent]["Subject"]).removeprefix("Re: ")
    assert all(m["To"] for m in msgs)
    assert any(m["Cc"] for m in msgs)


def test_mbox_details_are_capped_but_counts_are_not(tmp_path: Path) -> None:
    info = fx.write_mbox(tmp_path / "m.mbox", 50, seed=0, detail_limit=20)
    msgs = read_mbox(tmp_path / "m.mbox")
    assert len(msgs) == info.messages == 50
    assert len(info.subjects) == 20
    assert all(i < 20 for i in info.quoted_printable + info.html_only + list(info.attachments))
    assert info.counts["quoted_printable"] == sum(
        any(p["Content-Transfer-Encoding"] == "quoted-printable" for p in m.walk()) for m in msgs
    )
    assert info.counts["with_attachments"] == sum(bool(list(m.iter_attachments())) for m in msgs)
    assert sum(info.sender_counts.values()) == 50


def test_mbox_target_bytes_and_determinism(tmp_path: Path) -> None:
    info = fx.write_mbox(tmp_path / "big.mbox", 1, seed=7, target_bytes=400_000)
    size = info.path.stat().st_size
    assert size == info.file_bytes >= 400_000
    assert size < 420_000  # stops right after crossing the target
    assert len(read_mbox(info.path)) == info.messages
    assert 2_000 <= size / info.messages <= 8_000  # "bodies of a few KB"
    again = fx.write_mbox(tmp_path / "again.mbox", 1, seed=7, target_bytes=400_000)
    assert again.path.read_bytes() == info.path.read_bytes()


# --------------------------------------------------------------------------- DOCX

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def test_docx_keeps_order_tables_header_and_footer(tmp_path: Path) -> None:
    path = tmp_path / "a.docx"
    body: list[fx.DocxBlock] = [
        "Intro paragraph",
        [["Name", "Amount"], ["Zoë", "12.50 €"]],
        "Between the tables",
        [["a", "b", "c"]],
        "Closing",
    ]
    fx.write_docx(path, body, header="Confidential", footer="Page footer", title="T", author="A")

    document = docx.Document(str(path))
    assert [p.text for p in document.paragraphs] == ["Intro paragraph", "Between the tables",
                                                     "Closing"]
    tables = [[[c.text for c in row.cells] for row in t.rows] for t in document.tables]
    assert tables == [body[1], body[3]]
    assert document.sections[0].header.paragraphs[0].text == "Confidential"
    assert document.sections[0].footer.paragraphs[0].text == "Page footer"
    assert (document.core_properties.title, document.core_properties.author) == ("T", "A")

    with zipfile.ZipFile(path) as zf:
        root = ElementTree.fromstring(zf.read("word/document.xml"))
        parts = {n: zf.read(n).decode() for n in zf.namelist() if n.startswith("word/")}
    order = [el.tag.removeprefix(W) for el in root.find(f"{W}body") or []]
    assert [t for t in order if t != "sectPr"] == ["p", "tbl", "p", "tbl", "p"]
    assert any("Confidential" in x for n, x in parts.items() if n.startswith("word/header"))
    assert any("Page footer" in x for n, x in parts.items() if n.startswith("word/footer"))


# --------------------------------------------------------------------------- logs

SYSLOG = re.compile(r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ [\w-]+(\[\d+\])?: .+")
FAILED = re.compile(r"Failed password for (?:invalid user )?\S+ from (\d+\.\d+\.\d+\.\d+) ")
OPENERS: dict[str | None, Callable[..., Any]] = {
    None: open, "gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open,
}


def check_log_text(text: str, info: fx.LogInfo) -> None:
    lines = text.splitlines()
    assert len(lines) == info.lines
    assert all(SYSLOG.fullmatch(line) for line in lines)
    assert sum("ERROR" in line for line in lines) == info.error_lines
    ips = Counter(m.group(1) for line in lines if (m := FAILED.search(line)))
    assert sum(ips.values()) == info.failed_password_lines
    assert ips == Counter(info.failed_password_by_ip)


@pytest.mark.parametrize("compress", [None, "gzip", "bz2", "xz"])
def test_log_counts_and_compression(tmp_path: Path, compress: Any) -> None:
    path = tmp_path / "x.log"
    info = fx.write_log(path, 3000, seed=4, compress=compress)
    with OPENERS[compress](path, "rb") as fh:
        data = fh.read()
    assert len(data) == info.uncompressed_bytes
    assert data.endswith(b"\n")
    assert b"\r" not in data
    check_log_text(data.decode("ascii"), info)
    assert info.error_lines > 0
    assert info.failed_password_lines > 0
    assert b"[error]" in data  # lower case, deliberately not counted as ERROR


def test_log_crlf_without_trailing_newline(tmp_path: Path) -> None:
    info = fx.write_log(tmp_path / "x.log", 500, seed=1, crlf=True, trailing_newline=False)
    data = (tmp_path / "x.log").read_bytes()
    assert len(data) == info.uncompressed_bytes
    assert not data.endswith(b"\n")
    assert data.count(b"\r\n") == data.count(b"\n") == 499
    check_log_text(data.decode("ascii"), info)


def test_log_is_deterministic(tmp_path: Path) -> None:
    fx.write_log(tmp_path / "a.log.gz", 800, seed=9, compress="gzip")
    fx.write_log(tmp_path / "b.log.gz", 800, seed=9, compress="gzip")
    fx.write_log(tmp_path / "c.log.gz", 800, seed=8, compress="gzip")
    a, b, c = (gzip.decompress((tmp_path / f"{n}.log.gz").read_bytes()) for n in "abc")
    assert a == b != c


def test_log_corpus_layout_and_totals(tmp_path: Path) -> None:
    info = fx.make_log_corpus(tmp_path / "logs", 600_000, gz_fraction=0.3, seed=2)
    names = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert names == sorted(f"{b}{s}" for b in ("syslog", "auth", "app", "kern")
                           for s in (".log", ".log.1", ".log.2.gz"))
    assert sorted(f.path.name for f in info.files) == names
    total = gz_total = 0
    for f in info.files:
        data = f.path.read_bytes()
        assert (f.compression == "gzip") == (f.path.suffix == ".gz")
        data = gzip.decompress(data) if f.compression else data
        assert len(data) == f.uncompressed_bytes
        check_log_text(data.decode("ascii"), f)
        total += len(data)
        gz_total += len(data) if f.compression else 0
    assert total == info.total_uncompressed_bytes
    assert gz_total == info.gz_uncompressed_bytes
    assert abs(total - 600_000) < 2_000
    assert abs(gz_total / total - 0.3) < 0.01
    assert info.error_lines == sum(f.error_lines for f in info.files) > 0
