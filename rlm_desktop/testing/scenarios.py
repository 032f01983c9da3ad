"""Scripted investigations with known answers, for tests, benchmarks and the demo.

The seed scenario: 5,000 support tickets, one per line; "how many billing questions did
these three users ask?" The root script peeks, greps the three users, classifies the hits
with one batched child call, and answers; the child rule labels a ticket as billing when it
speaks of invoices, refunds, charges or payments, which is also how the ground truth is
made, so the right count is known exactly.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from rlm_desktop.testing.server import ChildRule

THREE_USERS = ("alice.moreau@example.com", "bob.nakamura@example.com",
               "carol.okafor@example.com")
_OTHER_USERS = [f"user{n:04d}@example.org" for n in range(400)]
_BILLING = [
    "I was charged twice for my subscription this month",
    "Where can I download the invoice for order {n}?",
    "Please refund the payment for the cancelled plan",
    "My card payment failed but the charge still shows",
    "The invoice total does not match the quote",
    "Requesting a refund for the duplicate charge on {n}",
]
_OTHER = [
    "The app crashes when I open the settings page",
    "How do I reset my password?",
    "Export to CSV is missing the last column",
    "Sync stopped working after the update to {n}",
    "Can I change the language of the interface?",
    "Two-factor codes arrive late",
]
BILLING_WORDS = re.compile(r"invoice|refund|charge|payment", re.I)


@dataclass(frozen=True, slots=True)
class Tickets:
    path: Path
    count: int
    billing_by_three: int          # the right answer
    lines_by_three: tuple[int, ...]  # 1-based lines of the three users' tickets
    billing_lines: tuple[int, ...]


def write_tickets(path: Path, count: int = 5000, seed: int = 7) -> Tickets:
    """`count` tickets as `#id | date | user | text` lines, deterministic for a seed."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    lines, by_three, billing_lines = [], [], []
    for n in range(1, count + 1):
        user = rng.choice(THREE_USERS) if rng.random() < 0.02 else rng.choice(_OTHER_USERS)
        billing = rng.random() < 0.35
        text = rng.choice(_BILLING if billing else _OTHER).format(n=10000 + n)
        day = 1 + n % 28
        lines.append(f"#{n:05d} | 2026-03-{day:02d} | {user} | {text}")
        if user in THREE_USERS:
            by_three.append(n)
            if billing:
                billing_lines.append(n)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Tickets(path, count, len(billing_lines), tuple(by_three), tuple(billing_lines))


TICKETS_QUESTION = ("How many billing questions did alice.moreau@example.com, "
                    "bob.nakamura@example.com and carol.okafor@example.com ask?")

TICKETS_SCRIPT: list[str] = [
    "Let me look at the corpus first.\n```repl\nprint(len(context), context.kinds())\n"
    "print(peek(context[0], 0, 400))\n```",
    "Each line is a ticket with the user's address. I will grep the three users.\n"
    "```repl\nusers = ['alice.moreau@example.com', 'bob.nakamura@example.com', "
    "'carol.okafor@example.com']\n"
    "hits = grep('|'.join(re.escape(u) for u in users))\n"
    "print(len(hits), 'tickets from the three users')\nfor h in hits[:3]:\n    print(h)\n```",
    "Now I classify every ticket with one batched call.\n```repl\n"
    "labels = llm_query_batched([f'Is this support ticket a billing question? Answer yes or "
    "no.\\n\\n{h.text}' for h in hits])\n"
    "billing = [h for h, label in zip(hits, labels) if label.strip().lower().startswith('yes')]"
    "\nprint(len(billing), 'billing of', len(hits))\n```",
    "```repl\nFINAL(f'{len(billing)} billing questions', sources=billing)\n```",
]


def billing_rule() -> ChildRule:
    """Child calls: "yes" when the ticket speaks of invoices, refunds, charges or payments."""

    def reply(prompt: str) -> str:
        ticket = prompt.split("\n\n", 1)[-1]
        return "yes" if BILLING_WORDS.search(ticket) else "no"

    return ChildRule(r"Is this support ticket a billing question", reply)
