"""The REPL worker process: holds the corpus and runs model-written code, cell by cell.

It has no API key and makes no network calls. When model code asks for a child model
(`llm_query`, `llm_query_batched`, `rlm_query`) the worker sends a request frame to the
parent, which makes the call within the run's budget, and blocks until the answer frame
arrives. Frames are length-prefixed JSON (never pickle), on stdin/stdout.

Parent -> worker: {"op": "init", "pack": ..., "spans": ..., "output_limit": n}
                  {"op": "exec", "code": "..."}
                  {"op": "result", "value": ...}          (answer to a call)
Worker -> parent: {"op": "ready", "documents": n, "chars": n, "load_s": s}
                  {"op": "event", "kind": "grep", "input": ..., "output": ..., ...}
                  {"op": "call", "kind": "llm_query", ...}
                  {"op": "done", "stdout": "...", "error": "..." | null, "final": ... | null}

Run as `python -m rlm_desktop.engine.repl_worker` (the frozen app: `--repl-worker`).
"""

from __future__ import annotations

import ast
import io
import os
import sys
import time
import traceback
from collections.abc import Callable
from types import CodeType
from typing import IO, Any

from rlm_desktop.corpus.worker import JSON_FRAME, ProtocolError, read_frame, send_json

CAPTURE_LIMIT = 1_000_000  # characters of printed output kept per cell
PRELOADED = ("re", "json", "math", "collections")  # in the namespace without an import
EVENTS_PER_CELL = 1000  # helper calls traced one by one per cell; the rest are counted
CELL_NAME = "<repl>"


class _Final(BaseException):
    """Raised by FINAL/FINAL_VAR to end the cell at once (BaseException: `except Exception`
    in model code does not swallow it)."""


