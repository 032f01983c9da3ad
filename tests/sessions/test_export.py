"""Exports: the HTML report stands alone and checks itself, JSON round-trips, CSV has one row
per citation; `history` and `export` from the command line."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sessions_support import Recorded, record_run

from rlm_desktop.cli import main
from rlm_desktop.sessions.export import CSV_COLUMNS, report_digest, to_csv, to_html, to_json
from rlm_desktop.sessions.investigation import Investigation
from rlm_desktop.sessions.store import Store
from rlm_desktop.testing.server import ScriptedServer


class _Report(HTMLParser):
    """Collects what the checks need; fails on nothing (html.parser never raises)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.tags: set[str] = set()
        self.urls: list[str] = []
        self.text: list[str] = []
        self.open_details = 0
        self.max_open = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name == "id" and value:
                self.ids.append(value)
            if name in ("src", "href", "action", "srcset", "data", "poster"):
                self.urls.append(value or "")
        if tag == "details":
            self.open_details += 1
            self.max_open = max(self.max_open, self.open_details)

    def handle_endtag(self, tag: str) -> None:
        if tag == "details":
            self.open_details -= 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_report_holds_everything_and_nothing_external(recorded: Recorded) -> None:
    investigation = recorded.store.load(recorded.id)
    report = to_html(investigation)
    parser = _Report()
    parser.feed(report)
    parser.close()
    assert parser.open_details == 0 and parser.max_open >= 3  # the tree is nested
    node_ids = {f"node-{node.id}" for node in investigation.nodes}
    assert node_ids <= set(parser.ids) and len(node_ids) == len(investigation.nodes)
    assert not parser.urls and not ({"script", "img", "link", "iframe", "object"}
                                    & parser.tags)
    text = "".join(parser.text)
    assert investigation.question in text and investigation.answer in text
    for citation in investigation.citations:
        assert citation["text"] in text
    for node in investigation.nodes:  # every input and output, in full
        for value in (node.input, node.output):
            if isinstance(value, str):
                assert value in text
    for needle in (investigation.corpus[0].sha256, investigation.settings["prompt_version"],
                   investigation.settings["app_version"], "gpt-4o-mini",
                   f"{investigation.usage.total_tokens:,}"):
        assert needle in text
    computed, printed = report_digest(report)
    assert computed == printed
    body = report.encode()[: report.encode().index(b"<!-- rlm-desktop:sha256 -->\n")]
    assert hashlib.sha256(body).hexdigest() == printed
    tampered = report.replace(investigation.answer, "7 billing questions", 1)
    assert report_digest(tampered)[0] != report_digest(tampered)[1]


def test_html_escapes_what_models_and_documents_write(tmp_path: Path, app_home: Path) -> None:
    evil = tmp_path / "evil.txt"
    evil.write_text("<script>alert('doc')</script>\n<img src=http://x.invalid/t.png>\n")
    script = ["```repl\nprint(peek(context[0]))\nprint('<script>alert(1)</script>')\n```",
              "FINAL(<b>done</b> <iframe src=http://x.invalid></iframe>)"]
    with ScriptedServer(script) as server, Store() as store:
        investigation_id, _, result = record_run(store, server, [evil], "<i>q</i>?")
        assert result.status == "completed", result.error
        report = to_html(store.load(investigation_id))
    parser = _Report()
    parser.feed(report)
    assert not parser.urls and not ({"script", "img", "iframe", "b", "i"} & parser.tags)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report


def test_json_export_round_trips(recorded: Recorded) -> None:
    investigation = recorded.store.load(recorded.id)
    text = to_json(investigation)
    data = json.loads(text)
    assert data["format"] == "rlm-desktop-investigation" and data["version"] == 1
    assert Investigation.from_json(data) == investigation
    assert len(data["nodes"]) == len(investigation.nodes)
    assert set(data) >= {"id", "question", "status", "created", "ended", "settings", "corpus",
                         "answer", "citations", "usage", "cost_usd", "nodes"}


def test_csv_has_one_row_per_citation(recorded: Recorded) -> None:
    investigation = recorded.store.load(recorded.id)
    rows = list(csv.reader(io.StringIO(to_csv(investigation))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) - 1 == len(investigation.citations) == recorded.tickets.billing_by_three
    digest = hashlib.sha256(recorded.tickets.path.read_bytes()).hexdigest()
    lines = recorded.tickets.path.read_text().splitlines()
    for row, citation in zip(rows[1:], investigation.citations, strict=True):
        document, path, page, line, text, sha = row
        assert (document, path, page) == ("tickets.csv", str(recorded.tickets.path), "")
        assert int(line) == citation["line"] and text == lines[int(line) - 1]
        assert sha == digest


def test_history_and_export_commands(recorded: Recorded, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--json"]) == 0
    [item] = json.loads(capsys.readouterr().out)["investigations"]
    assert item["id"] == recorded.id and item["status"] == "completed"
    assert item["corpus"] == "tickets.csv" and item["cost_usd"] > 0
    assert main(["history"]) == 0
    listing = capsys.readouterr().out
    assert recorded.id in listing and "completed" in listing
    for fmt in ("html", "json", "csv"):
        target = tmp_path / f"report.{fmt}"
        assert main(["export", recorded.id, "--format", fmt, "-o", str(target)]) == 0
        if os.name == "posix":
            assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert json.loads((tmp_path / "report.json").read_text())["id"] == recorded.id
    assert main(["export", "last", "-f", "csv"]) == 0
    assert capsys.readouterr().out.startswith("document,path,page,line,text,sha256")
    assert main(["export", "no-such-id"]) == 2
    assert "no investigation 'no-such-id'" in capsys.readouterr().err


def test_formula_like_quotes_are_defused_in_csv(recorded: Recorded) -> None:
    investigation = recorded.store.load(recorded.id)
    investigation.citations = [{"document": "tickets.csv", "path": "p", "page": None,
                                "line": 1, "text": "=HYPERLINK(\"http://x.invalid\")"}]
    rows = list(csv.reader(io.StringIO(to_csv(investigation))))
    assert rows[1][4] == "'=HYPERLINK(\"http://x.invalid\")"
