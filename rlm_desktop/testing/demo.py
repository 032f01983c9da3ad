"""The demo: a small procurement corpus and a scripted investigation over it.

`rlm-desktop --demo` opens the window on the corpus bundled in `rlm_desktop/resources/demo/`
(a purchase-order approval log, the procurement policy as a PDF, and a mailbox), fills in
`QUESTION` and answers it with the scripted server: the root "model" is the fixed script
`root_reply` below and child calls are answered by a rule that quotes the mail. Nothing in
the demo is a language model, and the window says so.

The corpus is made by `write_corpus` (deterministic; `python -m rlm_desktop.testing.demo
DIR` rewrites it) so the right answer is known: three purchase orders above EUR 10,000 were
released with a single approval (`SINGLE_APPROVAL`).
"""

from __future__ import annotations

import random
import re
import sys
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

from rlm_desktop.testing.server import ScriptedServer, message_text

QUESTION = ("Which purchase orders above EUR 10,000 were released with fewer than two "
            "approvals, and does the mail explain why?")
MODEL = "scripted-demo"
THRESHOLD = 10_000.0

# The purchase orders released against the policy, with their only approver.
SINGLE_APPROVAL: dict[str, str] = {"PO-1186": "m.keller", "PO-1204": "s.brandt",
                                   "PO-1267": "j.ortega"}
_VENDORS = ("Kestrel Marine Supply", "Nordhafen Steel", "Baltic Rope & Chain",
            "Lindqvist Electrics", "Harbour Paints GmbH", "Oresund Fuel Services",
            "Vega Hydraulics", "Port Office Supplies")
_APPROVERS = ("j.ortega", "m.keller", "s.brandt", "d.novak", "a.haddad")
_NOISE = ("INFO sync: ERP export finished", "INFO scheduler: nightly budget check ok",
          "WARN mailer: retrying delivery to finance-archive", "INFO auth: session renewed",
          "INFO sync: vendor master data refreshed")


# --------------------------------------------------------------------------- the corpus


def _purchase_orders(rng: random.Random) -> list[dict[str, Any]]:
    orders = []
    for number in range(1150, 1290, 3):
        po = f"PO-{number}"
        if po in SINGLE_APPROVAL:
            amount = rng.choice((14_250.0, 22_900.0, 48_600.0))
        else:
            amount = round(rng.uniform(800, 36_000), 2)
        orders.append({"po": po, "vendor": rng.choice(_VENDORS), "amount": amount})
    return orders


