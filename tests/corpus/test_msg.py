"""Outlook .msg loader: the nine real sample messages, broken files, and the RTF converter.

Every expected value below was read from the raw MAPI properties of the sample files (with
olefile), not from the loader's output: see the comment above each test for where it lives.
"""

from __future__ import annotations

import codecs
from datetime import UTC, datetime
from pathlib import Path

import olefile
import pytest

from rlm_desktop.corpus.errors import (
    DamagedFile,
    EmptyFile,
    ExtractionError,
    LimitExceeded,
    UnsupportedFormat,
)
from rlm_desktop.corpus.formats import ExtractContext, Part, Source, extract
from rlm_desktop.corpus.formats.rtf import codec_for_codepage, rtf_to_html, rtf_to_text
from rlm_desktop.corpus.limits import Limits

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
MSG = CORPUS / "mail" / "msg"
ALL_FILES = sorted(p.name for p in MSG.glob("*.msg"))


def parts_of(path: Path, ctx: ExtractContext | None = None, name: str | None = None) -> list[Part]:
    return list(extract(Source(name or path.name, path=str(path)), ctx or ExtractContext()))


def only_message(filename: str) -> Part:
    parts = parts_of(MSG / filename)
    assert len(parts) == 1
    assert parts[0].kind == "email" and parts[0].name == "" and parts[0].parent is None
    assert isinstance(parts[0].text, str)
    return parts[0]


def text(part: Part) -> str:
    assert isinstance(part.text, str)
    return part.text


def utc(stamp: str) -> str:
    """The meta form of a UTC time written "YYYY-MM-DD HH:MM:SS"."""
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC).isoformat()


