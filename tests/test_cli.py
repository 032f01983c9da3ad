"""The `rlm-desktop` command as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlm_desktop import __version__


def run(*args: str, env_home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RLM_DESKTOP_HOME": str(env_home)}
    return subprocess.run([sys.executable, "-m", "rlm_desktop", *args], capture_output=True,
                          text=True, env=env, timeout=300, check=False)


def test_ingest_json_lists_every_file_of_the_corpus(corpus: Path, app_home: Path) -> None:
    result = run("ingest", str(corpus), "--json", env_home=app_home)
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)["documents"]
    on_disk = sorted(str(p) for p in corpus.rglob("*") if p.is_file()
                     and not p.name.startswith("."))
    listed = sorted(path for e in entries for path in e.get("paths", [e["path"]]))
    assert listed == on_disk, "every file appears once, duplicates under their twin"
    for entry in entries:
        assert {"path", "name", "kind", "chars", "sha256"} <= set(entry)
        if "error" in entry:
            assert entry["chars"] == 0
        else:
            assert entry["chars"] > 0
    by_name = {e["name"]: e for e in entries}
    assert by_name["f1040nr.pdf"]["pages"] == 5
    assert by_name["geotopo-GeoTopo-komprimiert.pdf"]["pages"] == 117
    assert by_name["linux-mips-2001-03.mbox"]["messages"] == 218
    assert by_name["lkml-notmuch-corpus.mbox"]["messages"] == 210
    assert by_name["OpenSSH_2k.log"]["lines"] == 2000
    assert by_name["OpenSSH_2k.log.1.gz"]["lines"] == 2000
    assert by_name["EmailWithSpecialCharsInSubject.msg"]["messages"] == 1
    assert "password" in by_name["pdfminer-rc4-40.pdf"]["error"]
    hostile = [e for e in entries if "/hostile/" in e["path"]]
    assert len({p for e in hostile for p in e.get("paths", [e["path"]])}) == 16
    errors = [e for e in hostile if "error" in e]
    assert {e["name"] for e in hostile} - {e["name"] for e in errors} == {
        "invalid_utf8.eml", "invalid_utf8.log"}


def test_ingest_password_option(corpus: Path, app_home: Path) -> None:
    encrypted = corpus / "pdf" / "encrypted"
    result = run("ingest", str(encrypted), "--json", "--password", "baz", "--password",
                 "openpassword", env_home=app_home)
    entries = {e["name"]: e for e in json.loads(result.stdout)["documents"]}
    assert "error" not in entries["pdfminer-aes-256.pdf"]
    assert "error" not in entries["libreoffice-writer-password.pdf"]
    assert "password" in entries["pypdf-r6-both-passwords.pdf"]["error"]


def test_ingest_table(corpus: Path, app_home: Path) -> None:
    result = run("ingest", str(corpus / "logs" / "Apache_2k.log"),
                 str(corpus / "hostile" / "truncated.log.gz"), env_home=app_home)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["KIND", "FILE", "CHARS", "CONTENT"]
    assert any("Apache_2k.log" in line and "2,000 lines" in line for line in lines)
    assert any("truncated.log.gz" in line and "error:" in line for line in lines)
    assert "2 files, 1 document" in lines[-1] and "1 error" in lines[-1]


def test_exit_codes(corpus: Path, app_home: Path) -> None:
    nothing = run("ingest", str(corpus / "hostile" / "empty.pdf"), env_home=app_home)
    assert nothing.returncode == 1
    usage = run("ingest", env_home=app_home)
    assert usage.returncode == 2
    assert "PATH" in usage.stderr
    bad_option = run("ingest", "--workers", "0", "x", env_home=app_home)
    assert bad_option.returncode == 2


def test_version_and_help(app_home: Path) -> None:
    assert run("--version", env_home=app_home).stdout.strip() == f"rlm-desktop {__version__}"
    shown = run("--help", env_home=app_home)
    assert shown.returncode == 0 and "ingest" in shown.stdout and "--screenshot" in shown.stdout


@pytest.mark.parametrize("flag", ["--json", None])
def test_missing_path_is_reported_not_raised(app_home: Path, tmp_path: Path,
                                             flag: str | None) -> None:
    args = ["ingest", str(tmp_path / "missing.pdf")] + ([flag] if flag else [])
    result = run(*args, env_home=app_home)
    assert result.returncode == 1
    assert "no such file" in result.stdout
    assert "Traceback" not in result.stderr