class _Capture(io.TextIOBase):
    """stdout/stderr of a cell: keeps the first CAPTURE_LIMIT characters, counts the rest."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = CAPTURE_LIMIT - self.size
        if room > 0:
            kept = text[:room]
            self.parts.append(kept)
            self.size += len(kept)
            self.dropped += len(text) - len(kept)
        else:
            self.dropped += len(text)
        return len(text)

    def value(self) -> str:
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n[... {self.dropped:,} more characters of output were discarded]"
        return text


class Worker:
    def __init__(self, inp: IO[bytes], out: IO[bytes]) -> None:
        self.inp = inp
        self.out = out
        self.namespace: dict[str, Any] = {}
        self.final: dict[str, Any] | None = None
        self.corpus: Any = None
        self.events = 0
        self.language = True
        self._scaffold: dict[str, Any] = {}

    # -- protocol --------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        send_json(self.out, message)

    def receive(self) -> dict[str, Any]:
        import json

        frame = read_frame(self.inp)
        if frame is None:
            raise SystemExit(0)
        kind, payload = frame
        if kind != JSON_FRAME:
            raise ProtocolError("expected a JSON frame")
        message = json.loads(payload)
        if not isinstance(message, dict) or not isinstance(message.get("op"), str):
            raise ProtocolError("a frame without an op")
        return message

    def call(self, request: dict[str, Any]) -> Any:
        """Ask the parent for a model call and wait for its answer."""
        self.send({"op": "call", **request})
        message = self.receive()
        if message["op"] != "result":
            raise ProtocolError(f"expected a result frame, got {message['op']!r}")
        return message.get("value")

    # -- set-up ----------------------------------------------------------------------------

    def init(self, message: dict[str, Any]) -> None:
        from rlm_desktop.engine.helpers import make_helpers
        from rlm_desktop.engine.pack import load_pack
        from rlm_desktop.engine.replapi import Corpus

        started = time.perf_counter()
        blob, entries = load_pack(message["pack"])
        corpus = Corpus._from_blob(blob, entries)
        spans = message.get("spans")
        if spans:
            corpus = corpus._view([tuple(s) for s in spans])
        self.corpus = corpus
        sandbox = message.get("sandbox") or {}
        self.language = bool(sandbox.get("language", True))
        helpers = make_helpers(corpus, self._record)
        self.namespace = self._fresh_namespace(corpus, helpers)
        report: dict[str, Any] = {"level": "none", "missing": ["OS confinement is off"]}
        if sandbox.get("os", True):
            report = self._lock_down(sandbox)
        report["language"] = "restricted" if self.language else "plain exec"
        self.send({"op": "ready", "documents": len(corpus), "chars": corpus.total_chars,
                   "load_s": time.perf_counter() - started, "sandbox": report})

    def _lock_down(self, sandbox: dict[str, Any]) -> dict[str, Any]:
        """Import what model code may use, then apply the OS layer: after this the worker
        reads only the Python runtime, writes only its pipes, and has no network."""
        from rlm_desktop import confine
        from rlm_desktop.engine.restricted import preload_modules

        preload_modules()  # imports every allowed module
        __import__("_strptime")  # datetime.strptime imports it lazily
        memory = sandbox.get("memory_bytes")
        result = confine.lockdown(read_paths=confine.worker_read_paths(),
                                  memory_bytes=int(memory) if memory else None)
        report = result.to_json()
        parent = sandbox.get("parent")
        if parent:
            report["parent"] = parent
        return report

    def _record(self, kind: str, input: dict[str, Any], output: Any, started: float,
                ended: float) -> None:
        # A loop of 200,000 peeks must not flood the trace: past a cap, only count.
        self.events += 1
        if self.events > EVENTS_PER_CELL:
            return
        self.send({"op": "event", "kind": kind, "input": input, "output": output,
                   "started": started, "ended": ended})

    def _fresh_namespace(self, corpus: Any, helpers: dict[str, Callable[..., Any]]
                         ) -> dict[str, Any]:
        import builtins

        def llm_query(prompt: str, *, model: str | None = None) -> str:
            """Ask a child model; it sees only `prompt`. Returns its answer."""
            item = _as_prompt(prompt)
            _check_batch([item])
            value = self.call({"kind": "llm_query", "prompts": [item], "model": model})
            return str(value[0])

        def llm_query_batched(prompts: list[str], *, model: str | None = None) -> list[str]:
            """Many child calls in parallel; answers in the same order. A failed item is a
            string starting with "[error"."""
            if isinstance(prompts, str):
                raise TypeError("llm_query_batched takes a list of prompts; "
                                "use llm_query for one")
            items = [_as_prompt(p) for p in prompts]
            if not items:
                return []
            _check_batch(items)
            value = self.call({"kind": "llm_query", "prompts": items, "model": model,
                               "batched": True})
            return [str(v) for v in value]

        def rlm_query(question: str, target: Any = None) -> str:
            """A child RLM explores `target` (documents, chunks, hits; None = everything)
            with its own REPL and answers `question`."""
            spans = corpus.spans_of(target)
            label = _describe_target(target)
            value = self.call({"kind": "rlm_query", "question": str(question),
                               "spans": [list(s) for s in spans], "target": label})
            return str(value)

        def FINAL(answer: Any, sources: Any = None) -> None:
            """End the run with `answer`; `sources` (hits, chunks, documents) become the
            citations."""
            self.final = {"answer": _answer_text(answer),
                          "sources": _citations(self.corpus, sources)}
            raise _Final()

        def FINAL_VAR(name: Any, sources: Any = None) -> None:
            """End the run with the value of the REPL variable called `name`."""
            key = name if isinstance(name, str) else None
            if key is None or key not in self.namespace:
                raise NameError(f"FINAL_VAR: no variable named {name!r} in the REPL")
            self.final = {"answer": _answer_text(self.namespace[key]),
                          "sources": _citations(self.corpus, sources)}
            raise _Final()

        scaffold: dict[str, Any] = {
            "context": corpus, **helpers,
            "llm_query": llm_query, "llm_query_batched": llm_query_batched,
            "rlm_query": rlm_query, "FINAL": FINAL, "FINAL_VAR": FINAL_VAR,
        }
        if self.language:
            from rlm_desktop.engine import restricted

            namespace = restricted.restricted_globals(scaffold, write=_write_stdout)
            guarded = namespace["__builtins__"]["__import__"]
            for name in PRELOADED:
                namespace[name] = guarded(name)
            self._scaffold = dict(namespace)
            return namespace

        # Without the language layer, plain exec with every builtin: the OS layer alone
        # has to hold (the escape suite tests exactly that).
        safe_builtins = dict(vars(builtins))
        import collections
        import json
        import math
        import re

        namespace = {
            "__builtins__": safe_builtins, "__name__": "__repl__",
            "re": re, "json": json, "math": math, "collections": collections, **scaffold,
        }
        self._scaffold = dict(namespace)
        return namespace

    # -- cells -----------------------------------------------------------------------------

    def exec_cell(self, code: str) -> None:
        capture = _Capture()
        error: str | None = None
        self.final = None
        self.events = 0
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = capture
        try:
            body, last_expr = self._compile(code)
            exec(body, self.namespace)  # noqa: S102 - the REPL
            if last_expr is not None:
                value = eval(last_expr, self.namespace)  # noqa: S307
                if value is not None:
                    capture.write(repr(value) + "\n")
        except _Final:
            pass
        except SyntaxError as exc:
            error = "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
        except BaseException as exc:  # model code may raise anything; report, keep serving
            if isinstance(exc, SystemExit | KeyboardInterrupt):
                error = f"{type(exc).__name__} is not allowed in the REPL"
            else:
                error = _format_error(exc)
        finally:
            sys.stdout, sys.stderr = saved
            # Model code may have rebound a helper name; put the scaffolding back.
            self.namespace.update(self._scaffold)
        self.send({"op": "done", "stdout": capture.value(), "error": error,
                   "final": self.final,
                   "events_dropped": max(0, self.events - EVENTS_PER_CELL)})

    def _compile(self, code: str) -> tuple[CodeType, CodeType | None]:
        """The cell's body and its last bare expression (shown like a notebook shows it)."""
        if self.language:
            from rlm_desktop.engine import restricted

            cell = restricted.compile_cell(code, CELL_NAME)
            return cell.body, cell.last_expr
        tree = ast.parse(code, CELL_NAME, "exec")
        last_expr = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last_expr = compile(ast.Expression(tree.body[-1].value), CELL_NAME, "eval")
            tree.body.pop()
        return compile(tree, CELL_NAME, "exec"), last_expr

    def serve(self) -> int:
        while True:
            message = self.receive()
            op = message["op"]
            if op == "init":
                self.init(message)
            elif op == "exec":
                self.exec_cell(str(message.get("code", "")))
            elif op == "exit":
                return 0
            else:
                raise ProtocolError(f"unknown op {op!r}")


