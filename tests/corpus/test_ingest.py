"""The ingestion pipeline end to end: worker processes, limits, crashes, dedup, cache,
progress and cancellation."""

from __future__ import annotations

import shutil
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rlm_desktop.corpus import pool as pool_module
from rlm_desktop.corpus.cache import TextCache
from rlm_desktop.corpus.ingest import Progress, display_names, ingest
from rlm_desktop.corpus.limits import Limits
from rlm_desktop.testing import fixtures


@pytest.fixture
def cache(tmp_path: Path) -> TextCache:
    text_cache = TextCache(tmp_path / "cache")
    yield text_cache
    text_cache.close()


def by_name(result: object) -> dict[str, object]:
    return {f.name: f for f in result.files}  # type: ignore[attr-defined]


def test_mixed_folder_with_hostile_files(corpus: Path, cache: TextCache) -> None:
    result = ingest([corpus / "hostile", corpus / "logs" / "OpenSSH_2k.log",
                     corpus / "pdf" / "f1040nr.pdf"], cache=cache)
    files = by_name(result)
    assert files["OpenSSH_2k.log"].lines == 2000
    assert files["f1040nr.pdf"].pages == 5
    hostile = {p.name for p in (corpus / "hostile").iterdir()}
    assert hostile <= set(files), "every hostile file is listed"
    readable = {"invalid_utf8.log", "invalid_utf8.eml"}
    for name in hostile - readable:
        assert files[name].error, f"{name} must carry its error"
        assert not files[name].documents
    assert files["zipbomb_500MB_document_xml.docx"].error_code == "limit"
    assert files["empty.pdf"].error == "empty file (0 bytes)"
    assert files["empty.pdf"].kind == "pdf"
    assert files["invalid_utf8.log"].warnings and files["invalid_utf8.log"].lines == 500


def test_documents_have_provenance(corpus: Path, cache: TextCache) -> None:
    result = ingest([corpus / "pdf" / "f1040nr.pdf", corpus / "mail" / "eml"
                     / "flanker-attached-pdf.eml"], cache=cache)
    pdf = next(d for d in result.documents if d.name == "f1040nr.pdf")
    assert pdf.kind == "pdf" and pdf.pages == 5 and len(pdf.sha256) == 64
    offset = pdf.text.index("Nonresident Alien")
    assert pdf.location(offset).page == 1
    page3 = pdf.page_text(3)
    assert pdf.location(pdf.text.index(page3)).page == 3
    message, attachment = [d for d in result.documents if d.name.startswith("flanker")]
    assert attachment.name == "flanker-attached-pdf.eml/test.pdf"
    assert attachment.parent == message.id and attachment.kind == "pdf"
    assert message.meta["subject"].startswith("test message via curl")


def test_same_file_twice_is_one_document_with_both_paths(corpus: Path, tmp_path: Path,
                                                         cache: TextCache) -> None:
    copy = tmp_path / "copy-of-apache.log"
    shutil.copy(corpus / "logs" / "Apache_2k.log", copy)
    result = ingest([corpus / "logs" / "Apache_2k.log", copy], cache=cache)
    assert len(result.files) == 1
    [doc] = result.documents
    assert set(doc.paths) == {str(corpus / "logs" / "Apache_2k.log"), str(copy)}
    assert result.to_json()["documents"][0]["paths"] == list(doc.paths)


def test_unreadable_copies_are_each_listed(corpus: Path, tmp_path: Path,
                                           cache: TextCache) -> None:
    for name in ("a.log.gz", "b.log.gz"):
        shutil.copy(corpus / "hostile" / "truncated.log.gz", tmp_path / name)
    result = ingest([tmp_path / "a.log.gz", tmp_path / "b.log.gz"], cache=cache)
    assert [f.name for f in result.files] == ["a.log.gz", "b.log.gz"]
    assert all("ends early" in (f.error or "") for f in result.files)


