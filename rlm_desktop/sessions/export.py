"""Exports of an investigation: a self-contained HTML report, the JSON record, CSV citations.

The HTML report needs nothing but a browser: inline CSS, `<details>` for the step tree, no
script, no image, no link to anything outside the file. Everything the model or the
documents wrote is HTML-escaped. Its last part is the SHA-256 of everything before the
line `<!-- rlm-desktop:sha256 -->` (the UTF-8 bytes, that line excluded), so a reader can
check that the report was not edited:

    sed '/^<!-- rlm-desktop:sha256 -->$/,$d' report.html | sha256sum
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rlm_desktop.engine.summary import summarize
from rlm_desktop.engine.trace import TraceNode
from rlm_desktop.sessions.investigation import INTERRUPTED, Investigation

FORMATS = ("html", "json", "csv")
DIGEST_MARKER = "<!-- rlm-desktop:sha256 -->"
CSV_COLUMNS = ("document", "path", "page", "line", "text", "sha256")


def to_json(investigation: Investigation) -> str:
    """The whole investigation as JSON text (docs/investigation-format.md)."""
    return json.dumps(investigation.to_json(), ensure_ascii=False, indent=2, default=str) + "\n"


def to_csv(investigation: Investigation) -> str:
    """One row per citation: document, path, page, line, quoted text, sha256 of the file."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for citation in investigation.citations:
        entry = investigation.document(str(citation.get("document")))
        writer.writerow([
            _cell(citation.get("document")), _cell(citation.get("path")),
            _cell(citation.get("page")), _cell(citation.get("line")),
            _cell(citation.get("text")), entry.sha256 if entry else "",
        ])
    return out.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # Spreadsheets run cells that start like a formula; quoted text is data, never that.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_html(investigation: Investigation) -> str:
    """The self-contained report (see the module docstring for its digest)."""
    inv = investigation
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"generator\" content=\"RLM Desktop\">\n",
        f"<title>Investigation {_e(inv.id)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n",
        f"<h1>Investigation <code>{_e(inv.id)}</code></h1>\n",
        _table([("Status", _status(inv)), ("Started", _date(inv.created)),
                ("Ended", _date(inv.ended) if inv.ended else "—"),
                ("Replay of", inv.replay_of or "—")]),
        "<section id=\"question\">\n<h2>Question</h2>\n",
        f"<p class=\"question\">{_e(inv.question)}</p>\n</section>\n",
        "<section id=\"answer\">\n<h2>Answer</h2>\n",
        f"<pre class=\"answer\">{_e(inv.answer) or '(no answer)'}</pre>\n",
    ]
    if inv.error:
        parts.append(f"<p class=\"error\">{_e(inv.error)}</p>\n")
    parts.append("</section>\n")
    parts.append(_citations(inv))
    parts.append(_steps(inv))
    parts.append(_corpus(inv))
    parts.append(_settings(inv))
    parts.append(_usage(inv))
    body = "".join(parts)
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    footer = (
        f"{DIGEST_MARKER}\n<footer>\n<p>SHA-256 of this report's content: "
        f"<code id=\"sha256\">{digest}</code></p>\n"
        "<p>What is hashed: the UTF-8 bytes of this file from its first byte up to the line "
        f"<code>{_e(DIGEST_MARKER)}</code>, that line and everything after it excluded. "
        "To check: <code>sed '/^&lt;!-- rlm-desktop:sha256 --&gt;$/,$d' REPORT.html | "
        "sha256sum</code></p>\n</footer>\n</body>\n</html>\n"
    )
    return body + footer


def report_digest(report: str) -> tuple[str, str | None]:
    """(SHA-256 of the content, the digest printed in the footer) of an HTML report."""
    body, marker, footer = report.partition(DIGEST_MARKER + "\n")
    if not marker:
        return hashlib.sha256(report.encode("utf-8")).hexdigest(), None
    printed = re.search(r'<code id="sha256">([0-9a-f]{64})</code>', footer)
    return (hashlib.sha256(body.encode("utf-8")).hexdigest(),
            printed.group(1) if printed else None)


