"""The escape-suite harness: canaries planted around a real REPL worker, and the invariants
every attack is checked against (docs/security.md, issue 4 item 5). The fixtures that use
it are in conftest.py.

Canaries (values are random per session, all of the form RLMCANARY-<kind>-<hex>):

- the parent's environment: OPENAI_API_KEY and RLM_CANARY_ENV in the test process's
  os.environ while a worker starts (the worker's environment is scrubbed);
- files: HOME/canary.txt (HOME of the test process is a temporary directory, never the
  user's) and a canary file in /tmp;
- a TCP and a UDP listener on 127.0.0.1 that record anything that reaches them;
- a keyring entry, stored by a tiny keyring backend (a JSON file in that HOME) installed in
  the test process with keyring.set_keyring for the duration of each test;
- sentinels: KEY=VALUE entries of the test process's own initial environment (what
  /proc/<ppid>/environ would show), which the worker was never given.

Invariants, checked after every attack (`Harness.attack`): no canary or sentinel appears in
anything the worker sent back (cell output, errors, final answers, the calls and events it
made, the parent's error texts); the parent is alive; no file appeared or changed in the
HOME, /tmp, /var/tmp, /dev/shm, the test's TMPDIR or the corpus; no process started by the
worker survives it; the listeners saw nothing; the child-call budget was respected.

Configurations: `language` (RestrictedPython only), `os` (OS layer only, plain exec),
`both`. RLM_SECURITY_UNCONFINED=1 adds `none` (no layer at all), to check that the suite
does catch leaks; it is not part of the normal run. RLM_SECURITY_REPORT=FILE appends one
JSON line per attack and configuration (what each cell returned) for the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import secrets
import select
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from rlm_desktop.corpus.document import Document
from rlm_desktop.engine import pack as pack_module
from rlm_desktop.engine.pack import CorpusPack, build_pack
from rlm_desktop.engine.repl import ReplError, ReplProcess, SandboxPolicy
from rlm_desktop.settings import KEYRING_SERVICE, KEYRING_USER

__all__ = [
    "CONFIG_NAMES", "FORBIDDEN_MARKERS", "HOST_MARKERS", "LINUX", "POLICIES", "Canaries",
    "Cell", "Harness", "JsonFileKeyring", "Listener", "Outcome", "Watch", "config_params",
    "make_documents", "plant_canaries", "processes", "remove_canaries", "tree",
]

LINUX = sys.platform.startswith("linux")
CONFIG_NAMES = ["language", "os", "both"]
if os.environ.get("RLM_SECURITY_UNCONFINED") == "1":
    CONFIG_NAMES.append("none")
# The worker keeps these variables of the parent's environment (repl._KEEP_ENV) and gets
# these set for it; a sentinel is anything else.
_WORKER_ENV = {"PATH", "SYSTEMROOT", "WINDIR", "LANG", "LC_ALL", "PYTHONPATH", "TMPDIR",
               "TEMP", "TMP", "HOME", "USERPROFILE", "PYTHONDONTWRITEBYTECODE",
               "PYTHONHASHSEED"}
# /tmp (/var/tmp, /dev/shm) is shared with every other program on the machine, so a new
# entry there counts against an attack when it bears an attack's name (rlmpwn-*) or holds
# what attacks write ("pwned", a canary); HOME and TMPDIR are private to the test and are
# compared exactly.
_TMP_WITNESS = (b"pwned", b"RLMCANARY-")
SHARED_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
# Markers that an attack prints only when it got somewhere; none may ever be seen.
FORBIDDEN_MARKERS = ("PARENT-SIGNALLABLE", "CORPUS-WRITABLE", "FORKED-CHILD-RAN",
                     "SPAWNED-PROCESS", "LISTENER-REACHED")
# What a language layer that works never lets model code reach or print.
HOST_MARKERS = ("<module 'os'", "<module 'posix'", "<module 'sys'", "<module 'builtins'",
                "environ({", "<frame at ", "Worker object at", "<cell at ",
                "<code object", "<module 'subprocess'", "<module 'ctypes'",
                "<module 'codecs'", "<module 'inspect'", "<module 'importlib")

CORPUS_TEXT = {
    "notes.txt": "meeting notes\nthe budget is 42\nnothing secret here\n",
    "redos.txt": "a" * 40 + "b\n" + "a" * 40 + "!\n",
    "mail.eml": "From: dana@example.com\nSubject: quarterly numbers\n\nTotal: 12\n",
}


def make_documents(texts: dict[str, str] | None = None) -> list[Document]:
    return [Document(id=f"id-{name}", name=name, path=f"/cases/{name}", kind="text",
                     sha256="0" * 64, size=len(text), text=text)
            for name, text in (texts or CORPUS_TEXT).items()]


# -- canaries ----------------------------------------------------------------------------


class JsonFileKeyring(KeyringBackend):
    """A keyring backend that keeps passwords in a JSON file: the planted keyring entry."""

    priority = 1  # type: ignore[assignment]

    def __init__(self, path: Path | None = None) -> None:
        super().__init__()
        self.path = path or Path(os.environ.get("HOME", ".")) / "keyring.json"

    def _load(self) -> dict[str, str]:
        if not self.path.is_file():
            return {}
        return dict(json.loads(self.path.read_text(encoding="utf-8")))

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}\0{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}\0{username}"] = password
        self.path.write_text(json.dumps(data), encoding="utf-8")

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}\0{username}", None) is None:
            raise PasswordDeleteError(username)
        self.path.write_text(json.dumps(data), encoding="utf-8")


class Listener:
    """TCP and UDP sockets on 127.0.0.1 (same port) recording whatever reaches them."""

    def __init__(self) -> None:
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(64)
        self.port = int(self.tcp.getsockname()[1])
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.udp.bind(("127.0.0.1", self.port))
        except OSError:
            self.udp.bind(("127.0.0.1", 0))
        self.udp_port = int(self.udp.getsockname()[1])
        self.seen: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="canary-listener", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self.tcp, self.udp], [], [], 0.05)
            for sock in readable:
                if sock is self.udp:
                    with contextlib.suppress(OSError):
                        data, peer = self.udp.recvfrom(65536)
                        self._record(f"udp {peer}", data)
                    continue
                with contextlib.suppress(OSError):
                    conn, peer = self.tcp.accept()
                    with conn:
                        conn.settimeout(0.5)
                        data = b""
                        with contextlib.suppress(OSError):
                            data = conn.recv(65536)
                        self._record(f"tcp {peer}", data)

    def _record(self, who: str, data: bytes) -> None:
        with self._lock:
            self.seen.append((who, data))

    def count(self) -> int:
        with self._lock:
            return len(self.seen)

    def since(self, start: int) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.seen[start:])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.tcp.close()
        self.udp.close()


@dataclass
class Canaries:
    env_key: str            # OPENAI_API_KEY of the parent
    env_other: str          # RLM_CANARY_ENV of the parent
    home_secret: str        # in HOME/canary.txt
    tmp_secret: str         # in /tmp/rlm-sec-canary-*.txt
    keyring_secret: str     # the keyring entry
    home: Path
    home_canary: Path
    tmp_canary: Path
    keyring_file: Path
    scratch: Path           # TMPDIR of the test process (and so of the worker)
    listener: Listener
    sentinels: tuple[str, ...]  # KEY=VALUE of the test process's initial environment
    pack: CorpusPack
    pack_file: Path

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.env_key, self.env_other, self.home_secret, self.tmp_secret,
                self.keyring_secret)

    def leaks_in(self, text: str) -> list[str]:
        found = [s for s in self.secrets if s in text]
        found += [f"sentinel {s.split('=', 1)[0]}" for s in self.sentinels if s in text]
        return found


def plant_canaries(base: Path) -> Canaries:
    """Make the canaries under `base` (and one in /tmp) and start the listeners."""
    def token(kind: str) -> str:
        return f"RLMCANARY-{kind}-{secrets.token_hex(8)}"

    home = base / "home"
    scratch = base / "tmp"
    corpus_dir = base / "corpus"
    for path in (home, scratch, corpus_dir):
        path.mkdir()
    values = {k: token(k) for k in ("ENVKEY", "ENV", "HOME", "TMP", "KEYRING")}
    home_canary = home / "canary.txt"
    home_canary.write_text(f"home secret: {values['HOME']}\n", encoding="utf-8")
    keyring_file = home / "keyring.json"
    JsonFileKeyring(keyring_file).set_password(KEYRING_SERVICE, KEYRING_USER,
                                               values["KEYRING"])
    handle, tmp_name = tempfile.mkstemp(prefix="rlm-sec-canary-", suffix=".txt",
                                        dir="/tmp" if os.path.isdir("/tmp") else None)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(f"tmp secret: {values['TMP']}\n")
    os.chmod(tmp_name, 0o644)
    saved_tempdir = tempfile.tempdir
    tempfile.tempdir = str(corpus_dir)
    saved_inline = pack_module.INLINE_CHARS
    pack_module.INLINE_CHARS = -1  # the corpus must be a file, so that attacks can aim at it
    try:
        pack = build_pack(make_documents())
    finally:
        tempfile.tempdir = saved_tempdir
        pack_module.INLINE_CHARS = saved_inline
    return Canaries(
        env_key=values["ENVKEY"], env_other=values["ENV"], home_secret=values["HOME"],
        tmp_secret=values["TMP"], keyring_secret=values["KEYRING"], home=home,
        home_canary=home_canary, tmp_canary=Path(tmp_name), keyring_file=keyring_file,
        scratch=scratch, listener=Listener(), sentinels=_initial_environment_sentinels(),
        pack=pack, pack_file=Path(next(iter(pack.files))))


def remove_canaries(canaries: Canaries) -> None:
    canaries.listener.close()
    canaries.pack.cleanup()
    with contextlib.suppress(OSError):
        canaries.tmp_canary.unlink()


def _initial_environment_sentinels() -> tuple[str, ...]:
    """KEY=VALUE entries of this process's environment as it was exec'd (what another
    process reading /proc/<pid>/environ sees), minus what the worker legitimately has."""
    if not LINUX:
        return ()
    raw = Path("/proc/self/environ").read_bytes().split(b"\0")
    out = []
    for item in raw:
        text = item.decode("utf-8", "replace")
        key, _, value = text.partition("=")
        if (key and key not in _WORKER_ENV and len(value) >= 8
                and re.fullmatch(r"[A-Za-z0-9_./:,@+-]+", value)):
            out.append(f"{key}={value}")
    return tuple(out)


# -- snapshots ---------------------------------------------------------------------------


def tree(root: Path) -> dict[str, str]:
    """Every file and directory under root -> a digest of its content ("dir" for dirs)."""
    out: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            out[os.path.relpath(os.path.join(folder, name), root)] = "dir"
        for name in files:
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as handle:
                    out[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
            except OSError as exc:
                out[os.path.relpath(path, root)] = f"unreadable {exc.errno}"
    return out


def _attack_made(path: str) -> bool:
    """Whether a new entry of a shared directory is an attack's doing (_TMP_WITNESS)."""
    if "rlmpwn" in os.path.basename(path):
        return True
    try:
        if not os.path.isfile(path) or os.path.getsize(path) > 1 << 20:
            return False
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return False
    return any(w in data for w in _TMP_WITNESS)


