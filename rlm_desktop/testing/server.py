"""A scripted OpenAI-compatible HTTP server for tests and for `rlm-desktop --demo`.

This is a scripted server, not a language model: every reply it sends was written in
advance by a test (or by `explore_script` below).  It speaks the OpenAI Chat Completions
wire protocol (`GET /v1/models`, `POST /v1/chat/completions`, plain and streamed) well
enough that the real `openai` client can talk to it, and it can inject the failures a real
endpoint produces: 429 and 500 answers, hanging requests, bodies that are not JSON,
connections cut halfway, and empty answers.

A request is a *root* call when a system message contains ROOT_MARKER, otherwise a *child*
call.  Root calls take their replies from the `root` script in order; child calls are
answered by the first matching ChildRule.  Faults never consume a scripted reply.

By hand: `python -m rlm_desktop.testing.server [--port N] [--latency S]` prints the base
URL and serves a generic three-step exploration script until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import re
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, TypeAlias, cast, get_args
from urllib.parse import urlsplit

__all__ = [
    "NO_RULE_MATCHED",
    "OUT_OF_REPLIES",
    "ROOT_MARKER",
    "ChildRule",
    "Fault",
    "RecordedRequest",
    "Reply",
    "ScriptedServer",
    "explore_script",
    "main",
]

ROOT_MARKER = "You are the root model of RLM Desktop"
OUT_OF_REPLIES = "FINAL(scripted root ran out of replies)"
NO_RULE_MATCHED = "scripted child: no rule matched"
TRUNCATED_TEXT = "scripted reply that is cut off before it"

Messages: TypeAlias = list[dict[str, Any]]
Reply: TypeAlias = str | Callable[[Messages], str]
Role: TypeAlias = Literal["root", "child"]
FaultKind: TypeAlias = Literal["429", "500", "hang", "malformed", "truncated", "empty"]

_FAULT_KINDS = frozenset(get_args(FaultKind))
_POLL = 0.05  # seconds between checks while hanging; also the accept loop's poll interval


@dataclass
class ChildRule:
    """Answers a child call whose last user message matches."""

    match: str | Callable[[str], bool]  # regex searched (re.S) in the prompt, or a predicate
    reply: str | Callable[[str], str]  # text, or a function of the prompt

    def matches(self, prompt: str) -> bool:
        if isinstance(self.match, str):
            return re.search(self.match, prompt, re.S) is not None
        return bool(self.match(prompt))

    def answer(self, prompt: str) -> str:
        return self.reply if isinstance(self.reply, str) else self.reply(prompt)


@dataclass
class Fault:
    """A failure injected into the next `count` requests whose role matches.

    429/500: an error in OpenAI's shape (with Retry-After and retry-after-ms when
    `retry_after` is set).  hang: no answer until the client gives up or the server stops.
    malformed: 200 whose body (or, streamed, one SSE data line) is not JSON.  truncated:
    non-stream, Content-Length larger than the bytes sent, then close; streamed, a few
    content chunks then the connection closes (no finish_reason, no [DONE], no end of the
    chunked body).  empty: a valid completion whose content is "".
    """

    kind: FaultKind
    role: Literal["root", "child", "any"] = "any"
    count: int = 1
    retry_after: float | None = None


@dataclass
class RecordedRequest:
    """One POST /v1/chat/completions as the server saw it (snapshots; times are monotonic)."""

    role: Role
    body: dict[str, Any]
    messages: Messages
    stream: bool
    started: float
    ended: float | None = None
    status: int = 0  # 0: no status line was sent (hang, or the server stopped first)
    api_key: str | None = None
    fault: str | None = None  # the kind of the Fault applied, if any
    reply: str | None = None  # the text answered, when a scripted reply was sent
    error: str | None = None  # a reply function raised this (the client got a 500)


@dataclass
class _FaultSlot:
    fault: Fault
    remaining: int


def message_text(content: Any) -> str:
    """The text of a message's content: a string, or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def last_user_message(messages: Messages) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def is_root(messages: Messages) -> bool:
    return any(message.get("role") in ("system", "developer")
               and ROOT_MARKER in message_text(message.get("content"))
               for message in messages)


