"""`rlm-desktop ask`: read documents, run the RLM, show the steps live and print the answer.

Exit status: 0 completed, 4 cut short with a partial answer (max_iterations,
budget_exhausted, timeout), 1 error or nothing readable, 2 usage, 130 cancelled.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rlm_desktop.corpus.document import one_line
from rlm_desktop.engine.summary import started_summary, summarize
from rlm_desktop.engine.trace import TraceEvent, TraceNode

if TYPE_CHECKING:
    from rlm_desktop.engine.run import RunResult

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 4
EXIT_CANCELLED = 130


class LiveTree:
    """Prints each step as an indented line when it ends (root calls also when they start)."""

    BATCH_SHOWN = 3  # items of an llm_query_batched shown one per line; the rest counted

    def __init__(self, out: IO[str], width: int = 120) -> None:
        self.out = out
        self.width = width
        self.levels: dict[int, int] = {}
        self.hidden: dict[int, list[int]] = {}  # parent id -> [calls not shown, failed]

    def __call__(self, event: TraceEvent) -> None:
        node = event.node
        if event.type == "delta":
            return
        if event.type == "start":
            self.levels[node.id] = (self.levels.get(node.parent, -1) + 1
                                    if node.parent is not None else 0)
            if node.kind in ("run", "root_call", "code", "rlm_query"):
                self._line(node, started_summary(node))
            return
        if node.kind == "llm_query" and node.parent is not None:
            index = (node.input or {}).get("index")
            if index is not None and index >= self.BATCH_SHOWN:
                counts = self.hidden.setdefault(node.parent, [0, 0])
                counts[0] += 1
                counts[1] += node.error is not None
                return
        if node.id in self.hidden:
            counts = self.hidden.pop(node.id)
            failed = f", {counts[1]:,} failed" if counts[1] else ""
            indent = "  " * (self.levels.get(node.id, 0) + 1)
            self.out.write(f"{indent}… and {counts[0]:,} more child calls{failed}\n")
        text = summarize(node)
        if text:
            self._line(node, text)

    def _line(self, node: TraceNode, text: str) -> None:
        indent = "  " * self.levels.get(node.id, 0)
        line = one_line(printable(text), max(40, self.width - len(indent)))
        self.out.write(indent + line + "\n")
        self.out.flush()


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Model output on a terminal: control characters (ESC sequences that could rewrite
    the screen, set the clipboard or hide links) shown as escapes, never obeyed."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def run_ask(args: argparse.Namespace) -> int:
    from rlm_desktop.corpus.ingest import ingest
    from rlm_desktop.engine.budget import Limits, Pricing
    from rlm_desktop.engine.repl import SandboxPolicy
    from rlm_desktop.engine.run import Run, RunConfig
    from rlm_desktop.engine.trace import JsonlWriter
    from rlm_desktop.paths import config_dir
    from rlm_desktop.settings import Settings, resolve_endpoint

    settings = Settings.load()
    base_url, api_key = resolve_endpoint(args.base_url, args.api_key)
    limits = Limits()
    overrides: dict[str, Any] = {
        "max_iterations": args.max_iterations, "max_depth": args.max_depth,
        "max_subcalls": args.max_subcalls, "max_tokens": args.max_tokens,
        "max_cost_usd": args.max_cost, "timeout_s": args.timeout,
        "cell_timeout_s": args.cell_timeout, "concurrency": args.concurrency,
    }
    limits = replace(limits, **{k: v for k, v in overrides.items() if v is not None})
    try:
        pricing = Pricing.load(config_dir() / "pricing.json")
        if args.pricing:
            if not Path(args.pricing).is_file():
                raise ValueError(f"{args.pricing}: no such file")
            pricing.prices.update(Pricing.load(Path(args.pricing)).prices)
    except (OSError, ValueError) as exc:
        print(f"rlm-desktop: pricing: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not args.question.strip():
        print("rlm-desktop: the question is empty", file=sys.stderr)
        return EXIT_USAGE
    model = args.model or settings.model
    # A model named on the command line also answers the child calls unless --sub-model
    # says otherwise: a saved sub-model may not exist on this endpoint.
    sub_model = args.sub_model or (model if args.model else settings.sub_model) or model
    if args.max_cost is not None:
        unpriced = sorted({m for m in (model, sub_model) if pricing.price_of(m) is None})
        if unpriced:
            print(f"rlm-desktop: warning: no price known for {', '.join(unpriced)}; their "
                  "calls count as free against --max-cost (add them to pricing.json)",
                  file=sys.stderr)
    sandbox = SandboxPolicy(minimum=args.min_sandbox or settings.min_sandbox)
    config = RunConfig(base_url=base_url, api_key=api_key, model=model,
                       sub_model=sub_model,
                       limits=limits, pricing=pricing, sandbox=sandbox)

    try:
        result = ingest(args.paths, passwords=args.password)
    except KeyboardInterrupt:
        print("\nrlm-desktop: interrupted while reading the documents", file=sys.stderr)
        return EXIT_CANCELLED
    for failed in result.failed:
        print(f"rlm-desktop: skipped {failed.name}: {failed.error}", file=sys.stderr)
    documents = result.documents
    if not documents:
        print("rlm-desktop: no readable documents in the given paths", file=sys.stderr)
        return EXIT_ERROR

    recorder, store = None, None
    if not args.no_save:
        from rlm_desktop.sessions.recorder import Recorder
        from rlm_desktop.sessions.store import Store, StoreError

        try:
            store = Store()
            recorder = Recorder(store)
            investigation = recorder.begin(args.question, documents, config)
            config = recorder.configure(config)
            print(f"rlm-desktop: recording investigation {investigation}", file=sys.stderr)
        except StoreError as exc:
            print(f"rlm-desktop: warning: this investigation will not be saved: {exc}",
                  file=sys.stderr)
            recorder = None

    run = Run(documents, args.question, config)
    if recorder is not None:
        run.trace.subscribe(recorder)
    writer = None
    if args.trace:
        try:
            writer = JsonlWriter(args.trace)
        except OSError as exc:
            print(f"rlm-desktop: cannot write the trace: {exc}", file=sys.stderr)
            return EXIT_USAGE
        run.trace.subscribe(writer)
    if not args.json:
        run.trace.subscribe(LiveTree(sys.stdout))

    previous = _install_interrupt(run)
    try:
        outcome = run.execute_sync()
        if recorder is not None:
            recorder.finish(outcome)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if writer is not None:
            writer.close()
        if store is not None:
            store.close()
            if store.write_failure:
                print(f"rlm-desktop: warning: the investigation was not saved completely: "
                      f"{store.write_failure}", file=sys.stderr)

    return report(outcome, as_json=args.json, trace_path=args.trace,
                  investigation=recorder.investigation if recorder is not None else None)



def report(outcome: RunResult, *, as_json: bool, trace_path: str | None = None,
           investigation: str | None = None) -> int:
    """Print a run's result (JSON, or the answer with its sources) and return the exit
    status `ask` gives it: 0 completed, 130 cancelled, 1 error, 4 cut short."""
    if as_json:
        data = outcome.to_json(trace_path)
        if investigation is not None:
            data["investigation"] = investigation
        # ASCII escapes: valid on any console encoding, and whatever the model wrote.
        json.dump(data, sys.stdout, ensure_ascii=True, indent=2)
        sys.stdout.write("\n")
    else:
        print()
        print(printable(outcome.answer) if outcome.answer else "(no answer)")
        if outcome.citations:
            print("\nSources:")
            for i, c in enumerate(outcome.citations[:30], 1):
                where = f"p.{c['page']} " if c.get("page") else ""
                print(printable(f"  [{i}] {c['document']} {where}line {c['line']}: "
                                f"{one_line(str(c.get('text', '')), 80)}"))
            if len(outcome.citations) > 30:
                print(f"  … and {len(outcome.citations) - 30} more")
        if outcome.status != "completed":
            print(printable(f"\nstatus: {outcome.status}" + (
                f" — {outcome.error}" if outcome.error else "")), file=sys.stderr)
    if outcome.status == "completed":
        return EXIT_OK
    if outcome.status == "cancelled":
        return EXIT_CANCELLED
    if outcome.status == "error":
        return EXIT_ERROR
    return EXIT_PARTIAL

def _install_interrupt(run: Any) -> dict[int, Any]:
    """Ctrl-C and SIGTERM cancel the run (which then reports its partial answer) instead of
    killing the process and leaving its workers behind."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: Any) -> None:
        run.cancel()

    previous = {}
    for name in ("SIGINT", "SIGTERM"):
        signum = getattr(signal, name, None)
        if signum is not None:
            previous[signum] = signal.signal(signum, handler)
    return previous