def tmp_entries() -> set[str]:
    """The entries of the machine's shared writable directories."""
    out: set[str] = set()
    for folder in SHARED_DIRS:
        with contextlib.suppress(OSError):
            out.update(os.path.join(folder, name) for name in os.listdir(folder))
    return out


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    sid: int
    state: str


def processes() -> dict[int, Proc]:
    if not LINUX:
        return {}
    table: dict[int, Proc] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2:].split()
        table[int(entry.name)] = Proc(int(entry.name), int(rest[1]), int(rest[3]),
                                      rest[0].decode())
    return table


def _environ_mentions(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return needle in handle.read()
    except OSError:
        return False


def stray_processes(before: dict[int, Proc], worker_pids: Sequence[int], scratch: Path
                    ) -> list[Proc]:
    """Live processes that were not there before and come from a worker of this test: its
    descendants, members of its session, or anything carrying its environment."""
    me = os.getpid()
    now = processes()
    sessions = set(worker_pids)
    needle = str(scratch).encode()
    strays = []
    for proc in now.values():
        if proc.pid in before or proc.state in ("Z", "X"):
            continue
        ancestor, hops = proc.ppid, 0
        descendant = False
        while ancestor > 1 and hops < 64:
            if ancestor == me:
                descendant = True
                break
            parent = now.get(ancestor)
            ancestor, hops = (parent.ppid if parent else 0), hops + 1
        if descendant or proc.sid in sessions or _environ_mentions(proc.pid, needle):
            strays.append(proc)
    return strays


# -- the harness -------------------------------------------------------------------------


class BudgetStop(Exception):
    """The harness's stand-in for the run's budget: raised by on_call past the budget."""


@dataclass
class Cell:
    stdout: str = ""
    error: str | None = None
    final: dict[str, Any] | None = None
    reset: bool = False
    elapsed: float = 0.0
    refused: str | None = None   # the parent raised instead of returning a result
    wall: float = 0.0

    def text(self) -> str:
        return "\n".join([self.stdout, self.error or "", json.dumps(self.final),
                          self.refused or ""])


@dataclass
class Outcome:
    config: str
    info: dict[str, Any]
    cells: list[Cell]
    calls: list[dict[str, Any]]
    events: list[dict[str, Any]]
    answered: int
    stderr: str
    worker_pids: list[int] = field(default_factory=list)
    strays: list[Proc] = field(default_factory=list)

    def visible(self) -> str:
        """Everything the worker got back to the parent: what the model and user can see."""
        return "\n".join([*(c.text() for c in self.cells), json.dumps(self.calls),
                          json.dumps(self.events), self.stderr])


POLICIES = {
    "language": SandboxPolicy(language=True, os=False, minimum="none"),
    "os": SandboxPolicy(language=False, os=True, minimum="partial" if LINUX else "none"),
    "both": SandboxPolicy(language=True, os=True, minimum="partial" if LINUX else "none"),
    "none": SandboxPolicy(language=False, os=False, minimum="none"),
}

ON_CALL_BUDGET = 100   # prompts the harness answers per attack, as a run's max_subcalls


class Watch:
    """Snapshots taken before an attack (files, processes, the listeners) and the check of
    every invariant after it."""

    def __init__(self, canaries: Canaries) -> None:
        c = self.canaries = canaries
        self.home = tree(c.home)
        self.scratch = tree(c.scratch)
        self.tmp = tmp_entries()
        self.files = {p: p.read_bytes() for p in (c.tmp_canary, c.pack_file, c.home_canary,
                                                 c.keyring_file)}
        self.processes = processes()
        self.heard = c.listener.count()

    def strays(self, worker_pids: Sequence[int] = ()) -> list[Proc]:
        """Processes that outlived the workers (given a moment to go); killed once seen,
        since they are this test's own."""
        deadline = time.monotonic() + 3.0
        while True:
            found = stray_processes(self.processes, worker_pids, self.canaries.scratch)
            if not found or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for proc in found:
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGKILL)
        return found

    def problems(self, visible: str, *, strays: Sequence[Proc] | None = None,
                 forbidden: Sequence[str] = (), language: bool = False) -> list[str]:
        """Every invariant that does not hold (an empty list when all do); what an attack
        changed is undone so that the next attack is judged on its own."""
        c = self.canaries
        problems: list[str] = []
        strays = self.strays() if strays is None else strays
        if strays:
            problems.append(f"processes outlived the worker: {list(strays)}")
        leaks = c.leaks_in(visible)
        if leaks:
            problems.append(f"canaries visible to the model: {leaks}")
        seen = [m for m in (*FORBIDDEN_MARKERS, *forbidden) if m in visible]
        if seen:
            problems.append(f"the attack got through: {seen}")
        if language:
            host = [m for m in HOST_MARKERS if m in visible]
            if host:
                problems.append(f"host objects reachable under the language layer: {host}")
        home, scratch = tree(c.home), tree(c.scratch)
        if home != self.home:
            problems.append(f"HOME changed: {_diff(self.home, home)}")
            _prune(c.home, self.home)
        if scratch != self.scratch:
            problems.append(f"TMPDIR changed: {_diff(self.scratch, scratch)}")
            _prune(c.scratch, self.scratch)
        new_tmp = sorted(n for n in tmp_entries() - self.tmp if _attack_made(n))
        if new_tmp:
            problems.append(f"new entries in shared directories: {new_tmp}")
            for path in new_tmp:
                if os.path.basename(path).startswith("rlmpwn"):  # ours: the attacks' names
                    with contextlib.suppress(OSError):
                        if os.path.isdir(path) and not os.path.islink(path):
                            os.rmdir(path)
                        else:
                            os.unlink(path)
        for path, data in self.files.items():
            if not path.is_file() or path.read_bytes() != data:
                problems.append(f"{path} was modified or removed")
                path.write_bytes(data)  # restored, so that the next attacks still count
            if path.stat().st_mode & 0o7777 not in (0o644, 0o600):
                problems.append(f"{path} had its mode changed")
                path.chmod(0o644)
        contacts = c.listener.since(self.heard)
        if contacts:
            problems.append(f"the listener was reached: {contacts}")
        os.kill(os.getpid(), 0)  # the parent is alive (it is this process)
        return problems


