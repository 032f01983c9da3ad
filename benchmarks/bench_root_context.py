"""Root context: the largest root prompt for a 1 MB corpus vs a 100 MB corpus, same script.

    uv run python benchmarks/bench_root_context.py [--quick]

The point of a Recursive Language Model is that the corpus lives in the REPL, not in the
root model's prompt: the root sees a description of the corpus and what its code prints (cut
to `Limits.output_chars` per turn).  So the root prompt must not grow with the corpus.

Two corpora are generated in memory, deterministically: log-like documents of ~20 KB
(sshd, kernel, cron, application lines drawn from a pool of generated lines), 1 MB and
100 MB of text; the small corpus is the first documents of the large one.  Each goes
through a real `Run` (real openai client over loopback HTTP, real REPL worker, real trace)
against `rlm_desktop.testing.server.ScriptedServer` with the same five-turn root script:

1. print len(context), the kinds and a few names; peek at the first document;
2. grep "Failed password" (many hits: ~5% of lines), print the count and the first 10;
3. count users and source addresses of the hits with code, print the top 5;
4. partition the first document into 4 chunks and `llm_query_batched` over them;
5. FINAL with the count, citing the first 20 hits.

For every root request the server received, the prompt size is the total characters of
all its messages (`server.requests`, role "root"), and the token figure is the
`prompt_tokens` the server reported in its usage (read from the trace's `root_call` nodes);
the figure is the largest over the run (the last turn: the conversation only grows).  The
1 MB corpus's largest prompt is the baseline measured in the same run; the target is
<= 1.2x (blueprint §7).  The corpus/prompt ratio shows how small a slice of the corpus the
root model ever reads.  `--quick` uses 1 MB vs 10 MB.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import _common
from _common import MB, PATHS, USERS, LogMix, Row, log_line, random_ips

# Before anything of the app is imported: keep the user's profile out of it.
os.environ["RLM_DESKTOP_HOME"] = _common.private_home()

from rlm_desktop.corpus.document import Document
from rlm_desktop.engine.budget import Limits
from rlm_desktop.engine.run import Run, RunConfig
from rlm_desktop.engine.trace import TraceEvent
from rlm_desktop.testing.server import ScriptedServer, message_text

SEED = 0
SMALL = 1 * MB
LARGE = 100 * MB
QUICK_LARGE = 10 * MB
POOL_LINES = 40_000

QUESTION = "Who is being targeted by failed SSH logins, and how often?"
ROOT_SCRIPT = [
    "Let me look at the corpus first.\n```repl\n"
    "print(len(context), 'documents', context.kinds())\n"
    "print(context.names()[:5])\n"
    "print(peek(context[0], 0, 600))\n```",
    "These are system logs. I will grep the failed SSH logins.\n```repl\n"
    "hits = grep('Failed password')\n"
    "print(len(hits), 'failed logins')\n"
    "for h in hits[:10]:\n    print(h)\n```",
    "Now I count users and source addresses with code.\n```repl\n"
    "users = collections.Counter(re.search(r'for (\\S+) from', h.text).group(1) for h in hits)\n"
    "ips = collections.Counter(re.search(r'from (\\S+) port', h.text).group(1) for h in hits)\n"
    "print(users.most_common(5))\n"
    "print(len(ips), 'distinct source addresses; top:', ips.most_common(5))\n```",
    "Let me have a child model read a sample of the first log.\n```repl\n"
    "sample = partition(context[0], parts=4)\n"
    "notes = llm_query_batched([f'What happens in this log excerpt? One line.\\n\\n{c[:3000]}' "
    "for c in sample])\n"
    "for c, note in zip(sample, notes):\n    print(c.sources[0], '->', note)\n```",
    "```repl\n"
    "top_user, top_count = users.most_common(1)[0]\n"
    "FINAL(f'{len(hits)} failed SSH logins; the most targeted account is {top_user} "
    "({top_count} attempts) from {len(ips)} addresses', sources=hits[:20])\n```",
]


# --------------------------------------------------------------------------- the corpus

#: sshd, kernel, cron and application lines; ~5% of them failed SSH logins.
LOG_MIX = LogMix(kinds=((0.05, _common.failed_password), (0.15, _common.connection_closed),
                        (0.25, _common.link_up), (0.30, _common.cron)),
                 users=USERS, paths=PATHS, other_level="ERROR")


def make_documents(target_bytes: int, seed: int = SEED) -> list[Document]:
    """Log documents of 100-300 lines (~10-30 KB) until `target_bytes` of text; each is a
    window of a pool of generated lines, so generation is fast and deterministic.  A smaller
    target gives a prefix of the documents of a larger one."""
    rng = random.Random(seed)
    ips = random_ips(rng, 2_000)
    pool = [log_line(rng, ips, LOG_MIX) for _ in range(POOL_LINES)]
    pool += pool[:300]
    docs: list[Document] = []
    total = 0
    i = 0
    while total < target_bytes:
        lines = 100 + (i * 37) % 201
        offset = (i * 7919) % POOL_LINES
        text = "\n".join(pool[offset: offset + lines]) + "\n"
        name = f"host{i % 97:02d}/syslog.{i}.log"
        docs.append(Document(id=f"d{i}", name=name, path=f"/logs/{name}", kind="log",
                             sha256=f"{i:064x}", size=len(text), text=text))
        total += len(text)
        i += 1
    return docs


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Measured:
    corpus_chars: int
    documents: int
    prompt_chars: list[int]     # per root request, in order
    prompt_tokens: list[int]    # per root_call node, as the server reported them
    estimated: bool             # some usage was estimated by the client, not reported
    answer: str
    elapsed_s: float


def measure(docs: list[Document]) -> Measured:
    children = lambda prompt: "sshd closing connections and app requests, nothing unusual"  # noqa: E731
    with ScriptedServer(root=list(ROOT_SCRIPT), children=children) as server:
        config = RunConfig(base_url=server.base_url, api_key="bench-key", model="root-m",
                           sub_model="child-m",
                           limits=Limits(cell_timeout_s=300.0, max_retries=0))
        run = Run(docs, QUESTION, config)
        events: list[TraceEvent] = []
        run.trace.subscribe(events.append)
        result = run.execute_sync()
        roots = [r for r in server.requests if r.role == "root"]
    if result.status != "completed" or "failed SSH logins" not in result.answer:
        raise SystemExit(f"the run did not complete as scripted: {result.status} "
                         f"{result.answer!r} {result.error}")
    if len(roots) != len(ROOT_SCRIPT):
        raise SystemExit(f"expected {len(ROOT_SCRIPT)} root requests, got {len(roots)}")
    errors = [e.node for e in events if e.type == "end" and e.node.kind == "code"
              and e.node.error]
    if errors:
        raise SystemExit(f"a cell failed: {errors[0].error}")
    calls = [e.node for e in events if e.type == "end" and e.node.kind == "root_call"]
    return Measured(
        corpus_chars=sum(len(d.text) for d in docs), documents=len(docs),
        prompt_chars=[sum(len(message_text(m.get("content"))) for m in r.messages)
                      for r in roots],
        prompt_tokens=[c.usage.prompt_tokens if c.usage else 0 for c in calls],
        estimated=any(c.usage is None or c.usage.estimated for c in calls),
        answer=result.answer, elapsed_s=result.elapsed_s)


# --------------------------------------------------------------------------- report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1 MB vs 10 MB (smoke run)")
    args = parser.parse_args(argv)
    large_bytes = QUICK_LARGE if args.quick else LARGE
    total_started = time.perf_counter()

    results: dict[int, Measured] = {}
    for size in (SMALL, large_bytes):
        print(f"{size / MB:g} MB corpus: generating ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        docs = make_documents(size)
        print(f"  {len(docs):,} documents in {time.perf_counter() - started:.1f} s; run ...",
              file=sys.stderr, flush=True)
        results[size] = measure(docs)
        del docs
        m = results[size]
        print(f"  {m.elapsed_s:.1f} s; root prompts (chars): {m.prompt_chars}",
              file=sys.stderr)

    small, large = results[SMALL], results[large_bytes]
    chars_ratio = max(large.prompt_chars) / max(small.prompt_chars)
    tokens_ratio = max(large.prompt_tokens) / max(small.prompt_tokens)
    corpus_label = f"{large.corpus_chars / MB:,.0f} MB corpus ({large.documents:,} documents)"
    base_label = f"{small.corpus_chars / MB:,.1f} MB corpus ({small.documents:,} documents)"
    rows = [
        Row(f"1. Largest root prompt, characters (all messages of a root request), "
            f"{corpus_label}, {len(ROOT_SCRIPT)}-turn script",
            f"{max(large.prompt_chars):,} chars",
            f"{max(small.prompt_chars):,} chars: same script, {base_label}",
            f"{chars_ratio:.3f}x", "<= 1.2x", "yes" if chars_ratio <= 1.2 else "**no**"),
        Row("2. Largest root prompt, `prompt_tokens` in the server's usage"
            + (" (some estimated by the client)" if large.estimated or small.estimated
               else ""),
            f"{max(large.prompt_tokens):,} tokens",
            f"{max(small.prompt_tokens):,} tokens ({base_label})",
            f"{tokens_ratio:.3f}x", "<= 1.2x", "yes" if tokens_ratio <= 1.2 else "**no**"),
        Row("3. Corpus size / largest root prompt (characters)",
            f"{large.corpus_chars / max(large.prompt_chars):,.0f}x "
            f"({large.corpus_chars:,} / {max(large.prompt_chars):,})",
            f"{small.corpus_chars / max(small.prompt_chars):,.0f}x "
            f"({small.corpus_chars:,} / {max(small.prompt_chars):,})",
            f"the root reads {max(large.prompt_chars) / large.corpus_chars:.4%} of the "
            f"{large.corpus_chars / MB:,.0f} MB corpus", "none set (illustration)", "n/a"),
    ]
    notes = [
        f"Root prompt per turn, characters: {large.corpus_chars / MB:,.0f} MB: "
        f"{', '.join(f'{c:,}' for c in large.prompt_chars)}; "
        f"{small.corpus_chars / MB:,.1f} MB: "
        f"{', '.join(f'{c:,}' for c in small.prompt_chars)}.",
        "What differs between the two corpora is only numbers the root is shown: the "
        "description (document count, total characters), the hit count and the counters; "
        "the printed lines, peeks and child answers are the same text.",
        f"Answers: {large.corpus_chars / MB:,.0f} MB: \"{large.answer}\"; "
        f"{small.corpus_chars / MB:,.1f} MB: \"{small.answer}\".",
        f"Run wall time (including building the corpus pack and starting the worker): "
        f"{large.elapsed_s:.1f} s vs {small.elapsed_s:.1f} s.",
    ]
    if args.quick:
        notes.append("--quick: 1 MB vs 10 MB.")

    _common.report(rows, notes, total_started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