def export(investigation: Investigation, format: str) -> str:
    if format == "html":
        return to_html(investigation)
    if format == "json":
        return to_json(investigation)
    if format == "csv":
        return to_csv(investigation)
    raise ValueError(f"unknown export format {format!r} (one of {', '.join(FORMATS)})")


# -- pieces of the report ---------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _date(when: float | None) -> str:
    if when is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))


def _status(inv: Investigation) -> str:
    if inv.status == INTERRUPTED:
        return "interrupted (the app stopped during the run; steps up to then are recorded)"
    return inv.status


def _table(rows: Iterable[tuple[str, Any]], cls: str = "facts") -> str:
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>\n" for k, v in rows)
    return f"<table class=\"{cls}\">\n{cells}</table>\n"


def _citations(inv: Investigation) -> str:
    out = [f"<section id=\"citations\">\n<h2>Citations ({len(inv.citations)})</h2>\n"]
    if not inv.citations:
        out.append("<p>None.</p>\n")
    else:
        out.append("<ol class=\"citations\">\n")
        for c in inv.citations:
            entry = inv.document(str(c.get("document")))
            where = [f"<b>{_e(c.get('document'))}</b>"]
            if c.get("page") is not None:
                where.append(f"page {_e(c.get('page'))}")
            where.append(f"line {_e(c.get('line'))}")
            out.append(
                f"<li><blockquote>{_e(c.get('text'))}</blockquote>\n"
                f"<p class=\"where\">{', '.join(where)} — <code>{_e(c.get('path'))}</code>"
                + (f" — sha256 <code>{_e(entry.sha256)}</code>" if entry else "")
                + "</p></li>\n")
        out.append("</ol>\n")
    out.append("</section>\n")
    return "".join(out)


def _steps(inv: Investigation) -> str:
    children: dict[int | None, list[TraceNode]] = {}
    for node in inv.nodes:
        children.setdefault(node.parent, []).append(node)
    known = {node.id for node in inv.nodes}
    # Orphans (a parent that was never written, e.g. an interrupted write) are shown at top.
    roots = [n for n in inv.nodes if n.parent is None or n.parent not in known]
    out = [f"<section id=\"steps\">\n<h2>Steps ({len(inv.nodes)})</h2>\n"]
    interrupted = inv.status == INTERRUPTED
    stack: list[tuple[TraceNode, bool]] = [(n, False) for n in reversed(roots)]
    while stack:  # iterative: a deep tree must not hit the recursion limit
        node, closing = stack.pop()
        if closing:
            out.append("</div>\n</details>\n")
            continue
        out.append(_node_head(node, interrupted))
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(children.get(node.id, [])))
    out.append("</section>\n")
    return "".join(out)


def _node_head(node: TraceNode, interrupted: bool) -> str:
    summary = summarize(node)
    if node.ended is None:
        summary += " (interrupted)" if interrupted else " (running)"
    state = " error" if node.error else ""
    facts = [("Step", node.id), ("Kind", node.kind), ("Parent", node.parent),
             ("Depth", node.depth), ("Started", _date(node.started)),
             ("Ended", _date(node.ended)),
             ("Seconds", f"{node.ended - node.started:.3f}" if node.ended is not None else "—")]
    if node.model:
        facts.append(("Model", node.model))
    if node.usage is not None:
        facts.append(("Tokens", f"{node.usage.prompt_tokens:,} in, "
                                f"{node.usage.completion_tokens:,} out"
                                + (" (estimated)" if node.usage.estimated else "")))
    if node.cost_usd is not None:
        facts.append(("Cost", f"${node.cost_usd:.6f}"))
    for key, value in node.extra.items():
        facts.append((key, json.dumps(value, ensure_ascii=False, default=str)))
    if node.error:
        facts.append(("Error", node.error))
    open_ = " open" if node.parent is None else ""
    return (
        f"<details id=\"node-{node.id}\" class=\"node {_e(node.kind)}{state}\"{open_}>\n"
        f"<summary><span class=\"kind\">{_e(node.kind)}</span> #{node.id} {_e(summary)}"
        "</summary>\n<div class=\"body\">\n" + _table(facts, "node-facts")
        + f"<h4>Input</h4>\n<pre>{_e(_shown(node.input))}</pre>\n"
        + f"<h4>Output</h4>\n<pre>{_e(_shown(node.output))}</pre>\n"
    )


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def _corpus(inv: Investigation) -> str:
    rows = []
    for entry in inv.corpus:
        rows.append(
            f"<tr><td>{_e(entry.name)}</td><td>{_e(entry.kind)}</td>"
            f"<td class=\"num\">{entry.size:,}</td>"
            f"<td class=\"num\">{'' if entry.pages is None else entry.pages}</td>"
            f"<td><code>{_e(entry.path)}</code></td><td><code>{_e(entry.sha256)}</code></td>"
            "</tr>\n")
    return (f"<section id=\"corpus\">\n<h2>Corpus ({len(inv.corpus)} documents)</h2>\n"
            "<table class=\"corpus\">\n<tr><th>Document</th><th>Kind</th><th>Bytes</th>"
            "<th>Pages</th><th>Path</th><th>SHA-256 of the file</th></tr>\n"
            + "".join(rows) + "</table>\n</section>\n")