def approvals_log(seed: int = 11) -> str:
    """The ERP's approval log: created, approval (one line per approver), released."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    clock = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    lines: list[str] = []

    def emit(text: str) -> None:
        nonlocal clock
        clock += timedelta(minutes=rng.randint(3, 95), seconds=rng.randint(0, 59))
        lines.append(f"{clock:%Y-%m-%dT%H:%M:%SZ} {text}")

    for order in _purchase_orders(rng):
        po, vendor, amount = order["po"], order["vendor"], order["amount"]
        emit(f'INFO procurement po={po} event=created vendor="{vendor}" '
             f"amount_eur={amount:.2f} by=requests@northwind.example")
        if rng.random() < 0.5:
            emit(rng.choice(_NOISE))
        if po in SINGLE_APPROVAL:
            approvers = [SINGLE_APPROVAL[po]]
        elif amount > THRESHOLD:
            approvers = rng.sample(_APPROVERS, 2)
        else:
            approvers = [rng.choice(_APPROVERS)]
        for step, approver in enumerate(approvers, 1):
            needed = 2 if amount > THRESHOLD else 1
            emit(f"INFO procurement po={po} event=approval approver={approver} "
                 f"step={step}/{needed}")
        emit(f"INFO procurement po={po} event=released amount_eur={amount:.2f}")
    return "\n".join(lines) + "\n"


_POLICY_PAGES = (
    ["Northwind Shipping - Procurement Policy", "Version 3.1, effective 1 January 2026", "",
     "1. Scope", "This policy applies to every purchase of goods and services by",
     "Northwind Shipping and its port offices.", "",
     "2. Requests", "Purchases are requested in the ERP. A request names the vendor,",
     "the amount in EUR and the cost centre.", "",
     "3. Vendors", "Only vendors in the vendor master data may be used. New vendors",
     "are approved by Finance before the first order."],
    ["4. Approval", "4.1 Purchase orders up to EUR 10,000 require one approver from",
     "the list of authorised approvers.",
     "4.2 Purchase orders above EUR 10,000 require approval by two different",
     "approvers before release. No exception is allowed for urgency.",
     "4.3 An approver may not approve an order they requested.", "",
     "5. Release", "An order is released to the vendor only after the approvals",
     "required by section 4 are recorded in the ERP.", "",
     "6. Audit", "Internal Audit reviews released orders every quarter."],
)


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def policy_pdf(pages: Sequence[Sequence[str]] = _POLICY_PAGES) -> bytes:
    """A small text PDF (Helvetica, one line per text object), written byte by byte so it
    is the same every time."""
    objects: list[bytes] = []
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                   b"/Encoding /WinAnsiEncoding >>")
    for index, lines in enumerate(pages):
        stream = ["BT"]
        y = 770
        for number, line in enumerate(lines):
            size = 16 if index == 0 and number == 0 else 11
            stream.append(f"/F1 {size} Tf 1 0 0 1 64 {y} Tm ({_pdf_escape(line)}) Tj")
            y -= 26 if size == 16 else 17
        stream.append("ET")
        data = zlib.compress("\n".join(stream).encode("cp1252"), 9)
        content_ref = 5 + 2 * index
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                       f"/Resources << /Font << /F1 3 0 R >> >> "
                       f"/Contents {content_ref} 0 R >>".encode())
        objects.append(f"<< /Length {len(data)} /Filter /FlateDecode >>\nstream\n".encode()
                       + data + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)


_MAILS: tuple[tuple[str, str, str, str], ...] = (
    ("d.novak@northwind.example", "team-procurement@northwind.example",
     "Quarter close reminder",
     "Hi all,\n\nplease make sure every open purchase order has its approvals recorded "
     "before Friday.\n\nDana"),
    ("m.keller@northwind.example", "s.brandt@northwind.example",
     "PO-1186 vessel repair - release today",
     "Sven,\n\nthe Aurora is stuck in dock until the hydraulic pump arrives. Dana is on "
     "leave, so I released PO-1186 on my approval only; I will get the second signature "
     "when she is back.\n\nMarta"),
    ("a.haddad@northwind.example", "team-procurement@northwind.example",
     "Vendor master data refreshed",
     "The vendor list in the ERP was refreshed last night. Harbour Paints GmbH has a new "
     "bank account; Finance has verified it.\n\nAmir"),
    ("s.brandt@northwind.example", "m.keller@northwind.example",
     "Re: PO-1204 steel plates",
     "Marta,\n\nPO-1204 was meant to be two orders below the limit; the ERP merged them "
     "into one, so it went out with my approval alone. I have asked IT to look at the "
     "merge.\n\nSven"),
    ("finance-archive@northwind.example", "team-procurement@northwind.example",
     "Invoices received this week",
     "Invoices for PO-1153, PO-1159 and PO-1171 were received and matched.\n\nFinance"),
    ("j.ortega@northwind.example", "d.novak@northwind.example", "Budget check",
     "Dana,\n\nthe nightly budget check is green for March. Nothing to report.\n\nJulia"),
    ("d.novak@northwind.example", "internal.audit@northwind.example",
     "Audit preparation",
     "Hello,\n\nfor the quarterly review you will find the approval log and the policy in "
     "the shared folder.\n\nDana"),
)


def mailbox() -> str:
    """An mbox of the procurement team's mail (PO-1267 is never explained in it)."""
    when = datetime(2026, 3, 3, 9, 30, tzinfo=UTC)
    parts = []
    for number, (sender, to, subject, body) in enumerate(_MAILS):
        when += timedelta(days=1, hours=number % 3, minutes=7 * number)
        parts.append(
            f"From {sender} {when:%a %b %d %H:%M:%S %Y}\n"
            f"From: {sender}\nTo: {to}\nSubject: {subject}\n"
            f"Date: {format_datetime(when)}\n"
            f"Message-ID: <demo-{number + 1}@northwind.example>\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n"
            f"{body}\n")
    return "\n".join(parts)


CORPUS_FILES = ("approvals.log", "procurement-policy.pdf", "procurement.mbox")


def bundled_corpus() -> list[Path]:
    """The demo corpus shipped in `rlm_desktop/resources/demo/`, as files on disk (copied
    to the cache dir first when the package is not installed as plain files)."""
    from rlm_desktop import paths

    root = files("rlm_desktop.resources").joinpath("demo")
    if isinstance(root, Path):
        return [root / name for name in CORPUS_FILES]
    target = paths.cache_dir() / "demo"
    target.mkdir(parents=True, exist_ok=True)
    copies = []
    for name in CORPUS_FILES:
        data = root.joinpath(name).read_bytes()
        copy = target / name
        if not copy.is_file() or copy.read_bytes() != data:
            copy.write_bytes(data)
        copies.append(copy)
    return copies


def write_corpus(directory: Path) -> list[Path]:
    """Write the demo corpus into `directory`; returns the files."""
    directory.mkdir(parents=True, exist_ok=True)
    files = [directory / name for name in CORPUS_FILES]
    files[0].write_text(approvals_log(), encoding="utf-8", newline="\n")
    files[1].write_bytes(policy_pdf())
    files[2].write_text(mailbox(), encoding="utf-8", newline="\n")
    return files


# --------------------------------------------------------------------------- the script

