"""What the benchmark scripts share: a private RLM_DESKTOP_HOME, the machine line, the
markdown report, small timing helpers, and the generated log corpora.

The scripts run as `uv run python benchmarks/NAME.py`, so this folder is `sys.path[0]` and
`import _common` finds this file.  Nothing of the app is imported here at module level: a
script must be able to import this module, point RLM_DESKTOP_HOME at `private_home()` and
only then import the app.
"""

from __future__ import annotations

import atexit
import functools
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlm_desktop.corpus.document import Document

MB = 1_000_000  # sizes and throughput figures are decimal megabytes


# --------------------------------------------------------------------------- set-up


@functools.cache
def private_home() -> str:
    """A fresh temporary directory for RLM_DESKTOP_HOME, keeping the user's profile out of
    a benchmark; removed when the process exits.  The same directory on every call, so a
    script that imports another one (bench_sandbox imports bench_repl) keeps one home.
    Assign it to os.environ["RLM_DESKTOP_HOME"] before anything of the app is imported."""
    home = tempfile.mkdtemp(prefix="rlm-bench-home-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def say(text: str) -> None:
    """A progress line, on stderr."""
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- report


@dataclass
class Row:
    measurement: str
    figure: str
    baseline: str
    ratio: str
    target: str
    met: str


ROW_HEAD = ("measurement", "figure", "baseline (measured in this run)", "ratio", "target",
            "met?")


def machine(*, usable: bool = True, note: str = "") -> str:
    """One line: CPUs (and how many this process may use, with `note` after that count),
    the CPU model, Python, the OS."""
    cpus = os.cpu_count() or 0
    cpu_text = f"{cpus} CPUs"
    if usable:
        try:
            allowed = len(os.sched_getaffinity(0))
        except AttributeError:
            allowed = cpus
        cpu_text += f" ({allowed} usable{note})"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"Machine: {cpu_text}, {model}; Python {platform.python_version()} "
            f"({platform.python_implementation()}), {platform.system()} {platform.release()}")


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def table(rows: Sequence[Row]) -> str:
    return markdown_table(ROW_HEAD, [astuple(r) for r in rows])


def report(rows: Sequence[Row], notes: Sequence[str], started: float, *,
           machine_line: str | None = None, wall_note: str = "") -> None:
    """The machine line, the table and the notes on stdout; the wall time since `started`
    (a time.perf_counter value) on stderr."""
    print()
    print(machine() if machine_line is None else machine_line)
    print()
    print(table(rows))
    print()
    for note in notes:
        print(f"- {note}")
    say(f"\n(benchmark wall time {time.perf_counter() - started:.0f} s{wall_note})")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# --------------------------------------------------------------------------- REPL workers


async def no_call(message: dict[str, Any]) -> Any:
    """`on_call` for cells that must not call back into the parent."""
    raise RuntimeError(f"unexpected call from the worker: {message}")


def no_event(message: dict[str, Any]) -> None:
    """`on_event` for cells whose events are not looked at."""


def cached_documents(directory: Path) -> list[Document]:
    """`ingest()` of `directory` into the text cache of RLM_DESKTOP_HOME; every document
    must be in the cache (so `build_pack` only points a worker at byte ranges)."""
    from rlm_desktop.corpus.ingest import ingest

    result = ingest([directory])
    if result.failed:
        raise SystemExit(f"ingest failed: {result.failed[0].name}: {result.failed[0].error}")
    documents = result.documents
    if not all(d.text_file is not None for d in documents):
        raise SystemExit("some documents are not in the text cache")
    return documents


# --------------------------------------------------------------------------- log corpora

USERS = ("root", "admin", "oracle", "test", "ubuntu", "guest", "postgres", "git", "deploy",
         "www-data", "pi", "user", "ftp", "mysql", "nagios", "support", "jenkins", "backup")
HOSTS = tuple(f"node{n:02d}" for n in range(24))
PATHS = ("users", "orders", "invoices", "search", "health", "login", "cart", "items/42")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

@dataclass(frozen=True)
class Line:
    """What a generated log line has drawn before its kind: the time stamp and host, the
    address, pid and port; and the generator and user names the rest draws from."""

    rng: random.Random
    users: Sequence[str]
    stamp: str
    pid: int
    ip: str
    port: int


def failed_password(x: Line) -> str:
    return (f"{x.stamp} sshd[{x.pid}]: Failed password for {x.rng.choice(x.users)} from "
            f"{x.ip} port {x.port} ssh2")


def accepted_publickey(x: Line) -> str:
    key = "".join(x.rng.choices("0123456789abcdefABCDEF+/", k=43))
    return (f"{x.stamp} sshd[{x.pid}]: Accepted publickey for {x.rng.choice(x.users)} from "
            f"{x.ip} port {x.port} ssh2: RSA SHA256:{key}")


def connection_closed(x: Line) -> str:
    return f"{x.stamp} sshd[{x.pid}]: Connection closed by {x.ip} port {x.port} [preauth]"


def pam_failure(x: Line) -> str:
    return (f"{x.stamp} sshd[{x.pid}]: pam_unix(sshd:auth): authentication failure; logname= "
            f"uid=0 euid=0 tty=ssh ruser= rhost={x.ip}  user={x.rng.choice(x.users)}")