class Harness:
    """Runs attacks, each in a fresh worker under one configuration, and checks the
    invariants around it."""

    def __init__(self, config: str, canaries: Canaries) -> None:
        self.config = config
        self.policy = POLICIES[config]
        self.canaries = canaries

    @property
    def language(self) -> bool:
        return self.policy.language

    @property
    def confined(self) -> bool:
        return self.policy.os

    def fill(self, code: str, attack: str = "attack") -> str:
        c = self.canaries
        for key, value in {
            "@HOME_CANARY@": str(c.home_canary), "@TMP_CANARY@": str(c.tmp_canary),
            "@KEYRING_FILE@": str(c.keyring_file), "@KR_SERVICE@": KEYRING_SERVICE,
            "@KR_USER@": KEYRING_USER, "@PORT@": str(c.listener.port),
            "@UDP_PORT@": str(c.listener.udp_port), "@HOME@": str(c.home),
            "@PACK_FILE@": str(c.pack_file), "@SCRATCH@": str(c.scratch),
            "@ATTACK@": re.sub(r"\W", "-", attack),
        }.items():
            code = code.replace(key, value)
        return code

    def attack(self, *cells: str, name: str = "attack", timeout: float = 5.0,
               budget: int = ON_CALL_BUDGET, forbidden: Sequence[str] = (),
               on_call: Callable[[dict[str, Any]], Awaitable[Any]] | None = None,
               ) -> Outcome:
        """Run the cells in one fresh worker (restarted by the parent if one kills it),
        close it, and assert every invariant. Returns what happened for further checks."""
        watch = Watch(self.canaries)
        outcome = asyncio.run(self._drive([self.fill(code, name) for code in cells],
                                          timeout, budget, on_call, watch.processes))
        visible = outcome.visible()
        problems = watch.problems(visible, strays=outcome.strays, forbidden=forbidden,
                                  language=self.language)
        if outcome.answered > budget:
            problems.append(f"{outcome.answered} prompts answered, budget {budget}")
        _report(name, outcome)
        assert not problems, (f"[{self.config}] {name}: " + "; ".join(problems)
                              + "\n--- what the worker returned ---\n" + visible[:4000])
        return outcome

    async def _strays(self, before: dict[int, Proc], pids: Sequence[int]) -> list[Proc]:
        """Processes that outlive the worker (given a moment to go); killed once seen,
        since they are this test's own."""
        deadline = time.monotonic() + 3.0
        while True:
            strays = stray_processes(before, pids, self.canaries.scratch)
            if not strays or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        for proc in strays:
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGKILL)
        if strays:
            await asyncio.sleep(0.3)  # let the pipes they held close
        return strays

    async def _drive(self, cells: list[str], timeout: float, budget: int,
                     on_call: Callable[[dict[str, Any]], Awaitable[Any]] | None,
                     before: dict[int, Proc]) -> Outcome:
        calls: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        answered = 0

        async def default_call(message: dict[str, Any]) -> Any:
            nonlocal answered
            if message.get("kind") == "rlm_query":
                if answered + 1 > budget:
                    raise BudgetStop("budget exhausted")
                answered += 1
                return "a child RLM's answer"
            prompts = message.get("prompts") or []
            if answered + len(prompts) > budget:
                raise BudgetStop(f"the limit of {budget} child calls would be exceeded")
            answered += len(prompts)
            return [f"child answer {i}" for i in range(len(prompts))]

        async def record_call(message: dict[str, Any]) -> Any:
            calls.append(message)
            return await (on_call or default_call)(message)

        repl = ReplProcess(self.canaries.pack.to_json(), sandbox=self.policy)
        results: list[Cell] = []
        pids: list[int] = []

        def note_pid() -> None:
            proc = repl._proc
            if proc is not None and proc.pid not in pids:
                pids.append(proc.pid)

        info: dict[str, Any] = {}
        try:
            info = await asyncio.wait_for(repl.start(), 30)
            note_pid()
            if LINUX and self.confined:
                level = (info.get("sandbox") or {}).get("level")
                assert level in ("full", "partial"), f"OS layer not applied: {info}"
            for code in cells:
                started = time.monotonic()
                try:
                    result = await asyncio.wait_for(
                        repl.run_cell(code, timeout=timeout, on_call=record_call,
                                      on_event=events.append), timeout + 60)
                except (ReplError, BudgetStop) as exc:
                    cell = Cell(refused=f"{type(exc).__name__}: {exc}", reset=True)
                else:
                    cell = Cell(result.stdout, result.error, result.final, result.reset,
                                result.elapsed)
                cell.wall = time.monotonic() - started
                results.append(cell)
                note_pid()
        finally:
            await repl.close()
            strays = await self._strays(before, pids)
        return Outcome(self.config, info, results, calls, events, answered,
                       repl.stderr_tail.decode("utf-8", "replace"), pids, strays)