_STEPS: tuple[str, ...] = (
    "I will look at what the corpus holds first.\n```repl\n"
    "print(len(context), 'documents:', dict(context.kinds()))\n"
    "for d in context[:4]:\n    print('-', d.name, d.kind, len(d.text), 'chars')\n"
    "print(peek('approvals.log', 0, 400))\n```",

    "The policy should say what a purchase order above EUR 10,000 needs.\n```repl\n"
    "rule = grep(r'above EUR 10,000|two different', 'procurement-policy.pdf')\n"
    "for h in rule:\n    print(h.page, h.line, h.text)\n```",

    "Now every approval and release in the log, collected per purchase order.\n```repl\n"
    "events = grep(r'event=(created|approval|released)', 'approvals.log')\n"
    "orders = {}\n"
    "for h in events:\n"
    "    po = re.search(r'po=(PO-\\d+)', h.text).group(1)\n"
    "    o = orders.setdefault(po, {'amount': 0.0, 'approvers': [], 'released': None, "
    "'hits': []})\n"
    "    o['hits'].append(h)\n"
    "    amount = re.search(r'amount_eur=([\\d.]+)', h.text)\n"
    "    if amount:\n        o['amount'] = float(amount.group(1))\n"
    "    approver = re.search(r'approver=([\\w.]+)', h.text)\n"
    "    if approver and approver.group(1) not in o['approvers']:\n"
    "        o['approvers'].append(approver.group(1))\n"
    "    if 'event=released' in h.text:\n        o['released'] = h\n"
    "flagged = sorted(po for po, o in orders.items()\n"
    "                 if o['amount'] > 10000 and o['released'] and len(o['approvers']) < 2)\n"
    "print(len(orders), 'orders;', sum(1 for o in orders.values() if o['amount'] > 10000),"
    " 'above EUR 10,000')\n"
    "print('released with fewer than two approvals:', flagged)\n```",

    "Three orders. I will read the mail in chunks and ask a child call what each chunk "
    "says about them.\n```repl\n"
    "mails = [d for d in context if d.kind == 'email']\n"
    "chunks = partition(mails, by='messages', size=3)\n"
    "notes = llm_query_batched([\n"
    "    'Purchase orders: ' + ', '.join(flagged) + '. Quote what this mail says about the '\n"
    "    'approval of each of them, one line per order, or answer none.\\n\\n' + c\n"
    "    for c in chunks])\n"
    "for c, n in zip(chunks, notes):\n    print(len(c), 'chars ->', n)\n"
    "mentions = grep('|'.join(flagged), mails)\n"
    "print(len(mentions), 'mail lines name them')\n```",

    "```repl\n"
    "said = {}\n"
    "for n in notes:\n"
    "    for line in n.splitlines():\n"
    "        m = re.match(r'(PO-\\d+): (.+)', line)\n"
    "        if m:\n            said[m.group(1)] = m.group(2)\n"
    "lines = [f'{len(flagged)} purchase orders above EUR 10,000 were released with a '\n"
    "         'single approval, against section 4.2 of the procurement policy:', '']\n"
    "sources = list(rule)\n"
    "for po in flagged:\n"
    "    o = orders[po]\n"
    "    lines.append(f\"- **{po}**: EUR {o['amount']:,.2f}, approved only by \"\n"
    "                 f\"{o['approvers'][0]}, released {o['released'].text[:10]}. \"\n"
    "                 + (f'Mail: {said[po]}' if po in said else 'The mail does not '\n"
    "                    'explain it.'))\n"
    "    sources += o['hits']\n"
    "sources += mentions\n"
    "FINAL('\\n'.join(lines), sources=sources)\n```",
)

OTHER_QUESTION_ANSWER = (
    "This is RLM Desktop's scripted demo, not a language model: it can only answer the "
    "demo question about the bundled procurement documents. Set up a model in Settings "
    "(Ctrl+,) to ask your own questions.")


def root_reply(messages: list[dict[str, Any]]) -> str:
    """The scripted root: step N of `_STEPS` after N replies of its own in the conversation,
    so every run (and every window) starts at the beginning."""
    text = " ".join(message_text(m.get("content")) for m in messages if m.get("role") == "user")
    if QUESTION not in text:
        return f'```repl\nFINAL("{OTHER_QUESTION_ANSWER}")\n```'
    step = sum(1 for m in messages if m.get("role") == "assistant")
    return _STEPS[min(step, len(_STEPS) - 1)]


_HEADER = re.compile(r"^(?:===|(?:From|To|Cc|Subject|Date|Message-ID):)")


def child_reply(prompt: str) -> str:
    """Quote the sentence of the mail that names each purchase order (a rule, not a model)."""
    head, _, mail = prompt.partition("\n\n")
    wanted = re.findall(r"PO-\d+", head.split(".", 1)[0])
    body = [line for line in mail.splitlines() if not _HEADER.match(line)]
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(" ".join(body).split()))
    found = []
    for po in wanted:
        quoted = next((s for s in sentences if po in s), None)
        if quoted is not None:
            found.append(f"{po}: {quoted.strip()}")
    return "\n".join(found) if found else "none"


def make_server(latency: float = 0.35, child_latency: float = 0.25) -> ScriptedServer:
    """The demo's scripted server (not started): slow enough to watch the tree grow."""
    return ScriptedServer(root_reply, child_reply, latency=latency,
                          child_latency=child_latency, model=MODEL)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m rlm_desktop.testing.demo DIR", file=sys.stderr)
        return 2
    for path in write_corpus(Path(args[0])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