def test_reopen_comes_from_the_cache_without_parsing(corpus: Path, cache: TextCache,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = [corpus / "logs" / "Apache_2k.log", corpus / "pdf" / "naacl06-shinyama.pdf",
              corpus / "mail" / "mbox" / "mbox_complex.mbox", corpus / "hostile" / "empty.log"]
    first = ingest(inputs, cache=cache)
    texts = {d.id: d.text for d in first.documents}

    def no_workers(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached file was parsed again")

    monkeypatch.setattr("rlm_desktop.corpus.ingest.WorkerProcess", no_workers)
    second = ingest(inputs, cache=cache)
    assert [f.to_json() for f in second.files] == [f.to_json() for f in first.files]
    assert all(f.cached for f in second.files if f.error is None)
    assert {d.id: d.text for d in second.documents} == texts


def test_cache_recognises_moved_files_by_content(corpus: Path, tmp_path: Path,
                                                 cache: TextCache) -> None:
    original = tmp_path / "a" / "report.pdf"
    original.parent.mkdir()
    shutil.copy(corpus / "pdf" / "multicolumn.pdf", original)
    ingest([original], cache=cache)
    moved = tmp_path / "b" / "renamed.pdf"
    moved.parent.mkdir()
    shutil.move(original, moved)
    result = ingest([moved], cache=cache)
    assert result.files[0].cached and result.files[0].pages == 3


def test_decrypted_text_is_never_cached(corpus: Path, cache: TextCache) -> None:
    path = corpus / "pdf" / "encrypted" / "pdfminer-rc4-40.pdf"
    result = ingest([path], passwords=["baz"], cache=cache)
    assert "Secret!" in result.documents[0].text
    sha = result.files[0].sha256
    assert cache.manifest(sha) is None
    assert not list(cache.root.rglob(f"{sha}*"))
    again = ingest([path], cache=cache)
    assert "password" in again.files[0].error


def test_progress_reports_files_bytes_and_current(corpus: Path, cache: TextCache) -> None:
    seen: list[Progress] = []
    logs = corpus / "logs"
    result = ingest([logs], cache=cache, progress=seen.append)
    total = len(result.files)
    assert seen[-1].files_done == seen[-1].files_total == total
    assert seen[-1].bytes_done == seen[-1].bytes_total == sum(f.size for f in result.files)
    assert any(p.current for p in seen)
    dones = [p.files_done for p in seen]
    assert dones == sorted(dones)


def test_cancel_stops_the_run_and_lists_what_was_left(tmp_path: Path, cache: TextCache) -> None:
    corpus_dir = tmp_path / "pdfs"
    fixtures.make_pdf_corpus(corpus_dir, files=30, pages_per_file=40)
    cancel = threading.Event()

    def on_progress(p: Progress) -> None:
        if p.files_done >= 2:
            cancel.set()

    started = time.monotonic()
    result = ingest([corpus_dir], cache=cache, progress=on_progress, cancel=cancel, workers=1)
    assert time.monotonic() - started < 30
    assert result.cancelled
    assert len(result.files) == 30
    assert any(f.error == "cancelled" for f in result.files)
    assert any(f.error is None for f in result.files)


def test_a_file_over_its_time_limit_is_stopped(corpus: Path, cache: TextCache) -> None:
    limits = Limits(seconds_per_file=0.001, seconds_per_mib=0.0)
    result = ingest([corpus / "pdf" / "i1040nr.pdf"], cache=cache, limits=limits)
    assert "took longer than" in result.files[0].error
    # A limit failure is not cached: with a sane limit the file reads.
    assert ingest([corpus / "pdf" / "i1040nr.pdf"], cache=cache).files[0].pages == 50


def test_a_parser_crash_fails_one_file_not_the_batch(corpus: Path, tmp_path: Path,
                                                     cache: TextCache,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker whose parser dies hard (as a segfault in a C library would) on one file.
    script = tmp_path / "crashing_worker.py"
    script.write_text(textwrap.dedent("""
        import os
        import rlm_desktop.corpus.formats as formats
        real = formats.extract
        def extract(source, ctx, fmt=None):
            if "crashme" in source.name:
                os.abort()
            return real(source, ctx, fmt)
        formats.extract = extract
        from rlm_desktop.corpus.worker import worker_main
        raise SystemExit(worker_main())
    """))
    monkeypatch.setattr(pool_module, "worker_command", lambda: [sys.executable, str(script)])
    crash = tmp_path / "crashme.log"  # not plain ASCII, so it goes through a parser
    crash.write_text("this line kills the parser – ünïcode\n")
    logs = [corpus / "logs" / name for name in ("Apache_2k.log", "HDFS_2k.log", "HPC_2k.log")]
    result = ingest([logs[0], crash, *logs[1:]], cache=cache, workers=1)
    files = by_name(result)
    assert "crashed" in files["crashme.log"].error
    assert [files[p.name].lines for p in logs] == [2000, 2000, 2000]


def test_memory_limit_turns_into_a_clear_error(tmp_path: Path, cache: TextCache) -> None:
    if sys.platform != "linux":
        pytest.skip("RLIMIT_AS is enforced on Linux only")
    # HTML is parsed whole (logs are streamed and would fit): 64 MiB of it cannot be read in
    # a 200 MiB address space.
    page = tmp_path / "huge.html"
    with page.open("w") as handle:
        handle.write("<html><body>")
        for _ in range(1024):
            handle.write("<p>" + "word " * 13_000 + "</p>\n")
    small = tmp_path / "small.txt"
    small.write_text("still read\n")
    result = ingest([page, small], cache=cache, workers=1,
                    limits=Limits(worker_memory_bytes=200 * 2**20))
    files = by_name(result)
    assert "memory" in (files["huge.html"].error or "")
    assert files["small.txt"].documents[0].text == "still read\n"


def test_missing_paths_and_oversized_files(tmp_path: Path, cache: TextCache) -> None:
    big = tmp_path / "big.log"
    big.write_text("x\n" * 1000)
    result = ingest([tmp_path / "nope.pdf", big], cache=cache,
                    limits=Limits(max_file_bytes=100))
    files = by_name(result)
    assert files["nope.pdf"].error == "no such file or folder"
    assert "over the" in files["big.log"].error


def test_hidden_files_are_skipped_in_folders(tmp_path: Path, cache: TextCache) -> None:
    docs = tmp_path / "docs"
    (docs / ".git").mkdir(parents=True)
    (docs / ".DS_Store").write_bytes(b"\x00\x01")
    (docs / ".git" / "config").write_text("x")
    (docs / "notes.txt").write_text("hello\n")
    result = ingest([docs], cache=cache)
    assert [f.name for f in result.files] == ["notes.txt"]


def test_display_names_are_unique_and_short() -> None:
    paths = [Path("/a/x/app.log"), Path("/b/x/app.log"), Path("/a/y/app.log"),
             Path("/c/other.log")]
    assert display_names(paths) == ["a/x/app.log", "b/x/app.log", "y/app.log", "other.log"]


def test_plain_ascii_files_copied_verbatim_match_extraction(corpus: Path, tmp_path: Path,
                                                            cache: TextCache) -> None:
    crlf = tmp_path / "windows.log"
    crlf.write_bytes(b"first\r\nsecond\r\n")
    unicode_log = tmp_path / "unicode.log"
    unicode_log.write_text("caf\u00e9 opened\nclosed")
    inputs = [corpus / "logs", corpus / "_make" / "make_hostile.py", crlf, unicode_log]
    copied = ingest(inputs, cache=cache)  # plain ASCII files take the copy path
    extracted = ingest(inputs, use_cache=False)  # everything through the parsers
    assert [f.to_json() for f in copied.files] == [f.to_json() for f in extracted.files]
    assert [d.text for d in copied.documents] == [d.text for d in extracted.documents]
    assert by_name(copied)["windows.log"].documents[0].text == "first\nsecond\n"


def test_a_locked_attachment_is_not_cached_so_its_password_works_later(
        corpus: Path, tmp_path: Path, cache: TextCache) -> None:
    import base64

    pdf = base64.encodebytes((corpus / "pdf" / "encrypted" / "pdfminer-rc4-40.pdf").read_bytes())
    box = tmp_path / "box.mbox"
    box.write_text(
        "From x@example.com Mon Jan  1 00:00:00 2024\nFrom: x@example.com\nSubject: s\n"
        "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nsee\n"
        '--b\nContent-Type: application/pdf; name="secret.pdf"\nContent-Disposition: '
        'attachment; filename="secret.pdf"\nContent-Transfer-Encoding: base64\n\n'
        f"{pdf.decode()}--b--\n")
    first = ingest([box], cache=cache)
    assert any("password" in w for w in first.files[0].warnings)
    second = ingest([box], cache=cache, passwords=["baz"])
    assert not second.files[0].cached
    assert "Secret!" in second.documents[1].text


def test_a_file_that_vanishes_mid_read_is_a_per_file_error(tmp_path: Path, cache: TextCache,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from rlm_desktop.corpus import ingest as ingest_module

    doomed = tmp_path / "doomed.log"
    doomed.write_text("plain ascii\n")
    kept = tmp_path / "kept.log"
    kept.write_text("still here\n")
    real = ingest_module._Run._on_frame

    def on_frame(self, task, worker, kind, payload):  # type: ignore[no-untyped-def]
        if task.file.name == "doomed.log" and payload and b'"hashed"' in payload:
            doomed.unlink()
        return real(self, task, worker, kind, payload)

    monkeypatch.setattr(ingest_module._Run, "_on_frame", on_frame)
    result = ingest([doomed, kept], cache=cache, workers=1)
    files = by_name(result)
    assert files["doomed.log"].error
    assert files["kept.log"].documents[0].text == "still here\n"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Landlock and seccomp")
def test_a_parser_taken_over_by_a_file_can_write_connect_and_spawn_nothing(
        corpus: Path, tmp_path: Path, cache: TextCache,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # As if a hostile file had taken over a parser library: it tries what an attacker would.
    out = tmp_path / "written-by-parser.txt"
    script = tmp_path / "hostile_worker.py"
    script.write_text(textwrap.dedent(f"""
        import socket, subprocess
        import rlm_desktop.corpus.formats as formats
        real = formats.extract
        def attempt(label, fn):
            try:
                fn()
                return label + ":done"
            except Exception:
                return label + ":blocked"
        def extract(source, ctx, fmt=None):
            if "hostile" in source.name:
                raise RuntimeError(" ".join([
                    attempt("write", lambda: open({str(out)!r}, "w").write("x")),
                    attempt("socket", lambda: socket.socket().close()),
                    attempt("spawn", lambda: subprocess.run(["true"], check=True)),
                ]))
            return real(source, ctx, fmt)
        formats.extract = extract
        from rlm_desktop.corpus.worker import worker_main
        raise SystemExit(worker_main())
    """))
    monkeypatch.setattr(pool_module, "worker_command", lambda: [sys.executable, str(script)])
    hostile = tmp_path / "hostile.log"
    hostile.write_text("a file that takes over its parser – ünïcode\n")
    log = corpus / "logs" / "Apache_2k.log"
    result = ingest([hostile, log], cache=cache, workers=1)
    files = by_name(result)
    assert "write:blocked socket:blocked spawn:blocked" in (files["hostile.log"].error or "")
    assert not out.exists()
    assert files["Apache_2k.log"].lines == 2000  # reading still works