def usage_for(messages: Messages, reply: str) -> dict[str, int]:
    prompt = max(1, sum(len(message_text(m.get("content"))) for m in messages) // 4)
    completion = max(1, len(reply) // 4)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _pieces(text: str, parts: int = 4) -> list[str]:
    if not text:
        return []
    size = math.ceil(len(text) / parts)
    return [text[i:i + size] for i in range(0, len(text), size)]


class ScriptedServer:
    """An OpenAI-compatible endpoint on 127.0.0.1 that answers from a script."""

    def __init__(self, root: Sequence[Reply] | Callable[[Messages], str] = (),
                 children: Sequence[ChildRule] | Callable[[str], str] = (),
                 *, latency: float = 0.0, child_latency: float | None = None,
                 report_usage: bool = True, model: str = "scripted", port: int = 0) -> None:
        self._root_fn: Callable[[Messages], str] | None = None
        self._root_list: list[Reply] = []
        self._child_fn: Callable[[str], str] | None = None
        self._child_rules: list[ChildRule] = []
        self.latency = latency
        self.child_latency = child_latency
        self.report_usage = report_usage
        self.model = model
        self._port = port
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._faults: list[_FaultSlot] = []
        self._records: list[RecordedRequest] = []
        self._root_index = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._serial = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.set_script(root, children)

    def set_script(self, root: Sequence[Reply] | Callable[[Messages], str] = (),
                   children: Sequence[ChildRule] | Callable[[str], str] | None = None) -> None:
        """Replace the root script (and the child rules, when given) of a running server."""
        with self._lock:
            self._root_index = 0
            self._root_fn, self._root_list = None, []
            if callable(root):
                self._root_fn = root
            else:
                self._root_list = [root] if isinstance(root, str) else list(root)
            if children is not None:
                self._child_fn, self._child_rules = None, []
                if callable(children):
                    self._child_fn = children
                else:
                    self._child_rules = list(children)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        if self._httpd is not None:
            raise RuntimeError("the scripted server is already running")
        self._stopping.clear()
        self._httpd = _HTTPServer(("127.0.0.1", self._port), self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(_POLL,),
                                        name="scripted-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; wakes hanging and sleeping requests and closes every connection."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_connections(timeout=2.0)
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=2.0)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the scripted server is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting and inspection ------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        if fault.kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}")
        with self._lock:
            self._faults.append(_FaultSlot(fault, fault.count))

    @property
    def pending_faults(self) -> int:
        """How many faulted requests are still to come."""
        with self._lock:
            return sum(slot.remaining for slot in self._faults)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [dataclasses.replace(record) for record in self._records]

    def max_concurrency(self) -> int:
        with self._lock:
            return self._max_in_flight

    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    # -- used by the request handler ---------------------------------------------------

    @property
    def stopping(self) -> threading.Event:
        return self._stopping

    def _begin(self, role: Role, body: dict[str, Any], messages: Messages, stream: bool,
               api_key: str | None) -> RecordedRequest:
        record = RecordedRequest(role, body, messages, stream, time.monotonic(),
                                 api_key=api_key)
        with self._lock:
            self._records.append(record)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._serial += 1
        return record

    def _end(self, record: RecordedRequest) -> None:
        with self._lock:
            record.ended = time.monotonic()
            self._in_flight -= 1

    def _next_id(self) -> str:
        with self._lock:
            self._serial += 1
            return f"chatcmpl-scripted-{self._serial}"

    def _take_fault(self, role: Role) -> Fault | None:
        with self._lock:
            for slot in self._faults:
                if slot.remaining > 0 and slot.fault.role in (role, "any"):
                    slot.remaining -= 1
                    return slot.fault
        return None

    def _latency_for(self, role: Role) -> float:
        if role == "child" and self.child_latency is not None:
            return self.child_latency
        return self.latency

    def _reply(self, role: Role, messages: Messages) -> str:
        if role == "root":
            if self._root_fn is not None:
                return self._root_fn(messages)
            with self._lock:
                index = self._root_index
                self._root_index += 1
            if index >= len(self._root_list):
                return OUT_OF_REPLIES
            entry = self._root_list[index]
            return entry if isinstance(entry, str) else entry(messages)
        prompt = last_user_message(messages)
        if self._child_fn is not None:
            return self._child_fn(prompt)
        for rule in self._child_rules:
            if rule.matches(prompt):
                return rule.answer(prompt)
        return NO_RULE_MATCHED


class _HTTPServer(ThreadingHTTPServer):
    """One daemon thread per connection, each tracked so stop() can close it and wait."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], owner: ScriptedServer) -> None:
        self.owner = owner
        self._active: dict[threading.Thread, socket.socket] = {}
        self._active_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address),
                                  name="scripted-server-connection", daemon=True)
        with self._active_lock:
            self._active[thread] = request
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._active.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (timeouts, faults, stop()) is routine here, not an error.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def close_connections(self, timeout: float) -> None:
        with self._active_lock:
            active = list(self._active.items())
        for _, sock in active:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread, _ in active:
            thread.join(max(0.0, deadline - time.monotonic()))


def _error_body(message: str, type_: str, code: str | None,
                param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ScriptedServer/1.0"
    # Headers and body go out in separate writes; without TCP_NODELAY the body waits ~40 ms
    # for the client's delayed ACK, which would distort every latency figure.
    disable_nagle_algorithm = True

    @property
    def owner(self) -> ScriptedServer:
        return cast(_HTTPServer, self.server).owner

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing ----------------------------------------------------------------------

    def _api_key(self) -> str | None:
        header = self.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else header.strip()

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, payload: Any,
                   headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self._send_bytes(status, data, "application/json", headers)

    def _send_bytes(self, status: int, data: bytes, content_type: str,
                    headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_wrong_key(self) -> None:
        self._send_json(401, _error_body("Incorrect API key provided", "invalid_request_error",
                                         "invalid_api_key"))

    def _send_not_found(self) -> None:
        self._send_json(404, _error_body(
            f"Unknown request URL: {self.command} {self.path}. Please check the URL for typos.",
            "invalid_request_error", "unknown_url"))

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _write_event(self, payload: Any) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        self._write_chunk(f"data: {text}\n\n".encode())

    def _end_stream(self) -> None:
        self._write_event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")

    # -- routes ------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        if self._api_key() == "wrong-key":
            self._send_wrong_key()
            return
        model = {"id": self.owner.model, "object": "model", "created": 0,
                 "owned_by": "rlm-desktop-scripted"}
        if path == "/v1/models":
            self._send_json(200, {"object": "list", "data": [model]})
        elif path == f"/v1/models/{self.owner.model}":
            self._send_json(200, model)
        else:
            self._send_not_found()

    def do_POST(self) -> None:
        raw = self._read_body()
        path = urlsplit(self.path).path.rstrip("/")
        if path != "/v1/chat/completions":
            if self._api_key() == "wrong-key":
                self._send_wrong_key()
            else:
                self._send_not_found()
            return
        try:
            self._chat(raw)
        except OSError:  # the client hung up or stop() closed the connection
            self.close_connection = True

    def _chat(self, raw: bytes) -> None:
        owner = self.owner
        api_key = self._api_key()
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("the body is not a JSON object")
        except ValueError:
            record = owner._begin("child", {}, [], False, api_key)
            record.status = 400
            try:
                self._send_json(400, _error_body(
                    "We could not parse the JSON body of your request.",
                    "invalid_request_error", None))
            finally:
                owner._end(record)
            return
        messages = body.get("messages")
        if not isinstance(messages, list):
            messages = []
        stream = bool(body.get("stream"))
        role: Role = "root" if is_root(messages) else "child"
        record = owner._begin(role, body, messages, stream, api_key)
        try:
            self._answer(record, body, messages, stream, role)
        finally:
            owner._end(record)

    def _answer(self, record: RecordedRequest, body: dict[str, Any], messages: Messages,
                stream: bool, role: Role) -> None:
        owner = self.owner
        if record.api_key == "wrong-key":
            record.status = 401
            self._send_wrong_key()
            return
        delay = owner._latency_for(role)
        if delay > 0 and owner.stopping.wait(delay):
            self.close_connection = True
            return
        fault = owner._take_fault(role)
        if fault is not None:
            record.fault = fault.kind
            if fault.kind != "empty":
                self._fault(record, fault, stream)
                return
            reply = ""
        else:
            try:
                reply = owner._reply(role, messages)
            except Exception as exc:
                record.error = f"{type(exc).__name__}: {exc}"
                record.status = 500
                self._send_json(500, _error_body(
                    f"the scripted reply raised {record.error}", "server_error", None))
                return
        record.reply = reply
        record.status = 200
        model = str(body.get("model") or owner.model)
        usage = usage_for(messages, reply) if owner.report_usage else None
        if stream:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            self._stream_reply(reply, model, usage if include_usage else None)
        else:
            completion: dict[str, Any] = {
                "id": owner._next_id(), "object": "chat.completion",
                "created": int(time.time()), "model": model, "system_fingerprint": None,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": reply,
                                         "refusal": None}}],
            }
            if usage is not None:
                completion["usage"] = usage
            self._send_json(200, completion)

    def _chunk(self, ident: str, model: str, delta: dict[str, Any],
               finish_reason: str | None = None) -> dict[str, Any]:
        return {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish_reason}]}

    def _stream_reply(self, reply: str, model: str, usage: dict[str, int] | None) -> None:
        ident = self.owner._next_id()
        self._start_stream()
        self._write_event(self._chunk(ident, model, {"role": "assistant", "content": ""}))
        for piece in _pieces(reply):
            self._write_event(self._chunk(ident, model, {"content": piece}))
        self._write_event(self._chunk(ident, model, {}, "stop"))
        if usage is not None:
            self._write_event({"id": ident, "object": "chat.completion.chunk",
                               "created": int(time.time()), "model": model,
                               "system_fingerprint": None, "choices": [], "usage": usage})
        self._end_stream()

    # -- faults ------------------------------------------------------------------------

    def _fault(self, record: RecordedRequest, fault: Fault, stream: bool) -> None:
        owner = self.owner
        model = str(record.body.get("model") or owner.model)
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
            headers["retry-after-ms"] = str(round(fault.retry_after * 1000))
        if fault.kind == "429":
            record.status = 429
            self._send_json(429, _error_body(
                "Rate limit reached for requests (scripted fault). Please try again later.",
                "requests", "rate_limit_exceeded"), headers)
        elif fault.kind == "500":
            record.status = 500
            self._send_json(500, _error_body(
                "The server had an error while processing your request (scripted fault).",
                "server_error", None), headers)
        elif fault.kind == "hang":
            self.close_connection = True
            self._hang()
        elif fault.kind == "malformed":
            record.status = 200
            if stream:
                ident = owner._next_id()
                self._start_stream()
                self._write_event(self._chunk(ident, model, {"role": "assistant", "content": ""}))
                self._write_event("{this is not JSON: scripted malformed chunk")
                self._end_stream()
            else:
                self._send_bytes(200, b"<html>scripted malformed body: this is not JSON {",
                                 "application/json")
        elif fault.kind == "truncated":
            record.status = 200
            self.close_connection = True
            if stream:
                ident = owner._next_id()
                self._start_stream()
                self._write_event(self._chunk(ident, model, {"role": "assistant", "content": ""}))
                for piece in _pieces(TRUNCATED_TEXT)[:2]:
                    self._write_event(self._chunk(ident, model, {"content": piece}))
                self.wfile.flush()
            else:
                data = json.dumps({"id": owner._next_id(), "object": "chat.completion",
                                   "created": int(time.time()), "model": model,
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant",
                                                            "content": TRUNCATED_TEXT}}]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data) * 2))
                self.end_headers()
                self.wfile.write(data.encode()[: len(data) // 2])

    def _hang(self) -> None:
        """Answer nothing until the client hangs up or the server stops."""
        sock = self.connection
        while not self.owner.stopping.wait(_POLL):
            try:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable and sock.recv(1, socket.MSG_PEEK) == b"":
                    return  # the client gave up and closed the connection
            except OSError:
                return


# -- a generic script for trying the app by hand ---------------------------------------

def _question(messages: Messages) -> str:
    seen_system = False
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            seen_system = True
        elif role == "user" and (seen_system or message is messages[0]):
            text = message_text(message.get("content"))
            for line in text.splitlines():
                if line.startswith("Question:"):
                    return line[len("Question:"):].strip()
            return text
    return ""


def explore_script(messages: Messages) -> str:
    """A root 'model' that explores any corpus in three steps: look, grep and classify, answer.

    The step is chosen by how many assistant messages the conversation already holds.
    """
    step = sum(1 for message in messages if message.get("role") == "assistant")
    if step == 0:
        return ("Let me look at the corpus first.\n\n```repl\nimport collections\n"
                "print(len(context))\n"
                "print(collections.Counter(d.kind for d in context))\n"
                "if len(context):\n    print(peek(context[0], 0, 300))\n```\n")
    if step == 1:
        words = list(dict.fromkeys(re.findall(r"[^\W\d_]{5,}", _question(messages))))
        return ("Now I search for the words of the question and have a child model "
                "classify the first matching lines.\n\n```repl\nimport re\n"
                f"words = {words[:5]!r}\n"
                'pattern = "|".join(map(re.escape, words[:5])) or "error"\n'
                "hits = grep(pattern, ignore_case=True)\n"
                "print(len(hits))\n"
                "for h in hits[:5]:\n    print(h.doc, h.line, h.text[:200])\n"
                'labels = llm_query_batched([f"Classify this line: {h.text}" '
                "for h in hits[:8]])\n"
                "print(labels)\n```\n")
    return ('```repl\nFINAL(f"{len(hits)} matching lines", sources=hits[:20])\n```\n')


def scripted_note(prompt: str) -> str:
    """The CLI's child 'model': a short deterministic note about the prompt."""
    return "scripted note: " + " ".join(prompt.split())[:60]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rlm_desktop.testing.server",
        description="Serve a scripted OpenAI-compatible endpoint on 127.0.0.1 "
                    "(a script, not a language model).")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds each request waits before answering")
    args = parser.parse_args(argv)
    server = ScriptedServer(explore_script, scripted_note, latency=args.latency,
                            port=args.port)
    with server:
        print(server.base_url, flush=True)
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