def _settings(inv: Investigation) -> str:
    s = inv.settings
    rows: list[tuple[str, Any]] = [
        ("App version", s.get("app_version")), ("Prompt version", s.get("prompt_version")),
        ("Trace format", s.get("trace_format")), ("Endpoint", s.get("base_url") or "OpenAI"),
        ("Root model", s.get("model")), ("Child model", s.get("sub_model")),
    ]
    for group in ("limits", "sandbox_policy", "pricing", "extraction"):
        for key, value in (s.get(group) or {}).items():
            rows.append((f"{group.replace('_', ' ')}: {key}",
                         json.dumps(value, default=str)))
    if inv.sandbox:
        rows.append(("Sandbox achieved", json.dumps(inv.sandbox, default=str)))
    return f"<section id=\"settings\">\n<h2>Settings</h2>\n{_table(rows)}</section>\n"


def _usage(inv: Investigation) -> str:
    u = inv.usage
    rows: list[tuple[str, Any]] = [
        ("Prompt tokens", f"{u.prompt_tokens:,}"), ("Completion tokens",
                                                     f"{u.completion_tokens:,}"),
        ("Total tokens", f"{u.total_tokens:,}" + (" (estimated)" if u.estimated else "")),
        ("Cost", f"${inv.cost_usd:.6f}"), ("Root turns", inv.iterations),
        ("Child calls", inv.subcalls), ("Seconds", f"{inv.elapsed_s:.3f}"),
    ]
    if inv.unpriced_models:
        rows.append(("Models without a price (counted as free)",
                     ", ".join(inv.unpriced_models)))
    return f"<section id=\"usage\">\n<h2>Usage and cost</h2>\n{_table(rows)}</section>\n"


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;
max-width:70em;padding:0 1em;color:#1d1d1f;background:#fff}
h1{font-size:1.5em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
code,pre{font:13px/1.4 ui-monospace,Menlo,Consolas,monospace}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f6f6;padding:.6em;
border-radius:4px;max-height:40em;overflow:auto}
pre.answer{background:#eef6ee;font-size:14px}
table{border-collapse:collapse;margin:.5em 0}th,td{text-align:left;vertical-align:top;
padding:.2em .6em;border-bottom:1px solid #eee}td.num{text-align:right}
table.corpus code{word-break:break-all}
blockquote{margin:.3em 0;padding:.3em .8em;border-left:3px solid #6a8;background:#f7fbf8;
white-space:pre-wrap}
.where{margin:.1em 0 .8em;color:#555;font-size:.9em}
details.node{margin:.2em 0 .2em 1.2em;border-left:1px solid #ddd;padding-left:.5em}
details.node>summary{cursor:pointer}details.node.error>summary{color:#b00}
.kind{display:inline-block;min-width:6em;font-weight:600}
.error{color:#b00}footer{margin-top:2em;border-top:1px solid #ddd;color:#555;font-size:.9em}
@media print{details.node{display:block}pre{max-height:none}}
"""


def write_report(target: Path, text: str) -> None:
    """Write an export owner-only (like the database it comes from), whole: to a temporary
    name beside `target`, then renamed. Raises OSError."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
