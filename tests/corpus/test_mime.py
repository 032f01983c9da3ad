"""The fast MIME reader agrees with the stdlib parser, and handles what mail really does."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import compat32
from pathlib import Path

import pytest

from rlm_desktop.corpus.formats import ExtractContext, mail
from rlm_desktop.corpus.formats.mime import NotSimple, parse_message, split_params


def rendered(message: object) -> tuple[str, dict[str, object]]:
    ctx = ExtractContext()
    parts = list(mail.message_parts(message, ctx, name=""))  # type: ignore[arg-type]
    return parts[0].text, parts[0].meta  # type: ignore[return-value]


def real_messages(corpus: Path) -> list[bytes]:
    raws = [p.read_bytes().lstrip(b" \t\r\n") for p in sorted((corpus / "mail" / "eml").glob(
        "*.eml"))]
    for box in sorted((corpus / "mail" / "mbox").glob("*.mbox")):
        with box.open("rb") as handle:
            raws.extend(raw for raw, _ in mail._split_mbox(handle))
    return raws


def test_fast_reader_matches_the_stdlib_on_every_real_message(corpus: Path) -> None:
    raws = real_messages(corpus)
    assert len(raws) > 450
    fast_used = 0
    for raw in raws:
        try:
            fast = parse_message(raw)
        except NotSimple:
            continue
        fast_used += 1
        slow = message_from_bytes(raw, policy=compat32)
        assert rendered(fast) == rendered(slow), raw[:300]
    assert fast_used > 0.9 * len(raws)


def test_multipart_with_rfc2231_filename_and_prefix_boundaries() -> None:
    raw = (b"From: a@example.com\nSubject: files\nMIME-Version: 1.0\n"
           b'Content-Type: multipart/mixed; boundary="b"\n\npreamble\n'
           b"--b\nContent-Type: text/plain; charset=utf-8\n\nbody --bx not a boundary\n"
           b"--bx\n"
           b"--b\nContent-Type: application/octet-stream\n"
           b"Content-Disposition: attachment; filename*=UTF-8''na%C3%AFve%20plan.txt\n"
           b"Content-Transfer-Encoding: base64\n\naGVsbG8K\n--b--\nepilogue\n")
    message = parse_message(raw)
    body, attachment = message.get_payload()  # type: ignore[misc]
    assert body.get_payload(decode=True) == b"body --bx not a boundary\n--bx"
    assert attachment.get_filename() == "naïve plan.txt"
    assert attachment.get_payload(decode=True) == b"hello\n"


def test_quoted_parameters_and_continuations() -> None:
    assert split_params('text/plain; charset="utf-8"; name="a;b.txt"') == (
        "text/plain", {"charset": "utf-8", "name": "a;b.txt"})
    assert split_params("attachment; filename*0*=utf-8''Gr%C3%BC; filename*1=sse.txt")[1] == {
        "filename": "Grüsse.txt"}


@pytest.mark.parametrize("raw", [
    b" leading continuation\nFrom: x\n\nbody",
    b"not a header line at all\n\nbody",
    b"Content-Type: multipart/mixed\n\nno boundary parameter",
    b'Content-Type: multipart/mixed; boundary="zz"\n\nthe boundary never appears',
])
def test_unusual_mail_goes_to_the_stdlib(raw: bytes) -> None:
    with pytest.raises(NotSimple):
        parse_message(raw)
    ctx = ExtractContext()
    assert mail._parse(raw, ctx) is not None  # the stdlib takes it


def test_crlf_and_damaged_base64() -> None:
    raw = (b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29y\r\nbGQ")
    assert parse_message(raw).get_payload(decode=True) == b"hello wor"


def test_boundary_must_end_its_line() -> None:
    raw = (b'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
           b"one\n--b--alt is text, not the end\n--b\nContent-Type: text/plain\n"
           b'Content-Disposition: attachment; filename="x.txt"\n\ntwo\n--b--\n')
    first, second = parse_message(raw).get_payload()  # type: ignore[misc]
    assert first.get_payload(decode=True) == b"one\n--b--alt is text, not the end"
    assert second.get_filename() == "x.txt"


@pytest.mark.parametrize("ctype", ['multipart/digest; boundary="d"',
                                   'multipart/mixed; boundary="b\u00e9"'])
def test_digests_and_8bit_boundaries_go_to_the_stdlib(ctype: str) -> None:
    raw = f"Content-Type: {ctype}\n\n--d\n\nx\n--d--\n".encode()
    with pytest.raises(NotSimple):
        parse_message(raw)