def _prune(root: Path, keep: dict[str, str]) -> None:
    """Remove what an attack added under a private directory of the test."""
    for folder, dirs, files in os.walk(root, topdown=False):
        for name in files + dirs:
            path = os.path.join(folder, name)
            if os.path.relpath(path, root) in keep:
                continue
            with contextlib.suppress(OSError):
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)
                else:
                    os.unlink(path)


def _diff(before: dict[str, str], after: dict[str, str]) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return f"added {added}, removed {removed}, changed {changed}"


def _report(name: str, outcome: Outcome) -> None:
    target = os.environ.get("RLM_SECURITY_REPORT")
    if not target:
        return
    line = {"attack": name, "config": outcome.config,
            "level": (outcome.info.get("sandbox") or {}).get("level"),
            "cells": [{"stdout": c.stdout[:1500], "error": (c.error or "")[:400],
                       "refused": c.refused, "reset": c.reset, "wall": round(c.wall, 2)}
                      for c in outcome.cells]}
    with open(target, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


def config_params(xfail: dict[str, str] | None = None) -> list[Any]:
    """The configurations as pytest params; `xfail` maps a configuration to a reason."""
    out = []
    for name in CONFIG_NAMES:
        marks: list[Any] = []
        if name in ("os", "both") and not LINUX:
            marks.append(pytest.mark.skip(reason="the OS-layer expectations are Linux's"))
        if xfail and name in xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=xfail[name]))
        out.append(pytest.param(name, id=name, marks=marks))
    return out