def _write_stdout(text: str) -> None:
    """print() of model code: sys.stdout is the cell's capture while a cell runs."""
    sys.stdout.write(text)


def _format_error(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == CELL_NAME]
    lines = [f"  line {f.lineno}: {f.line}" for f in frames[-3:] if f.line]
    head = "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
    if lines:
        return "Traceback (most recent call last):\n" + "\n".join(lines) + "\n" + head
    return head


def _check_batch(items: list[str]) -> None:
    """Refuse, with a message the model can act on, what the parent would refuse anyway."""
    from rlm_desktop.engine.frames import MAX_BATCH_CHARS, MAX_PROMPT_CHARS, MAX_PROMPTS

    if len(items) > MAX_PROMPTS:
        raise ValueError(f"llm_query_batched takes at most {MAX_PROMPTS:,} prompts per call; "
                         f"got {len(items):,}")
    longest = max(map(len, items))
    if longest > MAX_PROMPT_CHARS:
        raise ValueError(f"a prompt has {longest:,} characters; a child call takes at most "
                         f"{MAX_PROMPT_CHARS:,}: partition the text and send pieces")
    if sum(map(len, items)) > MAX_BATCH_CHARS:
        raise ValueError(f"the prompts add up to more than {MAX_BATCH_CHARS:,} characters; "
                         "send fewer or shorter pieces")


def _as_prompt(prompt: Any) -> str:
    if isinstance(prompt, str):
        return str(prompt)  # a Chunk becomes a plain str
    if isinstance(prompt, list | tuple):
        return "\n".join(str(p) for p in prompt)
    return str(prompt)


def _answer_text(answer: Any) -> str:
    if isinstance(answer, str):
        return str(answer)
    if isinstance(answer, list | tuple) and all(isinstance(a, str) for a in answer):
        return "\n".join(answer)
    return repr(answer) if not isinstance(answer, int | float) else str(answer)


def _describe_target(target: Any) -> Any:
    if target is None:
        return "the whole corpus"
    name = getattr(target, "name", None) or getattr(target, "doc", None)
    if isinstance(name, str):
        return name
    if isinstance(target, list | tuple):
        return f"{len(target)} items"
    return type(target).__name__


def _citations(corpus: Any, sources: Any) -> list[dict[str, Any]]:
    """Hits, chunks, documents or excerpts -> citation dicts (document, doc_index, page,
    line, text, start, end), at most 500."""
    if sources is None:
        return []
    items = sources if isinstance(sources, list | tuple | set) else [sources]
    citations: list[dict[str, Any]] = []
    for item in items:
        citations.extend(_citation_of(corpus, item))
        if len(citations) >= 500:
            break
    return citations[:500]


def _citation_of(corpus: Any, item: Any) -> list[dict[str, Any]]:
    """Where a source lies: {"doc_index", "start", "end", "kind"} only. The parent rebuilds
    name, path, page, line and text from its own documents, so a citation can only ever
    show real text of a real document of the corpus."""
    from rlm_desktop.engine.replapi import Chunk, Hit

    if isinstance(item, Hit):
        return [{"doc_index": item.doc_index, "start": item.start, "end": item.end,
                 "kind": "line"}]
    if isinstance(item, Chunk):
        return [{"doc_index": s.doc_index, "start": s.start, "end": s.end, "kind": "span"}
                for s in item.sources[:50]]
    if corpus is None:
        return []
    try:
        spans = corpus.spans_of(item)  # documents, excerpts, sources, indices, names
    except (TypeError, ValueError, KeyError, IndexError):
        return []
    return [{"doc_index": i, "start": start, "end": end, "kind": "span"}
            for i, start, end in spans[:50]]


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the parent goes away (a crashed or killed
    app must not leave model code running)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent died before the line above
        os._exit(1)


def worker_main() -> int:
    # Frames go to a private copy of stdout; fd 1 points at stderr so that nothing else
    # can corrupt the protocol.
    _die_with_parent()
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    worker = Worker(sys.stdin.buffer, out)
    try:
        return worker.serve()
    except (ProtocolError, BrokenPipeError) as exc:
        print(f"repl worker: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(worker_main())
