"""Format loaders against the real files in ../shared/corpus (facts from its FACTS.md) and
against inputs generated in code with known content."""

from __future__ import annotations

import bz2
import collections
import gzip
import lzma
import re
import zipfile
from email.utils import parseaddr
from pathlib import Path

import pytest

from rlm_desktop.corpus.errors import (
    DamagedFile,
    EmptyFile,
    ExtractionError,
    LimitExceeded,
    PasswordRequired,
    UnsupportedFormat,
)
from rlm_desktop.corpus.formats import ExtractContext, Source, detect, extract
from rlm_desktop.corpus.formats.archive import safe_member_name
from rlm_desktop.corpus.formats.base import text_of
from rlm_desktop.corpus.formats.html import html_to_text
from rlm_desktop.corpus.limits import Limits
from rlm_desktop.testing import fixtures


def parts_of(path: Path, ctx: ExtractContext | None = None, name: str | None = None
             ) -> list[tuple[object, str]]:
    ctx = ctx or ExtractContext()
    out = []
    for part in extract(Source(name or path.name, path=str(path)), ctx):
        text = text_of(part)
        out.append((part, text))
    return out


def only_text(path: Path, **kwargs: object) -> str:
    parts = parts_of(path, **kwargs)  # type: ignore[arg-type]
    assert len(parts) == 1
    return parts[0][1]


# -- detection -------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "head", "fmt"), [
    ("a.pdf", b"", "pdf"), ("A.DOCX", b"", "docx"), ("x.mbox", b"", "mbox"),
    ("m.eml", b"", "eml"), ("o.msg", b"", "msg"), ("app.log", b"", "log"),
    ("app.log.1", b"", "log"), ("app.log.2.gz", b"", "log"), ("syslog.3.bz2", b"", "log"),
    ("notes.md", b"", "markdown"), ("t.csv", b"", "csv"), ("d.json", b"", "json"),
    ("p.html", b"", "html"), ("a.zip", b"", "zip"), ("README", b"hello world\n", "text"),
    ("noext", b"%PDF-1.7\n", "pdf"), ("mailbox", b"From a@b Sat Jan  1 00:00:00 2000\n", "mbox"),
])
def test_detect(name: str, head: bytes, fmt: str) -> None:
    assert detect(name, head) == fmt


