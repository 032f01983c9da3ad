"""One-line summaries of trace nodes, shared by the CLI's live tree and the desktop window.

Qt-free on purpose: the GUI's trace model and `ask`'s terminal output say the same thing.
"""

from __future__ import annotations

from typing import Any

from rlm_desktop.corpus.document import one_line
from rlm_desktop.engine.trace import TraceNode

CODE_MARKER = "⌗ "   # starts the line of a running code cell (the terminal's marker)

__all__ = ["CODE_MARKER", "started_summary", "summarize"]


def started_summary(node: TraceNode) -> str:
    """What a step is about while it is still running (known from its input alone)."""
    inp: Any = node.input
    if node.kind == "run":
        question = (inp or {}).get("question", "")
        return f"● run: {question}"
    if node.kind == "root_call":
        return f"… root model, turn {node.extra.get('iteration')}"
    if node.kind == "code":
        lines = str(inp or "").strip().splitlines()
        more = " …" if len(lines) > 1 else ""
        return f"{CODE_MARKER}{lines[0] if lines else ''}{more}"
    if node.kind == "rlm_query":
        question = one_line(str((inp or {}).get("question")), 80)
        return f"rlm_query {question!r} over {(inp or {}).get('target')}"
    if node.kind == "llm_query":
        return f"{_llm_label(inp)} {_tail(str((inp or {}).get('prompt', '')), 60)!r} …"
    if node.kind in ("peek", "grep", "partition"):
        return f"{node.kind}({_arguments(inp)}) …"
    return f"{node.kind} …"


def summarize(node: TraceNode) -> str:
    """The one-line summary of a step: its outcome once it ended, its input while running."""
    if node.ended is None:
        return started_summary(node)
    took = f"{node.elapsed:.1f} s"
    if node.error and node.kind not in ("run",):
        return f"✗ {node.kind}: {node.error}"
    inp: Any = node.input
    out: Any = node.output
    if node.kind == "run":
        status = out.get("status") if isinstance(out, dict) else "?"
        tokens = node.usage.total_tokens if node.usage else 0
        cost = f", ${node.cost_usd:.4f}" if node.cost_usd else ""
        err = f" — {node.error}" if node.error else ""
        return f"● {status} in {took}, {tokens:,} tokens{cost}{err}"
    if node.kind == "root_call":
        tokens = node.usage.total_tokens if node.usage else 0
        retries = node.extra.get("retries")
        again = f", {len(retries)} retries" if retries else ""
        return f"↳ root model replied ({tokens:,} tokens, {took}{again})"
    if node.kind == "code":
        shown = str(out or "").strip().splitlines()
        if not shown:
            return "  → (no output)"
        more = f"  (+{len(shown) - 1} lines)" if len(shown) > 1 else ""
        return f"  → {shown[0]}{more}"
    if node.kind in ("peek", "grep", "partition"):
        summary = out
        if isinstance(out, dict):
            summary = ", ".join(f"{k} {v}" for k, v in out.items()
                                if k in ("hits", "documents", "chunks", "chars"))
        return f"{node.kind}({_arguments(inp)}) → {summary}"
    if node.kind == "llm_query":
        prompt = (inp or {}).get("prompt", "")
        return f"{_llm_label(inp)} {_tail(str(prompt), 60)!r} → {one_line(str(out or ''), 50)!r}"
    if node.kind == "rlm_query":
        fallback = " (depth limit: plain call)" if node.extra.get("fallback") else ""
        return f"  → {one_line(str(out or ''), 100)!r}{fallback}"
    if node.kind == "final":
        answer = out.get("answer") if isinstance(out, dict) else out
        return f"✔ FINAL: {one_line(str(answer or ''), 100)}"
    return node.kind


def _arguments(inp: Any) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in (inp or {}).items() if v is not None)


def _llm_label(inp: Any) -> str:
    index = (inp or {}).get("index")
    return f"llm_query[{index}]" if index is not None else "llm_query"


def _tail(text: str, limit: int) -> str:
    """The end of a prompt: where the item-specific part usually is."""
    flat = one_line(text, len(text) + 1)
    return flat if len(flat) <= limit else "…" + flat[-(limit - 1):]
