"""`rlm-desktop`: the desktop app by default, subcommands for headless use."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from rlm_desktop import __version__

if TYPE_CHECKING:
    from rlm_desktop.corpus.ingest import IngestResult

N = TypeVar("N", int, float)

EXIT_OK = 0
EXIT_NOTHING_READ = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlm-desktop",
        description="Ask hard questions of large document sets with Recursive Language Models.",
        epilog="Without a command, opens the desktop window: rlm-desktop [PATH ...] "
        "[--question Q] [--run] [--screenshot FILE] [--exit-when-done] [--demo].",
    )
    parser.add_argument("--version", action="version", version=f"rlm-desktop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    ingest = commands.add_parser(
        "ingest",
        help="read documents and report what was found",
        description="Read PDFs, Word files, mailboxes, logs and text (files or folders) and "
        "list every file with its counts, or the reason it could not be read.",
    )
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    ingest.add_argument("--json", action="store_true", help="print machine-readable JSON")
    ingest.add_argument(
        "--password", action="append", default=[], metavar="PW",
        help="password for protected PDFs (repeat to try several)",
    )
    ingest.add_argument("--no-cache", action="store_true", help="ignore and bypass the text cache")
    ingest.add_argument("--workers", type=_positive_int, metavar="N",
                        help="parser processes (default: one per CPU)")
    ingest.add_argument("--timeout", type=_positive_float, metavar="S",
                        help="seconds allowed per file before it is given up (default 120)")
    _add_ask(commands)
    _add_sessions(commands)
    return parser


def _add_sessions(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    history = commands.add_parser(
        "history", help="list saved investigations",
        description="List saved investigations, newest first: id, date, status, cost, "
        "corpus and question.")
    history.add_argument("--json", action="store_true", help="print machine-readable JSON")
    export = commands.add_parser(
        "export", help="export a saved investigation as an HTML report, JSON or CSV",
        description="Export a saved investigation: a self-contained HTML report (question, "
        "answer, citations, every step, corpus hashes, settings; its own SHA-256 at the "
        "end), the whole record as JSON, or its citations as CSV.")
    _investigation_argument(export)
    export.add_argument("--format", "-f", choices=("html", "json", "csv"), default="html")
    export.add_argument("--output", "-o", metavar="FILE", help="write here (default: stdout)")
    replay = commands.add_parser(
        "replay", help="rerun a saved investigation from its recorded model responses",
        description="Run a saved investigation again with every model response taken from "
        "the record: no model is called and nothing is spent. Says whether the steps, answer "
        "and citations were reproduced (exit status 1 when not).")
    _investigation_argument(replay)
    replay.add_argument("--json", action="store_true", help="print the result as JSON")
    replay.add_argument("--no-save", action="store_true",
                        help="do not save the replay as a new investigation")
    resume = commands.add_parser(
        "resume", help="carry on a saved investigation that was cut short",
        description="Resume an investigation that was interrupted, cancelled or ran out of "
        "time or budget: its recorded model responses bring it back to where it stopped "
        "(no model call, nothing spent), then its own models carry on live through the "
        "endpoint given here (flag, then OPENAI_BASE_URL / OPENAI_API_KEY, then settings). "
        "Saved as a new investigation.")
    _investigation_argument(resume)
    resume.add_argument("--base-url", metavar="URL", help="OpenAI-compatible endpoint")
    resume.add_argument("--api-key", metavar="KEY", help="API key for the endpoint")
    resume.add_argument("--max-iterations", type=_positive_int, metavar="N",
                        help="new limits (default: the recorded ones, which stop it again "
                             "where it stopped if one of them did)")
    resume.add_argument("--max-subcalls", type=_non_negative_int, metavar="N")
    resume.add_argument("--max-tokens", type=_positive_int, metavar="N")
    resume.add_argument("--max-cost", type=_non_negative_float, metavar="USD")
    resume.add_argument("--timeout", type=_positive_float, metavar="S")
    resume.add_argument("--json", action="store_true", help="print the result as JSON")
    resume.add_argument("--no-save", action="store_true",
                        help="do not save the resumed run as a new investigation")


def _add_ask(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ask = commands.add_parser(
        "ask",
        help="answer a question about documents with a Recursive Language Model",
        description="Read the documents, then let a root model explore them in a sandboxed "
        "REPL and answer. The steps are shown as a live tree; --json prints the result.",
    )
    ask.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    ask.add_argument("--question", "-q", required=True, metavar="Q", help="the question")
    ask.add_argument("--base-url", metavar="URL",
                     help="OpenAI-compatible endpoint (default: OPENAI_BASE_URL, then settings)")
    ask.add_argument("--api-key", metavar="KEY",
                     help="API key (default: OPENAI_API_KEY, then the OS keyring)")
    ask.add_argument("--model", metavar="M", help="root model (default: from settings)")
    ask.add_argument("--sub-model", metavar="M", help="model for child calls")
    ask.add_argument("--max-iterations", type=_positive_int, metavar="N")
    ask.add_argument("--max-depth", type=_non_negative_int, metavar="N")
    ask.add_argument("--max-subcalls", type=_non_negative_int, metavar="N")
    ask.add_argument("--max-tokens", type=_positive_int, metavar="N")
    ask.add_argument("--max-cost", type=_non_negative_float, metavar="USD")
    ask.add_argument("--timeout", type=_positive_float, metavar="S",
                     help="wall-clock limit of the whole run")
    ask.add_argument("--cell-timeout", type=_positive_float, metavar="S",
                     help="wall-clock limit of one REPL cell (child calls not counted)")
    ask.add_argument("--concurrency", type=_positive_int, metavar="N",
                     help="child calls in flight at once (default 8)")
    ask.add_argument("--trace", metavar="FILE.jsonl", help="write every step as JSON lines")
    ask.add_argument("--json", action="store_true", help="print the result as JSON")
    ask.add_argument("--min-sandbox", choices=("none", "partial", "full"),
                     help="refuse to run model code when the OS confinement of the REPL is "
                     "below this level (default: from settings, 'partial')")
    ask.add_argument("--pricing", metavar="FILE.json",
                     help='prices per million tokens, {"model": [input, output]}, over the '
                     "built-in table (default: pricing.json in the config dir)")
    ask.add_argument("--password", action="append", default=[], metavar="PW",
                     help="password for protected PDFs (repeat to try several)")
    ask.add_argument("--no-save", action="store_true",
                     help="do not save this investigation (saved by default; see history)")


def _checked(convert: Callable[[str], N], ok: Callable[[N], bool], message: str,
             name: str) -> Callable[[str], N]:
    """An argparse type: `convert`, then refuse values for which `ok` is false."""

    def parse(value: str) -> N:
        number = convert(value)
        if not ok(number):
            raise argparse.ArgumentTypeError(message)
        return number

    parse.__name__ = name  # argparse names the type in its "invalid ... value" message
    return parse


_non_negative_int = _checked(int, lambda n: n >= 0, "must be 0 or more", "int")
_non_negative_float = _checked(float, lambda n: n >= 0, "must be 0 or more", "float")
_positive_int = _checked(int, lambda n: n >= 1, "must be at least 1", "int")
_positive_float = _checked(float, lambda n: n > 0, "must be positive", "float")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["--ingest-worker"]:  # the frozen app starting a parser process
        from rlm_desktop.corpus.worker import worker_main

        return worker_main()
    if args_list[:1] == ["--repl-worker"]:  # the frozen app starting a REPL worker
        from rlm_desktop.engine.repl_worker import worker_main as repl_main

        return repl_main()
    if args_list[:1] == ["--diagnose"]:  # hidden: what the packaging smoke test checks
        json.dump(diagnose(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    if not _wants_subcommand(args_list):
        return _run_gui(args_list)
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command == "ingest":
        return _run_ingest(args)
    if args.command == "ask":
        from rlm_desktop.ask import run_ask

        return run_ask(args)
    if args.command in ("history", "export", "replay", "resume"):
        from rlm_desktop.sessions import commands as sessions

        run = {"history": sessions.run_history, "export": sessions.run_export,
               "replay": sessions.run_replay, "resume": sessions.run_resume}[args.command]
        return run(args)
    parser.print_help()
    return EXIT_OK


SUBCOMMANDS = ("ingest", "ask", "history", "export", "replay", "resume")


def _wants_subcommand(args: list[str]) -> bool:
    """A subcommand, or the top-level --help/--version; anything else opens the window."""
    if any(a in ("-h", "--help", "--version") for a in args):
        return not args or args[0] in (*SUBCOMMANDS, "-h", "--help", "--version")
    return bool(args) and args[0] in SUBCOMMANDS


def _investigation_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("investigation", metavar="INVESTIGATION",
                        help="an id from `rlm-desktop history`, a unique prefix, or 'last'")


def build_gui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlm-desktop",
        description="Open the desktop window (subcommands: ingest, ask, history, export, "
        "replay, resume; see --help).",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="files or folders to read when the window opens")
    parser.add_argument("--question", "-q", metavar="Q", help="fill in the question")
    parser.add_argument("--run", action="store_true",
                        help="run the question once the documents are read")
    parser.add_argument("--screenshot", metavar="FILE.png",
                        help="save a picture of the window when the run (or reading) is done")
    parser.add_argument("--exit-when-done", action="store_true",
                        help="quit after that (with --screenshot: after saving it)")
    parser.add_argument("--demo", action="store_true",
                        help="open the bundled demo corpus and question, answered by a "
                             "scripted stand-in server (not a language model)")
    return parser


def _run_gui(args_list: list[str]) -> int:
    args = build_gui_parser().parse_args(args_list)
    try:
        from rlm_desktop.ui.app import run_gui  # Qt is loaded only for the window
    except ImportError as exc:
        print(f"rlm-desktop: the desktop window cannot start: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_gui(args)


def _run_ingest(args: argparse.Namespace) -> int:
    from rlm_desktop.corpus.ingest import Progress, ingest
    from rlm_desktop.corpus.limits import Limits

    limits = Limits()
    if args.timeout:
        limits = Limits(**{**limits.to_dict(), "seconds_per_file": args.timeout,
                           "seconds_per_mib": 0.0})
    show_progress = sys.stderr.isatty() and not args.json
    width = shutil.get_terminal_size().columns

    def progress(p: Progress) -> None:
        line = (f"[{p.files_done}/{p.files_total}] {p.bytes_done / 2**20:,.1f}/"
                f"{p.bytes_total / 2**20:,.1f} MiB  {p.current or ''}")
        sys.stderr.write("\r" + line[: width - 1].ljust(width - 1))
        sys.stderr.flush()

    cancel = threading.Event()
    try:
        result = ingest(args.paths, limits=limits, passwords=args.password,
                        progress=progress if show_progress else None, cancel=cancel,
                        workers=args.workers, use_cache=not args.no_cache)
    except KeyboardInterrupt:
        cancel.set()
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if show_progress:
        sys.stderr.write("\r" + " " * (width - 1) + "\r")
    if args.json:
        json.dump(result.to_json(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_table(result))
    return EXIT_OK if result.documents else EXIT_NOTHING_READ


def format_table(result: IngestResult) -> str:
    """A readable table of an IngestResult, one row per file, and a summary line."""
    rows = [("", "KIND", "FILE", "CHARS", "CONTENT")]
    for f in result.files:
        if f.error is not None:
            rows.append(("✗", f.kind, f.name, "", f"error: {f.error}"))
            continue
        if f.pages is not None:
            content = _count(f.pages, "page")
        elif f.messages is not None:
            content = _count(f.messages, "message")
        elif f.format == "zip":
            content = _count(len(f.documents), "document")
        else:
            content = _count(f.lines, "line")
        extra = len(f.documents) - (f.messages or 1)
        if extra > 0 and f.format != "zip":
            content += f" + {_count(extra, 'attachment')}"
        if f.warnings:
            content += f" ({_count(len(f.warnings), 'warning')})"
        rows.append(("✓", f.kind, f.name, f"{f.chars:,}", content))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = [row[i].rjust(widths[i]) if i == 3 else row[i].ljust(widths[i])
                 for i in range(4)]
        lines.append("  ".join([*cells, row[4]]).rstrip())
    docs = result.documents
    pages = sum(f.pages or 0 for f in result.files)
    messages = sum(f.messages or 0 for f in result.files)
    chars = sum(f.chars for f in result.files)
    summary = (f"{_count(len(result.files), 'file')}, {_count(len(docs), 'document')} "
               f"({_count(pages, 'page')}, {_count(messages, 'message')}, "
               f"{chars:,} characters, ~{chars // 4:,} tokens); "
               f"{_count(len(result.failed), 'error')}")
    if result.cancelled:
        summary += "; cancelled"
    return "\n".join([*lines, "", summary])


def diagnose() -> dict[str, Any]:
    """What this installation of the app can do, as JSON (`rlm-desktop --diagnose`, not in
    --help): version, whether it is frozen, the keyring backend chosen and the backends
    registered (their entry points are metadata a frozen app must carry), the sandbox level
    a REPL worker reaches here (a real worker is started, from the frozen executable when
    frozen), the Qt version."""
    import asyncio
    import importlib
    import platform
    from importlib.metadata import entry_points

    from rlm_desktop.engine.pack import build_pack
    from rlm_desktop.engine.repl import ReplError, ReplProcess, SandboxPolicy, worker_command
    from rlm_desktop.settings import keyring_available

    report: dict[str, Any] = {
        "version": __version__, "frozen": bool(getattr(sys, "frozen", False)),
        "executable": sys.executable, "python": platform.python_version(),
        "platform": sys.platform, "worker_command": worker_command()}
    try:
        import keyring

        backend = keyring.get_keyring()
        report["keyring"] = {
            "backend": f"{type(backend).__module__}.{type(backend).__qualname__}",
            "usable": keyring_available(),
            "viable": sorted(b.name for b in keyring.backend.get_all_keyring()),
            "registered": sorted(ep.name for ep in entry_points(group="keyring.backends"))}
    except Exception as exc:  # a diagnostic reports a broken keyring, it does not stop
        report["keyring"] = {"error": f"{type(exc).__name__}: {exc}"}

    async def probe() -> dict[str, Any]:
        repl = ReplProcess(build_pack([]).to_json(), None, sandbox=SandboxPolicy(minimum="none"))
        try:
            info = await repl.start()

            async def no_call(message: dict[str, Any]) -> Any:
                return None

            cell = await repl.run_cell('print(len(context), "säure".encode("cp1252"))',
                                       timeout=30, on_call=no_call, on_event=lambda m: None)
            return {**(info.get("sandbox") or {}), "cell": {"stdout": cell.stdout,
                                                            "error": cell.error}}
        finally:
            await repl.close()

    try:
        report["sandbox"] = asyncio.run(probe())
    except (ReplError, OSError) as exc:
        report["sandbox"] = {"level": None, "error": str(exc)}
    try:
        # The one Qt look-up outside ui/, by name: loads QtCore only, and only here.
        report["qt"] = {"version": importlib.import_module("PySide6.QtCore").qVersion()}
    except ImportError as exc:
        report["qt"] = {"version": None, "error": str(exc)}
    return report


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


if __name__ == "__main__":
    raise SystemExit(main())