def link_up(x: Line) -> str:
    return (f"{x.stamp} kernel: [{x.rng.uniform(0, 99999):.6f}] eth{x.rng.randint(0, 3)}: "
            f"link up, {x.rng.choice((100, 1000, 10000))} Mbps full duplex")


def segfault(x: Line) -> str:
    return (f"{x.stamp} kernel: [{x.rng.uniform(0, 99999):.6f}] worker[{x.pid}]: segfault at "
            f"{x.rng.getrandbits(48):x} ip {x.rng.getrandbits(48):012x} error 4 in libc.so.6")


def cron(x: Line) -> str:
    return f"{x.stamp} CRON[{x.pid}]: (root) CMD (run-parts /etc/cron.hourly)"


def upstream_timeout(x: Line) -> str:
    word = x.rng.choice(("Timeout", "timeout", "TIMEOUT"))
    return (f"{x.stamp} app[{x.pid}]: WARN upstream {x.rng.choice(HOSTS)}:8080 {word} after "
            f"{x.rng.randint(1000, 30000)}ms (attempt {x.rng.randint(1, 5)})")


def db_refused(x: Line) -> str:
    return f"{x.stamp} app[{x.pid}]: ERROR connect to db {x.ip}:5432: Connection refused"


@dataclass(frozen=True)
class LogMix:
    """What a generated log holds.  A line draws a roll in [0, 1): the first of `kinds`
    whose bound exceeds it writes the line; above the last bound it is an application
    request, logged at INFO below 0.95 and at `other_level` from there."""

    kinds: tuple[tuple[float, Callable[[Line], str]], ...]
    users: Sequence[str]
    paths: Sequence[str]
    other_level: str


def random_ips(rng: random.Random, count: int) -> list[str]:
    return [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}."
            f"{rng.randint(1, 254)}" for _ in range(count)]


def log_line(rng: random.Random, ips: Sequence[str], mix: LogMix) -> str:
    stamp = (f"{rng.choice(MONTHS)} {rng.randint(1, 28):2d} {rng.randint(0, 23):02d}:"
             f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} {rng.choice(HOSTS)}")
    ip, pid, port = rng.choice(ips), rng.randint(1000, 65000), rng.randint(1024, 65535)
    roll = rng.random()
    for bound, kind in mix.kinds:
        if roll < bound:
            return kind(Line(rng, mix.users, stamp, pid, ip, port))
    level = "INFO" if roll < 0.95 else mix.other_level
    return (f"{stamp} app[{pid}]: {level} request {rng.getrandbits(40):010x} "
            f"{rng.choice(('GET', 'POST', 'PUT'))} /api/{rng.choice(mix.paths)} "
            f"{rng.choice((200, 200, 200, 201, 304, 404, 500))} {rng.randint(1, 900)}ms "
            f"user={rng.choice(mix.users)}")


#: bench_grep's corpus (also bench_sandbox's): sshd, kernel, cron and application lines,
#: with rare segfaults, timeouts and refused connections for the case-insensitive query.
GREP_MIX = LogMix(
    kinds=((0.05, failed_password), (0.08, accepted_publickey), (0.18, connection_closed),
           (0.23, pam_failure), (0.31, link_up), (0.312, segfault), (0.36, cron),
           (0.365, upstream_timeout), (0.37, db_refused)),
    users=(*USERS, "alice", "bob"), paths=(*PATHS, "reports/daily", "export"),
    other_level="DEBUG")
SELECTIVE_IP = "203.0.113.77"  # in the address pool, so the selective query has hits
LOG_FILES = 64


def make_corpus(target_bytes: int, seed: int) -> tuple[str, list[dict[str, Any]]]:
    """(blob, entries) as the REPL worker builds them: ~20 KB log documents."""
    rng = random.Random(seed)
    ips = [*random_ips(rng, 5_000), SELECTIVE_IP]
    texts: list[str] = []
    total = 0
    while total < target_bytes:
        text = "\n".join(log_line(rng, ips, GREP_MIX) for _ in range(rng.randint(100, 300)))
        texts.append(text)
        total += len(text) + 1
    entries, pos = [], 0
    for i, text in enumerate(texts):
        entries.append({"id": f"d{i}", "name": f"host{i % 97:02d}/syslog.{i}.log",
                        "path": f"/logs/host{i % 97:02d}/syslog.{i}.log", "kind": "log",
                        "meta": {}, "start": pos, "end": pos + len(text), "page_starts": None})
        pos += len(text) + 1
    return "\n".join(texts), entries


def write_log_files(blob: str, entries: Sequence[dict[str, Any]], directory: Path,
                    files: int = LOG_FILES) -> None:
    """The corpus as `files` .log files of whole documents each (so the lines are the
    same)."""
    per_file = -(-len(entries) // files)
    for n in range(0, len(entries), per_file):
        group = entries[n : n + per_file]
        (directory / f"part{n // per_file:03d}.log").write_text(
            blob[group[0]["start"] : group[-1]["end"]], encoding="utf-8")