@pytest.mark.parametrize("name", ["photo.jpg", "legacy.doc", "sheet.xlsx", "archive.tar.gz"])
def test_detect_refuses_unsupported_formats_clearly(name: str) -> None:
    with pytest.raises(UnsupportedFormat, match="unsupported format"):
        detect(name, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")


# -- PDF -------------------------------------------------------------------------------------

def test_pdf_form_pages_and_title(corpus: Path) -> None:  # F9
    [(part, text)] = parts_of(corpus / "pdf" / "f1040nr.pdf")
    assert part.meta["pages"] == 5 and len(part.page_starts) == 5
    assert part.meta["title"] == "2007 Form 1040NR"
    page1 = text[: part.page_starts[1]]
    assert "U.S. Nonresident Alien Income Tax Return" in page1


def test_pdf_paper_title_and_authors(corpus: Path) -> None:  # F10
    text = only_text(corpus / "pdf" / "naacl06-shinyama.pdf")
    assert "Preemptive Information Extraction using Unrestricted Relation Discovery" in text
    assert "Yusuke Shinyama" in text and "Satoshi Sekine" in text


def test_pdf_long_document(corpus: Path) -> None:  # F11
    [(part, _text)] = parts_of(corpus / "pdf" / "geotopo-GeoTopo-komprimiert.pdf")
    assert part.meta["pages"] == 117
    assert part.meta["author"] == "Martin Thoma"
    assert part.meta["title"] == "Geometrie und Topologie"


def test_pdf_vertical_japanese_cid_text(corpus: Path) -> None:  # F12
    text = only_text(corpus / "pdf" / "kampo.pdf")
    assert "".join(text.split()).count("歩行者") == 8


@pytest.mark.parametrize(("name", "password", "expected"), [
    ("pdfminer-rc4-40.pdf", "baz", "Secret!"),
    ("pdfminer-aes-256.pdf", "baz", "Secret!"),
    ("pypdf-r4-aes-user-password.pdf", "asdfzxcv", "pdf encryption test"),
    ("pypdf-r6-both-passwords.pdf", "foo", "pdf encryption test"),
    ("libreoffice-writer-password.pdf", "openpassword", "Lorem ipsum"),
])
def test_pdf_passwords(corpus: Path, name: str, password: str, expected: str) -> None:  # F13
    path = corpus / "pdf" / "encrypted" / name
    with pytest.raises(PasswordRequired, match="supply its password"):
        parts_of(path)
    with pytest.raises(PasswordRequired, match="none of the passwords"):
        parts_of(path, ExtractContext(passwords=("wrong",)))
    [(part, text)] = parts_of(path, ExtractContext(passwords=("wrong", password)))
    assert expected in text
    assert part.meta["opened_with_password"] is True


def test_pdf_with_empty_user_password_opens(corpus: Path) -> None:
    [(part, text)] = parts_of(corpus / "pdf" / "dmca.pdf")
    assert part.meta["pages"] == 18
    assert "Digital Millennium Copyright Act" in text


def test_pdf_known_text_per_page(tmp_path: Path) -> None:
    pages = [f"Page {n} heading\nthe final line {n} – café" for n in range(1, 6)]
    path = tmp_path / "known.pdf"
    fixtures.write_text_pdf(path, pages, title="Known", author="Tester")
    [(part, text)] = parts_of(path)
    assert part.meta["title"] == "Known" and part.meta["author"] == "Tester"
    for number, start in enumerate(part.page_starts, start=1):
        end = part.page_starts[number] if number < 5 else len(text)
        assert f"Page {number} heading" in text[start:end]
        assert f"Page {number + 1} heading" not in text[start:end]


@pytest.mark.parametrize(("name", "error", "message"), [
    ("html_saved_as.pdf", DamagedFile, "looks like an HTML page"),
    ("header_only.pdf", DamagedFile, "damaged PDF"),
    ("truncated60_f1040nr.pdf", DamagedFile, "damaged PDF"),
    ("empty.pdf", EmptyFile, "empty file"),
])
def test_broken_pdfs_fail_clearly(corpus: Path, name: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        parts_of(corpus / "pdf" / "broken" / name)


@pytest.mark.parametrize(("name", "phrase"), [
    ("bad_startxref_f1040nr.pdf", "Nonresident Alien"),
    ("zen_of_python_corrupted.pdf", "Beautiful is better than ugly"),
])
def test_damaged_pdfs_are_salvaged(corpus: Path, name: str, phrase: str) -> None:
    assert phrase in only_text(corpus / "pdf" / "broken" / name)


# -- Word ------------------------------------------------------------------------------------

def test_docx_solicitation_facts(corpus: Path) -> None:  # F14
    text = only_text(corpus / "docx" / "invalid_tag_name.docx")
    assert "36C26123Q1035" in text
    assert "Management Developmental Coaching" in text
    assert "08-01-2023 10AM PACIFIC TIME" in text


def test_docx_tables_headers_and_comments(corpus: Path) -> None:
    text = only_text(corpus / "docx" / "blk-paras-and-tables.docx")
    assert text.startswith("[Header]\nLeft-side\tRight-side")
    comments = only_text(corpus / "docx" / "comments-rich-para.docx")
    assert "[Comments]" in comments and "Steve Canny" in comments
    boxes = only_text(corpus / "docx" / "checked_boxes.docx")
    assert "☒" in boxes and "☐" in boxes


def test_docx_generated_order_tables_header_footer(tmp_path: Path) -> None:
    path = tmp_path / "t.docx"
    fixtures.write_docx(path, [
        "Opening paragraph",
        [["Name", "Amount"], ["Alice", "10"], ["Bob", "20"]],
        "Closing paragraph",
    ], header="Confidential header", footer="Page footer")
    [(part, text)] = parts_of(path)
    assert text.index("Confidential header") < text.index("Opening paragraph")
    assert "Opening paragraph\nName\tAmount\nAlice\t10\nBob\t20\nClosing paragraph" in text
    assert text.index("Closing paragraph") < text.index("Page footer")
    assert part.meta["tables"] == 1


@pytest.mark.parametrize(("name", "error", "message"), [
    ("zipbomb_500MB_document_xml.docx", LimitExceeded, "decompression bomb"),
    ("deeply_nested_xml.docx", DamagedFile, "nested too deeply"),
    ("billion_laughs_entities.docx", DamagedFile, "DTD"),
    ("empty.docx", EmptyFile, "empty"),
])
def test_hostile_docx(corpus: Path, name: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        parts_of(corpus / "hostile" / name)


# -- mail ------------------------------------------------------------------------------------

def test_mbox_count_and_top_sender(corpus: Path) -> None:  # F6, F7
    parts = parts_of(corpus / "mail" / "mbox" / "linux-mips-2001-03.mbox")
    messages = [p for p, _ in parts if p.parent is None]
    assert len(messages) == 218
    assert [p.name for p in messages][:3] == ["#1", "#2", "#3"]
    senders = collections.Counter(parseaddr(p.meta["from"])[1].lower() for p in messages)
    assert senders.most_common(2) == [("ralf@oss.sgi.com", 39), ("kevink@mips.com", 15)]
    dates = sorted(p.meta["date"][:10] for p in messages)
    assert dates[0] >= "2001-02-28" and dates[-1] <= "2001-04-01"
    nevada = [p for p in messages if "CONFIG_CPU_NEVADA" in p.meta["subject"]]
    assert len(nevada) == 17
    for part, _text in parts:
        if part.parent is not None:  # attachments link to a message that precedes them
            assert parts[part.parent][0].kind == "email"


def test_lkml_mbox(corpus: Path) -> None:
    parts = parts_of(corpus / "mail" / "mbox" / "lkml-notmuch-corpus.mbox")
    messages = [p for p, _ in parts if p.parent is None]
    assert len(messages) == 210
    senders = collections.Counter(parseaddr(p.meta["from"])[1].lower() for p in messages)
    assert senders.most_common(1) == [("joe@perches.com", 53)]


def test_eml_thread(corpus: Path) -> None:  # F8
    thread = []
    for path in sorted((corpus / "mail" / "eml").glob("*.eml")):
        [(part, text), *_] = parts_of(path)
        if "Working with Maildir storage?" in part.meta["subject"]:
            thread.append(path.name)
            assert text.startswith("From: ")
            assert "\nSubject: " in text
    assert thread == [f"notmuch-list-{n}.eml" for n in ("03", "04", "08", "09", "12", "22",
                                                          "41")]


def test_eml_attachments_become_child_documents(corpus: Path) -> None:
    parts = parts_of(corpus / "mail" / "eml" / "flanker-attached-pdf.eml")
    assert [p.kind for p, _ in parts] == ["email", "pdf"]
    assert parts[1][0].name == "/test.pdf" and parts[1][0].parent == 0
    assert "Attachments: test.pdf" in parts[0][1]


def test_eml_forwarded_messages_link_to_their_parent(corpus: Path) -> None:
    parts = parts_of(corpus / "mail" / "eml" / "flanker-torture.eml")
    assert parts[0][0].parent is None
    assert all(p.parent is not None for p, _ in parts[1:])
    assert sum(1 for p, _ in parts if p.parent is None) == 1


def test_eml_header_decoding(corpus: Path) -> None:
    eml = corpus / "mail" / "eml"
    [(part, _)] = parts_of(eml / "flanker-from-encoding.eml")
    assert part.meta["from"].startswith('"Ingo Lütkebohle"')  # raw latin-1 header
    [(part, text)] = parts_of(eml / "mailparser-mail_test_6.eml")
    assert part.meta["subject"] == "Быстрее вкладывайте в золото!"  # RFC 2047
    [(part, text)] = parts_of(eml / "mailparser-mail_test_12.eml")
    assert part.meta["subject"] == "代开各地增值税发票"
    assert "增值税发票" in text  # UTF-8 body mislabelled as gb2312


def test_generated_mbox_of_1000_messages(tmp_path: Path) -> None:
    info = fixtures.write_mbox(tmp_path / "big.mbox", 1000, seed=3)
    parts = parts_of(info.path)
    messages = [(p, t) for p, t in parts if p.parent is None]
    assert len(messages) == info.messages == 1000
    senders = collections.Counter(parseaddr(p.meta["from"])[1].lower() for p, _ in messages)
    assert dict(senders) == info.sender_counts
    for index, subject in enumerate(info.subjects):
        assert messages[index][0].meta["subject"] == subject
    for index in info.html_only[:50]:
        body = messages[index][1]
        assert "<" not in body.split("\n\n", 1)[1], "HTML bodies must become text"
    for index, line in list(info.invoice_lines.items())[:10]:
        children = [t for p, t in parts if p.kind == "pdf" and p.name.startswith(f"#{index + 1}/")]
        assert any(line in t for t in children)
    for index in info.from_escaped[:20]:
        assert messages[index][0].meta["message_id"] == info.message_id(index)


@pytest.mark.parametrize(("name", "error", "message"), [
    ("nested_multipart_20_levels.eml", LimitExceeded, "nested more than 16"),
    ("empty.eml", EmptyFile, "empty"),
    ("empty.mbox", EmptyFile, "empty"),
])
def test_hostile_mail(corpus: Path, name: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        parts_of(corpus / "hostile" / name)


def test_mime_depth_is_a_setting(corpus: Path) -> None:
    ctx = ExtractContext(limits=Limits(max_mime_depth=32))
    [(part, _text)] = parts_of(corpus / "hostile" / "nested_multipart_20_levels.eml", ctx)
    assert part.kind == "email"


def test_invalid_utf8_mail_is_read_with_replacements(corpus: Path) -> None:
    [(part, text)] = parts_of(corpus / "hostile" / "invalid_utf8.eml")
    assert "invalid utf-8" in part.meta["subject"]
    assert "Body with latin-1" in text


# -- logs and text ---------------------------------------------------------------------------

def test_openssh_log_facts(corpus: Path) -> None:  # F1, F2, F4
    text = only_text(corpus / "logs" / "OpenSSH_2k.log")
    lines = text.split("\n")
    assert len(lines) == 2000 and not text.endswith("\n")
    failed = [line for line in lines if "Failed password" in line]
    assert len(failed) == 520
    ips = collections.Counter(re.search(r"from ([0-9.]+)", line)[1] for line in failed)
    assert ips.most_common(1) == [("183.62.140.253", 286)]


def test_apache_errors(corpus: Path) -> None:  # F3
    assert only_text(corpus / "logs" / "Apache_2k.log").count("[error]") == 595


def test_rotated_gzip_is_identical(corpus: Path) -> None:  # F5
    plain = only_text(corpus / "logs" / "OpenSSH_2k.log")
    rotated = only_text(corpus / "logs" / "rotated" / "OpenSSH_2k.log.1.gz")
    assert rotated == plain


@pytest.mark.parametrize("compress", [None, "gzip", "bz2", "xz"])
def test_generated_logs_any_compression_and_crlf(tmp_path: Path, compress: str | None) -> None:
    suffix = {None: "", "gzip": ".gz", "bz2": ".bz2", "xz": ".xz"}[compress]
    info = fixtures.write_log(tmp_path / f"app.log.1{suffix}", 3000, compress=compress,
                              crlf=True, seed=5)
    text = only_text(info.path)
    assert "\r" not in text
    assert text.count("\n") == info.lines
    assert text.count("ERROR") >= info.error_lines
    assert sum("Failed password" in line for line in text.split("\n")) == (
        info.failed_password_lines)


def test_concatenated_gzip_members(tmp_path: Path) -> None:
    path = tmp_path / "joined.log.gz"
    path.write_bytes(gzip.compress(b"first\n") + gzip.compress(b"second\n"))
    assert only_text(path) == "first\nsecond\n"


def test_streamed_log_chunks_end_at_line_breaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    from rlm_desktop.corpus.formats import text as text_module

    monkeypatch.setattr(text_module, "CHUNK_CHARS", 1000)
    monkeypatch.setattr(text_module, "READ_BLOCK", 777)
    info = fixtures.write_log(tmp_path / "x.log", 2000, seed=9)
    [part] = list(extract(Source("x.log", path=str(info.path)), ExtractContext()))
    chunks = [c.decode("ascii") if isinstance(c, bytes) else c for c in part.text]
    assert len(chunks) > 10
    assert all(chunk.endswith("\n") for chunk in chunks[:-1])
    assert "".join(chunks) == info.path.read_text()


@pytest.mark.parametrize(("name", "error", "message"), [
    ("binary_garbage.log", UnsupportedFormat, "binary data"),
    ("truncated.log.gz", DamagedFile, "ends early"),
    ("not_really_gzip.log.gz", DamagedFile, "not a gzip file"),
    ("empty.log", EmptyFile, "empty"),
    ("empty.log.gz", EmptyFile, "empty"),
])
def test_hostile_logs(corpus: Path, name: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        parts_of(corpus / "hostile" / name)


def test_invalid_utf8_log_keeps_every_line(corpus: Path) -> None:
    ctx = ExtractContext()
    text = only_text(corpus / "hostile" / "invalid_utf8.log", ctx=ctx)
    assert text.count("\n") + (not text.endswith("\n")) == 500
    assert ctx.warnings


def test_gzip_bomb_is_stopped(tmp_path: Path) -> None:
    path = tmp_path / "bomb.log.gz"
    path.write_bytes(gzip.compress(b"A" * (40 * 2**20)))
    ctx = ExtractContext(limits=Limits(max_compression_ratio=50, ratio_floor_bytes=2**20))
    with pytest.raises(LimitExceeded, match="decompression bomb"):
        parts_of(path, ctx)


@pytest.mark.parametrize(("compress", "ext"), [(bz2.compress, ".bz2"), (lzma.compress, ".xz")])
def test_truncated_bz2_and_xz(tmp_path: Path, compress: object, ext: str) -> None:
    data = compress(b"line\n" * 50000)  # type: ignore[operator]
    path = tmp_path / f"t.log{ext}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedFile):
        parts_of(path)


def test_text_formats(tmp_path: Path) -> None:
    (tmp_path / "n.md").write_text("# Title\r\n\r\nBody ﬁ\r\n")
    assert only_text(tmp_path / "n.md") == "# Title\n\nBody fi\n"
    (tmp_path / "d.csv").write_bytes("name;city\nZoë;Köln\n".encode("cp1252"))
    assert "Köln" in only_text(tmp_path / "d.csv")
    (tmp_path / "u.txt").write_bytes("\ufeffBOM text\n".encode("utf-16"))
    assert only_text(tmp_path / "u.txt") == "BOM text\n"
    (tmp_path / "p.html").write_text(
        "<html><script>x()</script><body><h1>Head</h1><p>a<b>b</b></p></body></html>")
    assert only_text(tmp_path / "p.html") == "Head\n\nab\n"


def test_html_to_text_tables_and_breaks() -> None:
    html = "<table><tr><td>a</td><td>b</td></tr></table><p>x<br>y</p><style>p{}</style>"
    assert html_to_text(html) == "a\tb\n\nx\ny\n"


# -- zip -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "safe"), [
    ("a/b.txt", "a/b.txt"), ("./a//b.txt", "a/b.txt"), ("../evil", None), ("/etc/passwd", None),
    ("C:\\win.ini", None), ("a\\..\\..\\x", None), ("ok\\sub.txt", "ok/sub.txt"),
])
def test_zip_member_names(name: str, safe: str | None) -> None:
    assert safe_member_name(name) == safe


def test_zip_walked_in_memory(tmp_path: Path, corpus: Path) -> None:
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(corpus / "logs" / "Apache_2k.log", "logs/Apache_2k.log")
        archive.write(corpus / "pdf" / "f1040nr.pdf", "forms/f1040nr.pdf")
        archive.writestr("../../escape.txt", "nope")
        archive.writestr("__MACOSX/._junk", "junk")
        archive.writestr("photo.jpg", b"\xff\xd8\xff\xe0binary")
    ctx = ExtractContext()
    parts = parts_of(path, ctx)
    assert [(p.name, p.kind) for p, _ in parts] == [
        ("/logs/Apache_2k.log", "log"), ("/forms/f1040nr.pdf", "pdf")]
    assert all(p.parent is None for p, _ in parts)
    assert any("unsafe path" in w for w in ctx.warnings)
    assert any("photo.jpg" in w and "unsupported" in w for w in ctx.warnings)


def test_nested_zips_stop_at_the_nesting_limit(tmp_path: Path) -> None:
    inner = b"deep text\n"
    name = "t.txt"
    for level in range(6):
        path = tmp_path / f"z{level}.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(name, inner)
        inner, name = path.read_bytes(), path.name
    ctx = ExtractContext()
    with pytest.raises(ExtractionError):
        parts_of(tmp_path / "z5.zip", ctx)
    assert any("nested more than" in w for w in ctx.warnings)


@pytest.mark.parametrize(("compress", "ext"), [(bz2.compress, ".bz2"), (lzma.compress, ".xz"),
                                               (gzip.compress, ".gz")])
def test_multi_stream_files_are_read_whole(tmp_path: Path, compress: object, ext: str) -> None:
    path = tmp_path / f"joined.log{ext}"
    path.write_bytes(compress(b"first stream\n") + compress(b"second stream\n"))  # type: ignore[operator]
    assert only_text(path) == "first stream\nsecond stream\n"


def test_a_damaged_attachment_does_not_fail_its_mailbox(tmp_path: Path) -> None:
    import base64
    import random

    lines = "".join(f"line {random.Random(1).random()} {n}\n" for n in range(20000))
    damaged = gzip.compress(lines.encode())[:-2000]  # a log.gz cut short

    body = base64.encodebytes(damaged).decode()
    messages = []
    for n in range(1, 4):
        attachment = (f'--b\nContent-Type: application/gzip; name="app.log.gz"\n'
                      f"Content-Disposition: attachment; filename=app.log.gz\n"
                      f"Content-Transfer-Encoding: base64\n\n{body}") if n == 2 else ""
        messages.append(
            f"From x@example.com Mon Jan  1 00:00:0{n} 2024\nFrom: x@example.com\n"
            f"Subject: message {n}\nContent-Type: multipart/mixed; boundary=b\n\n"
            f"--b\nContent-Type: text/plain\n\nbody {n}\n{attachment}--b--\n")
    path = tmp_path / "box.mbox"
    path.write_text("".join(messages))
    ctx = ExtractContext()
    parts = parts_of(path, ctx)
    assert [p.meta["subject"] for p, _ in parts] == ["message 1", "message 2", "message 3"]
    assert any("app.log.gz" in w and "gzip" in w for w in ctx.warnings), ctx.warnings