def blank_body(source: Path, target: Path) -> Path:
    """A copy of `source` whose plain-text body (PR_BODY, UTF-16) is all spaces.

    The body stream's bytes sit contiguously (and only once) in each sample, so overwriting
    them in place, same length, leaves a valid file that makes the loader fall back to the
    HTML or RTF body.
    """
    with olefile.OleFileIO(str(source)) as ole:
        body = ole.openstream("__substg1.0_1000001F").read()
    raw = source.read_bytes()
    assert raw.count(body) == 1
    target.write_bytes(raw.replace(body, b" \x00" * (len(body) // 2)))
    return target


def test_all_nine_samples_are_present() -> None:
    assert len(ALL_FILES) == 9


# F15 in FACTS.md; subject 0x0037001E (cp1252), sender 0x0C1A + 0x5D01, transport headers
# (0x007D) give From/To/Date/Message-ID; body 0x1000001E.
def test_special_chars_in_subject_fact_f15() -> None:
    part = only_message("EmailWithSpecialCharsInSubject.msg")
    meta = part.meta
    assert meta["from"] == "Julie Clarebots <Julie.Clarebots@qbere.com>"
    assert meta["to"] == "Julie Clarebots <Julie.Clarebots@qbere.com>"
    subject = "Un sujet bien défini Àéroport mañana être ouïe électricité così próxima à Ô"
    assert meta["subject"] == subject
    assert datetime.fromisoformat(meta["date"]) == datetime(2024, 3, 27, 9, 14, 48, tzinfo=UTC)
    assert meta["message_id"] == (
        "<CY5PR02MB8965DFCBCFAFD12DCFEB7465F6342@CY5PR02MB8965.namprd02.prod.outlook.com>"
    )
    assert meta["body_format"] == "text"
    assert text(part).startswith(
        "From: Julie Clarebots <Julie.Clarebots@qbere.com>\n"
        "To: Julie Clarebots <Julie.Clarebots@qbere.com>\n"
        "Date: Wed, 27 Mar 2024 09:14:48 +0000\n"
        f"Subject: {subject}\n\n"
        "Testing .msg subject encoding\n"
    )
    assert "\r" not in text(part)


@pytest.mark.parametrize(
    ("header", "sender"),
    [
        ("From: =?iso-8859-1?q?J=FCli=E9?= <jc@qbere.com>", "J\u00fcli\u00e9 <jc@qbere.com>"),
        ("From: =?x-bogus?q?J=FCli=E9?= <jc@qbere.com>", "J\u00fcli\u00e9 <jc@qbere.com>"),
        ("From: =?utf-8?q?J=FCli?= <jc@qbere.com>", "J\ufffdli <jc@qbere.com>"),
    ],
)
def test_transport_header_words_are_decoded(tmp_path: Path, header: str, sender: str) -> None:
    # The From line of the transport headers (0x007D001E), rewritten in place, same length:
    # RFC 2047 words are decoded, and unknown charsets or bad bytes never fail the message.
    raw = (MSG / "EmailWithSpecialCharsInSubject.msg").read_bytes()
    old = b"From: Julie Clarebots <Julie.Clarebots@qbere.com>"
    new = header.encode("ascii")
    assert raw.count(old) == 1 and len(new) <= len(old)
    copy = tmp_path / "rfc2047.msg"
    copy.write_bytes(raw.replace(old, new.ljust(len(old))))
    (part,) = parts_of(copy)
    assert part.meta["from"] == sender
    assert text(part).startswith(f"From: {sender}\n")


# No transport headers: sender 0x0C1A "Kees" + 0x0C1F (addrtype SMTP); recipients #0 type 1,
# #1 type 2, #2 type 3; submit time 0x0039 = 2016-12-03 18:08:54; two JPEG attachments
# (0x3707 peterpan.jpg, tinkerbell.jpg), which are listed but not read.
def test_attachments_and_recipients_from_properties() -> None:
    part = only_message("EmailWithAttachments.msg")
    meta = part.meta
    assert meta["from"] == "Kees <peterpan@neverland.com>"
    assert meta["to"] == "crocodile@neverland.com"
    assert meta["cc"] == "tinkerbel@neverland.com"
    assert meta["bcc"] == "wendy@neverland.com"
    assert meta["subject"] == "This is the subject"
    assert meta["date"] == utc("2016-12-03 18:08:54")
    assert meta["attachments"] == ["peterpan.jpg", "tinkerbell.jpg"]
    assert meta["message_class"] == "IPM.Note"
    body = text(part)
    assert "Attachments: peterpan.jpg, tinkerbell.jpg\n" in body
    assert "Cc: tinkerbel@neverland.com\n" in body
    assert "wendy" not in body  # Bcc stays out of the header block, like an .eml's
    assert body.endswith("\n\nHello Neverland text\n")


# The same file with an empty PR_BODY: the HTML body (0x10130102) says "Hello Neverland html".
def test_html_body_used_when_plain_body_is_empty(tmp_path: Path) -> None:
    copy = blank_body(MSG / "EmailWithAttachments.msg", tmp_path / "html.msg")
    (part,) = parts_of(copy)
    assert part.meta["body_format"] == "html"
    assert "Hello Neverland html" in text(part)
    assert "Hello Neverland text" not in text(part)
    assert "Peter Pann" not in text(part)  # the <title> is not body text


# Outer: subject "Outer mail", no sender properties, delivery time 0x0E06 05:46:05.206,
# attachments OUTER 1.pdf, OUTER 2.pdf and an embedded message (method 5, display name
# "Inner mail", sub-storage 3701000D) with INNER 1.pdf and INNER 2.pdf and delivery time
# 05:45:26.945. Each PDF's only text is its own name.
def test_inner_mail_and_attachments_become_linked_children() -> None:
    ctx = ExtractContext()
    parts = parts_of(MSG / "EmailWithInnerMailAndAttachments.msg", ctx)
    summary = [(p.name, p.kind, p.parent) for p in parts]
    assert summary == [
        ("", "email", None),
        ("/OUTER 1.pdf", "pdf", 0),
        ("/OUTER 2.pdf", "pdf", 0),
        ("/Inner mail", "email", 0),
        ("/Inner mail/INNER 1.pdf", "pdf", 3),
        ("/Inner mail/INNER 2.pdf", "pdf", 3),
    ]
    assert ctx.warnings == []
    outer, pdf1, pdf2, inner, inner1, inner2 = parts
    assert outer.meta["subject"] == "Outer mail"
    assert outer.meta["from"] == ""
    assert outer.meta["date"] == utc("2023-02-15 05:46:05")
    assert outer.meta["attachments"] == ["OUTER 1.pdf", "OUTER 2.pdf", "Inner mail"]
    assert "\nAttachments: OUTER 1.pdf, OUTER 2.pdf, Inner mail\n" in text(outer)
    assert text(outer).endswith("\n\nOuter mail\n")
    assert inner.meta["subject"] == "Inner mail"
    assert inner.meta["date"] == utc("2023-02-15 05:45:26")
    assert inner.meta["attachments"] == ["INNER 1.pdf", "INNER 2.pdf"]
    assert text(inner).startswith("From:\nDate: Wed, 15 Feb 2023 05:45:26 +0000\n")
    assert "\nSubject: Inner mail\nAttachments: INNER 1.pdf, INNER 2.pdf\n" in text(inner)
    assert text(inner).endswith("\n\nInner mail\n")
    for pdf, label in (
        (pdf1, "OUTER 1"),
        (pdf2, "OUTER 2"),
        (inner1, "INNER 1"),
        (inner2, "INNER 2"),
    ):
        assert text(pdf).strip() == label


def test_nesting_limit_turns_deep_attachments_into_warnings() -> None:
    ctx = ExtractContext(limits=Limits(max_nesting=1))
    parts = parts_of(MSG / "EmailWithInnerMailAndAttachments.msg", ctx)
    assert [p.name for p in parts] == ["", "/OUTER 1.pdf", "/OUTER 2.pdf", "/Inner mail"]
    assert len(ctx.warnings) == 2
    assert ctx.warnings[0].startswith("attachment INNER 1.pdf: nested more than 1 levels")
    assert ctx.warnings[1].startswith("attachment INNER 2.pdf: nested more than 1 levels")

    ctx = ExtractContext(limits=Limits(max_nesting=0))
    parts = parts_of(MSG / "EmailWithInnerMailAndAttachments.msg", ctx)
    assert [p.name for p in parts] == [""]
    assert [w.split(":")[0] for w in ctx.warnings] == [
        "attachment OUTER 1.pdf",
        "attachment OUTER 2.pdf",
        "attachment Inner mail",
    ]


# Transport headers: From/To "Wilson, Chris" <Chris.Wilson@leeds.gov.uk>, Date Mon, 23 Oct
# 2017 08:31:03 +0100 (0x0039 agrees: 07:31:03 UTC). PR_BODY holds the text; the compressed
# RTF (0x1009) is HTML encapsulated in RTF (\fromhtml1) with the same text.
def test_html_sample() -> None:
    part = only_message("HtmlSampleEmail.msg")
    meta = part.meta
    assert meta["from"] == '"Wilson, Chris" <Chris.Wilson@leeds.gov.uk>'
    assert meta["to"] == '"Wilson, Chris" <Chris.Wilson@leeds.gov.uk>'
    assert meta["subject"] == "HtmlSampleEmail"
    assert meta["date"] == "2017-10-23T08:31:03+01:00"
    assert meta["message_id"] == "<6BA412B7BBD2FD42861293C22F31BF8F1AEC9B57@pifmbx04.Leeds.gov.uk>"
    body = text(part)
    assert "Date: Mon, 23 Oct 2017 08:31:03 +0100\n" in body
    assert "BOOK ONE: 1805" in body
    assert "“Well, Prince, so Genoa and Lucca are now just family estates of the" in body
    assert "Lead Developer, eServices" in body


def test_rtf_encapsulated_html_body(tmp_path: Path) -> None:
    copy = blank_body(MSG / "HtmlSampleEmail.msg", tmp_path / "rtf-html.msg")
    (part,) = parts_of(copy)
    assert part.meta["body_format"] == "rtf"
    body = text(part)
    assert "“Well, Prince, so Genoa and Lucca are now just family estates of the" in body
    assert "Schérer, maid of honor and favorite of the Empress Márya Fëdorovna." in body
    assert "Lead Developer, eServices" in body
    for junk in ("mso-", "{", "\\", "Calibri", "htmltag"):
        assert junk not in body


# Transport headers: Date Mon, 23 Oct 2017 08:31:09 +0100. The compressed RTF is a native
# Word RTF document (\rtf1\adeflang1025..., no \fromhtml).
def test_rtf_sample(tmp_path: Path) -> None:
    part = only_message("RtfSampleEmail.msg")
    assert part.meta["subject"] == "RtfSampleEmail"
    assert part.meta["from"] == '"Wilson, Chris" <Chris.Wilson@leeds.gov.uk>'
    assert part.meta["date"] == "2017-10-23T08:31:09+01:00"
    assert "CHAPTER I" in text(part)

    (from_rtf,) = parts_of(blank_body(MSG / "RtfSampleEmail.msg", tmp_path / "rtf.msg"))
    assert from_rtf.meta["body_format"] == "rtf"
    body = text(from_rtf)
    assert "BOOK ONE: 1805\n" in body
    assert "It was in July, 1805, and the speaker was the well-known Anna Pávlovna" in body
    assert "start my apprenticeship as old maid.”" in body
    for junk in ("Times New Roman", "{", "\\", "Normal"):
        assert junk not in body


def test_damaged_compressed_rtf_is_a_warning(tmp_path: Path) -> None:
    # One byte of the LZFu data (0x10090102) changed: its CRC no longer matches.
    copy = blank_body(MSG / "RtfSampleEmail.msg", tmp_path / "crc.msg")
    with olefile.OleFileIO(str(copy)) as ole:
        head = ole.openstream("__substg1.0_10090102").read()[:200]
    raw = copy.read_bytes()
    assert raw.count(head) == 1
    start = raw.index(head)
    copy.write_bytes(raw[: start + 100] + bytes([raw[start + 100] ^ 0xFF]) + raw[start + 101 :])
    ctx = ExtractContext()
    (part,) = parts_of(copy, ctx)
    assert part.meta["subject"] == "RtfSampleEmail"
    assert part.meta["body_format"] == "text"
    assert text(part).endswith("Subject: RtfSampleEmail\n")
    assert len(ctx.warnings) == 1
    assert ctx.warnings[0].startswith("the RTF body could not be decompressed")


# No subject (0x0037001F is empty), no sender or recipients, no transport headers; only a
# delivery time 0x0E06 = 2023-10-04 13:28:39.523. Body in Russian; the RTF is \ansicpg1251
# encapsulated HTML with \'hh escapes.
def test_rtf_with_short_russian_string(tmp_path: Path) -> None:
    part = only_message("RtfWithShortRussianString.msg")
    assert part.meta["subject"] == ""
    assert part.meta["from"] == ""
    assert part.meta["to"] == ""
    assert part.meta["date"] == utc("2023-10-04 13:28:39")
    assert "«Имя пользователя» (email)" in text(part)
    assert "«Пароль» (password)" in text(part)

    copy = blank_body(MSG / "RtfWithShortRussianString.msg", tmp_path / "ru.msg")
    (from_rtf,) = parts_of(copy)
    assert from_rtf.meta["body_format"] == "rtf"
    words = " ".join(text(from_rtf).split("\n\n", 1)[1].split())
    assert words == "ввести «Имя пользователя» (email) и «Пароль» (password)."


# Transport headers: Date Mon, 23 Oct 2017 08:31:27 +0100, Message-ID <...AECAB77@...>.
# PR_BODY (0x1000001F) is the start of War and Peace; the RTF is \fromtext.
def test_txt_sample(tmp_path: Path) -> None:
    part = only_message("TxtSampleEmail.msg")
    meta = part.meta
    assert meta["subject"] == "TxtSampleEmail"
    assert meta["to"] == '"Wilson, Chris" <Chris.Wilson@leeds.gov.uk>'
    assert meta["date"] == "2017-10-23T08:31:27+01:00"
    assert meta["message_id"] == "<6BA412B7BBD2FD42861293C22F31BF8F1AECAB77@pifmbx04.Leeds.gov.uk>"
    body = text(part)
    assert "\n\nBOOK ONE: 1805\n" in body
    assert "Lise, young Bolkónski\u2019s wife, this very evening, and perhaps the" in body

    (from_rtf,) = parts_of(blank_body(MSG / "TxtSampleEmail.msg", tmp_path / "txt.msg"))
    assert from_rtf.meta["body_format"] == "rtf"
    assert "Lise, young Bolkónski\u2019s wife, this very evening, and perhaps the" in text(from_rtf)


# Sent from Exchange: 0x0C1F and 0x0065 are X.500 names; the only SMTP form of the sender is
# 0x5D0A (dsi@arcencielrecyclage.fr), as MSGReader's own test for this file expects. One To
# recipient; 0x0039 = 2026-03-31 08:01:56.32; 0x1035/0x1042 give the message ids.
def test_sender_not_found_from_exchange() -> None:
    part = only_message("sender_not_found_from_exchange.msg")
    meta = part.meta
    assert meta["from"] == "Myriam VAREME <dsi@arcencielrecyclage.fr>"
    assert meta["to"] == "Support MobiFactory <support@mobifactory.fr>"
    assert meta["subject"] == "TR: CHANTIER ST CHEF"
    assert meta["date"] == utc("2026-03-31 08:01:56")
    assert meta["message_id"] == (
        "<PR1P264MB18884D8E3E17B8F1B7FCF12AA753A@PR1P264MB1888.FRAP264.PROD.OUTLOOK.COM>"
    )
    assert meta["in_reply_to"] == (
        "<MRZP264MB29537E7CC444FDC04C597EBDC552A@MRZP264MB2953.FRAP264.PROD.OUTLOOK.COM>"
    )
    assert "/O=EXCHANGELABS" not in text(part)
    assert "Pour faire suite à notre échange téléphonique" in text(part)
    assert "🌈♻️" in text(part)  # a character outside the BMP survives UTF-16 decoding


# A never-sent test message: no sender, no submit or delivery time (only creation times),
# one recipient time2talk@online-convert.com.
def test_strange_date_has_no_date() -> None:
    part = only_message("strangeDate.msg")
    meta = part.meta
    assert meta["subject"] == "MSG Test File"
    assert meta["to"] == "time2talk@online-convert.com"
    assert meta["from"] == ""
    assert meta["date"] is None
    assert "\nDate:" not in text(part)
    assert "are used as placeholder names for a party whose" in text(part)


@pytest.mark.parametrize("filename", ALL_FILES)
def test_every_sample_reads_without_warnings(filename: str) -> None:
    ctx = ExtractContext()
    parts = parts_of(MSG / filename, ctx)
    assert parts and parts[0].kind == "email"
    assert ctx.warnings == []
    for part in parts:
        assert "\r" not in text(part) and "\x00" not in text(part)


def test_detected_without_extension() -> None:
    # The OLE2 signature alone selects this loader.
    parts = parts_of(MSG / "TxtSampleEmail.msg", name="message-without-extension")
    assert parts[0].meta["subject"] == "TxtSampleEmail"


def test_empty_file() -> None:
    with pytest.raises(EmptyFile):
        parts_of(CORPUS / "hostile" / "empty.msg")


def test_not_an_ole_file(tmp_path: Path) -> None:
    fake = tmp_path / "fake.msg"
    fake.write_text("From: someone@example.com\nSubject: hi\n\nnot an Outlook file\n")
    with pytest.raises(DamagedFile, match=r"^not an Outlook \.msg file: it is a text file$"):
        parts_of(fake)
    fake.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(DamagedFile, match="not an OLE2 compound file"):
        parts_of(fake)


@pytest.mark.parametrize("filename", ALL_FILES)
@pytest.mark.parametrize("fraction", [0.002, 0.1, 0.5, 0.9])
def test_truncated_copies_are_damaged(tmp_path: Path, filename: str, fraction: float) -> None:
    data = (MSG / filename).read_bytes()
    cut = tmp_path / filename
    cut.write_bytes(data[: max(int(len(data) * fraction), 1)])
    with pytest.raises(ExtractionError) as caught:
        parts_of(cut)
    assert type(caught.value) is DamagedFile
    assert str(caught.value).startswith("not an Outlook .msg file: ")


def test_ole_file_that_is_not_a_message(tmp_path: Path) -> None:
    # Renaming the property streams (same length, in the directory entries) leaves a valid
    # OLE2 file that holds no message: what a renamed .doc or .xls looks like to the loader.
    raw = (MSG / "strangeDate.msg").read_bytes()
    for old, new in (("__substg1.0_", "__xxxxxx1.0_"), ("__properties_", "__xxxxxxxxxx_")):
        raw = raw.replace(old.encode("utf-16-le"), new.encode("utf-16-le"))
    other = tmp_path / "renamed.msg"
    other.write_bytes(raw)
    with pytest.raises(UnsupportedFormat, match="not an Outlook message"):
        parts_of(other)


def test_size_limit() -> None:
    ctx = ExtractContext(limits=Limits(max_parsed_bytes=10_000))
    with pytest.raises(LimitExceeded):
        parts_of(MSG / "TxtSampleEmail.msg", ctx)


# --- the RTF converter on small hand-written documents ------------------------------------


def test_rtf_plain_text_escapes_and_destinations() -> None:
    rtf = (
        rb"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0\fswiss Arial;}}"
        rb"{\colortbl;\red255\green0\blue0;}{\stylesheet{\s0 Normal;}}"
        rb"{\info{\title Secret title}{\author Someone}}"
        rb"{\*\generator Riched20;}\pard Caf\'e9 \u8364? and \uc2\u8220\'93\'94quoted\u8221??."
        rb"\par Tab\tab here\line next{\*\unknown hidden}{\pict\pngblip 89504e47}"
        rb"\par \{braces\} and back\\slash\~nbsp \emdash  end\par}"
    )
    result = rtf_to_text(rtf)
    assert result == "Café € and “quoted”.\nTab\there\nnext\n{braces} and back\\slash nbsp — end"


def test_rtf_code_pages_from_ansicpg_and_fonts() -> None:
    cyrillic = rb"{\rtf1\ansi\ansicpg1251 \'cf\'f0\'e8\'e2\'e5\'f2}"
    assert rtf_to_text(cyrillic) == "Привет"
    # A Greek font (\fcharset161) inside a cp1252 document; Shift-JIS pairs split by \'hh.
    fonts = (
        rb"{\rtf1\ansi\ansicpg1252{\fonttbl{\f0 Arial;}{\f1\fcharset161 Greek;}"
        rb"{\f2\fcharset128 MS Gothic;}}\f0 caf\'e9 {\f1 \'e1\'e2\'e3} {\f2 \'83e\'83X\'83g}}"
    )
    assert rtf_to_text(fonts) == "café αβγ テスト"


def test_rtf_surrogate_pairs_and_binary_data() -> None:
    rtf = rb"{\rtf1 smile \u-10179?\u-8704? done{\*\objdata \bin4 }{}x} after}"
    assert rtf_to_text(rtf) == "smile \U0001f600 done after"


def test_rtf_encapsulated_html() -> None:
    rtf = (
        rb"{\rtf1\ansi\ansicpg1252\fromhtml1 \deff0{\fonttbl{\f0\fswiss Arial;}}"
        rb"{\*\htmltag19 <html>}{\*\htmltag34 <head>}{\*\htmltag17 <title>T</title>}"
        rb"{\*\htmltag41 </head>}{\*\htmltag50 <body>}"
        rb"{\*\htmltag64 <p>}\htmlrtf {\htmlrtf0 Hello \htmlrtf RTF only\htmlrtf0 }"
        rb"{\*\htmltag84 &amp;}\htmlrtf &\htmlrtf0  w\'f6rld"
        rb"{\*\htmltag72 </p>}\htmlrtf\par\htmlrtf0{\*\htmltag64 <p>}second{\*\htmltag72 </p>}"
        rb"{\*\htmltag58 </body>}{\*\htmltag27 </html>}}"
    )
    html = rtf_to_html(rtf)
    assert html is not None
    assert "<p>Hello &amp; w\u00f6rld</p>" in html
    assert "RTF only" not in html
    assert rtf_to_text(rtf) == "Hello & wörld\n\nsecond\n"
    assert rtf_to_html(rb"{\rtf1 plain}") is None


def test_rtf_survives_garbage() -> None:
    for junk in (b"", b"{", b"}}}}", b"\\", b"{\\rtf1 \\'zz \\u \\bin999999 x", bytes(range(256))):
        assert isinstance(rtf_to_text(junk), str)


@pytest.mark.parametrize(
    ("codepage", "codec"),
    [
        (1252, "cp1252"),
        (28591, "iso8859-1"),
        (65001, "utf-8"),
        (20127, "ascii"),
        (932, "cp932"),
        (None, "cp1252"),
        (99999, "cp1252"),
    ],
)
def test_codec_for_codepage(codepage: int | None, codec: str) -> None:
    assert codecs.lookup(codec_for_codepage(codepage)).name == codecs.lookup(codec).name
