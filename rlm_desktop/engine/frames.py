"""The schema of what a REPL worker may say to the parent.

The worker runs model-written code, so every frame it sends is untrusted: a hostile cell
that reaches the pipe could forge frames. The parent checks each one against this schema
before acting on it; anything else stops the worker.
"""

from __future__ import annotations

from typing import Any

MAX_PROMPTS = 10_000          # items in one llm_query_batched
MAX_PROMPT_CHARS = 2_000_000  # one child prompt
MAX_BATCH_CHARS = 50_000_000  # all prompts of one batch
MAX_SPANS = 100_000           # pieces of one rlm_query target
MAX_CITATIONS = 500
MAX_EVENT_BYTES = 64 * 1024        # a peek/grep/partition summary: small by construction
MAX_DONE_BYTES = 16 * 1024 * 1024  # a cell's output (kept to 1,000,000 characters)
EVENT_KINDS = frozenset({"peek", "grep", "partition"})
CALL_KINDS = frozenset({"llm_query", "rlm_query"})


class FrameError(ValueError):
    """A frame that does not follow the protocol."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise FrameError(message)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_worker_frame(frame: Any) -> dict[str, Any]:
    """Return the frame if it is valid; raise FrameError naming what is wrong."""
    if not isinstance(frame, dict):
        raise FrameError("a frame must be an object")
    message: dict[str, Any] = frame
    op = message.get("op")
    if op == "invalid":  # what the transport made of bytes it could not read as a frame
        raise FrameError(str(message.get("reason")))
    if op == "event":
        _require(message.get("kind") in EVENT_KINDS, "event of an unknown kind")
        _require(isinstance(message.get("input"), dict), "event input must be an object")
        _require(_is_number(message.get("started")) and _is_number(message.get("ended")),
                 "event times must be numbers")
        _require("events_dropped" not in message, "unexpected field in an event")
    elif op == "call":
        _check_call(message)
    elif op == "done":
        _require(isinstance(message.get("stdout"), str), "done.stdout must be text")
        _require(message.get("error") is None or isinstance(message["error"], str),
                 "done.error must be text or null")
        final = message.get("final")
        if final is not None:
            _require(isinstance(final, dict) and isinstance(final.get("answer"), str),
                     "final.answer must be text")
            sources = final.get("sources")
            _require(isinstance(sources, list) and len(sources) <= MAX_CITATIONS
                     and all(_is_citation(s) for s in sources),
                     f"final.sources must be at most {MAX_CITATIONS} "
                     "{doc_index, start, end, kind} objects")
        _require(is_int(message.get("events_dropped", 0)), "events_dropped must be a number")
    elif op == "ready":
        _require(is_int(message.get("documents")), "ready.documents must be a number")
    else:
        raise FrameError(f"unknown op {op!r}")
    return message


def _is_citation(value: Any) -> bool:
    return (isinstance(value, dict) and set(value) == {"doc_index", "start", "end", "kind"}
            and all(is_int(value[k]) and value[k] >= 0 for k in ("doc_index", "start", "end"))
            and value["kind"] in ("line", "span"))


def size_limit(op: Any) -> int | None:
    """Most bytes a frame of this op may take (None: the transport's own maximum)."""
    return {"event": MAX_EVENT_BYTES, "done": MAX_DONE_BYTES,
            "ready": MAX_EVENT_BYTES}.get(op)


def _check_call(message: dict[str, Any]) -> None:
    kind = message.get("kind")
    _require(kind in CALL_KINDS, f"call of an unknown kind {kind!r}")
    if kind == "llm_query":
        prompts = message.get("prompts")
        if not isinstance(prompts, list) or not 0 < len(prompts) <= MAX_PROMPTS:
            raise FrameError(f"prompts must be a list of 1 to {MAX_PROMPTS:,} texts")
        _require(all(isinstance(p, str) for p in prompts), "every prompt must be text")
        _require(all(len(p) <= MAX_PROMPT_CHARS for p in prompts),
                 f"a prompt may carry at most {MAX_PROMPT_CHARS:,} characters")
        _require(message.get("model") is None or isinstance(message["model"], str),
                 "model must be text or null")
        _require(sum(map(len, prompts)) <= MAX_BATCH_CHARS,
                 f"a batch may carry at most {MAX_BATCH_CHARS:,} characters")
        extra = set(message) - {"op", "kind", "prompts", "model", "batched"}
        _require(not extra, f"unexpected fields {sorted(extra)}")
    else:
        _require(isinstance(message.get("question"), str), "question must be text")
        spans = message.get("spans")
        if not isinstance(spans, list) or len(spans) > MAX_SPANS:
            raise FrameError("spans must be a list")
        _require(all(isinstance(s, list) and len(s) == 3 and all(is_int(x) and x >= 0
                                                                 for x in s)
                     and s[1] <= s[2] for s in spans),
                 "each span must be [document, start, end]")
        _require(set(message) <= {"op", "kind", "question", "spans", "target"},
                 "unexpected fields in rlm_query")
