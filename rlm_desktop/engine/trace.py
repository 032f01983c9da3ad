"""The trace of a run: every step is a TraceNode, published when it starts and when it ends.

Subscribers (the CLI's live tree, the JSONL writer, later the GUI bridge and the sessions
store) receive `TraceEvent`s on the engine's thread, in order. A subscriber that raises is
reported once on stderr and dropped: a broken viewer must never break a run.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

NodeKind = Literal[
    "run", "root_call", "code", "peek", "grep", "partition", "llm_query", "rlm_query", "final"
]
NODE_KINDS: tuple[str, ...] = (
    "run", "root_call", "code", "peek", "grep", "partition", "llm_query", "rlm_query", "final",
)
TRACE_FORMAT = 1


@dataclass(slots=True)
class Usage:
    """Token counts of one model call, or of a whole subtree."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False  # True when the server reported none and we counted ourselves

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.estimated = self.estimated or other.estimated

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.estimated:
            data["estimated"] = True
        return data


@dataclass(slots=True)
class TraceNode:
    """One step of a run. `input`/`output` are JSON-able; `error` is a message for people."""

    id: int
    parent: int | None
    kind: str
    depth: int
    input: Any = None
    output: Any = None
    started: float = 0.0
    ended: float | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    error: str | None = None
    model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.ended is not None

    @property
    def elapsed(self) -> float:
        return (self.ended if self.ended is not None else time.time()) - self.started

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "parent": self.parent,
            "kind": self.kind,
            "depth": self.depth,
            "input": self.input,
            "output": self.output,
            "started": self.started,
            "ended": self.ended,
            "usage": self.usage.to_json() if self.usage is not None else None,
            "cost_usd": self.cost_usd,
            "error": self.error,
        }
        if self.model is not None:
            data["model"] = self.model
        if self.extra:
            data.update(self.extra)
        return data


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """`start` and `end` carry the node; `delta` carries streamed text of a root call
    (`reset`: the text streamed so far was thrown away because the call is being retried)."""

    type: Literal["start", "end", "delta"]
    node: TraceNode
    text: str = ""
    reset: bool = False


Subscriber = Callable[[TraceEvent], None]


class Trace:
    """Creates nodes, numbers them, and publishes their events to subscribers."""

    def __init__(self) -> None:
        self._next_id = 1
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self.nodes: dict[int, TraceNode] = {}

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def start(self, kind: str, parent: TraceNode | None, *, input: Any = None,
              model: str | None = None, started: float | None = None,
              **extra: Any) -> TraceNode:
        with self._lock:
            node_id = self._next_id
            self._next_id += 1
        node = TraceNode(
            id=node_id, parent=parent.id if parent else None, kind=kind,
            depth=(parent.depth + (1 if kind == "run" else 0)) if parent else 0,
            input=input, started=time.time() if started is None else started, model=model,
            extra=dict(extra),
        )
        self.nodes[node_id] = node
        self._publish(TraceEvent("start", node))
        return node

    def end(self, node: TraceNode, *, output: Any = None, error: str | None = None,
            usage: Usage | None = None, cost_usd: float | None = None,
            ended: float | None = None) -> TraceNode:
        if node.ended is not None:
            return node
        if output is not None:
            node.output = output
        if error is not None:
            node.error = error
        if usage is not None:
            node.usage = usage
        if cost_usd is not None:
            node.cost_usd = cost_usd
        node.ended = time.time() if ended is None else ended
        self._publish(TraceEvent("end", node))
        return node

    def record(self, kind: str, parent: TraceNode, *, input: Any, output: Any,
               started: float, ended: float, error: str | None = None) -> TraceNode:
        """A step that already happened (peek/grep/partition reported by the REPL worker)."""
        node = self.start(kind, parent, input=input, started=started)
        return self.end(node, output=output, error=error, ended=ended)

    def delta(self, node: TraceNode, text: str, *, reset: bool = False) -> None:
        self._publish(TraceEvent("delta", node, text, reset))

    def _publish(self, event: TraceEvent) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception as exc:  # a broken viewer must not break the run
                self.unsubscribe(subscriber)
                print(f"rlm-desktop: a trace subscriber failed and was removed: {exc!r}",
                      file=sys.stderr)


class JsonlWriter:
    """Writes each node as one JSON line when it ends (the `--trace FILE.jsonl` format)."""

    def __init__(self, path: str | Path) -> None:
        self._handle: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - close()

    def __call__(self, event: TraceEvent) -> None:
        if event.type != "end":
            return
        self._handle.write(json.dumps(event.node.to_json(), ensure_ascii=False, default=str))
        self._handle.write("\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()
