"""The parent side of the REPL worker: start it, run cells, answer its calls, kill it.

A cell has a wall-clock limit that does not count time spent waiting for child model
calls. A cell past its limit, or a worker that dies, is killed; the next cell starts a
fresh worker, and the result says the REPL state was reset so the model can be told.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rlm_desktop import confine
from rlm_desktop.corpus.worker import JSON_FRAME, MAX_FRAME
from rlm_desktop.engine.frames import FrameError, check_worker_frame, size_limit

_HEADER = struct.Struct(">IB")

EVENTS_PER_CELL = 1000  # helper calls traced one by one per cell
START_TIMEOUT = 60.0  # seconds for a worker to load its corpus and lock itself down
CallHandler = Callable[[dict[str, Any]], Awaitable[Any]]
EventHandler = Callable[[dict[str, Any]], None]


class ReplError(Exception):
    """The worker could not be started or broke its protocol."""


@dataclass(frozen=True, slots=True)
class SandboxPolicy:
    """How model code is contained (docs/security.md). Both layers are on by default; a
    worker whose OS confinement reaches less than `minimum` refuses to run model code."""

    language: bool = True             # RestrictedPython and guards
    os: bool = True                   # Landlock/seccomp/rlimits, sandbox-exec, job object
    minimum: str = "partial"          # "none" | "partial" | "full"
    memory_bytes: int = 2 * 1024**3   # address space beyond what the corpus needs

    def to_json(self) -> dict[str, Any]:
        return {"language": self.language, "os": self.os, "minimum": self.minimum,
                "memory_bytes": self.memory_bytes}


@dataclass(frozen=True, slots=True)
class CellResult:
    stdout: str
    error: str | None
    final: dict[str, Any] | None
    reset: bool = False          # the worker was killed/restarted; variables are gone
    elapsed: float = 0.0         # wall clock of the cell minus time in child calls


def worker_command() -> list[str]:
    if getattr(sys, "frozen", False):
        return [sys.executable, "--repl-worker"]
    return [sys.executable, "-m", "rlm_desktop.engine.repl_worker"]


class ReplProcess:
    """One worker process holding one (sub-)corpus for one RLM of a run."""

    def __init__(self, pack: dict[str, Any], spans: list[list[int]] | None = None, *,
                 sandbox: SandboxPolicy | None = None,
                 memory_watchdog: bool | None = None) -> None:
        self._pack = pack
        self._spans = spans
        self.sandbox = sandbox or SandboxPolicy()
        chars = sum(int(e.get("chars") or 0) for e in pack.get("entries", ()))
        # The corpus text, its lowercased copy for case-insensitive grep, and slices of it.
        self._memory_bytes = self.sandbox.memory_bytes + 6 * chars
        # macOS does not enforce RLIMIT_AS: there the parent watches the worker's memory.
        self._watchdog = (sys.platform == "darwin" and self.sandbox.os
                          if memory_watchdog is None else memory_watchdog)
        self._watch_task: asyncio.Task[None] | None = None
        self._over_memory = False
        self._proc: asyncio.subprocess.Process | None = None
        self._home: tempfile.TemporaryDirectory[str] | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self.stderr_tail = b""
        self.info: dict[str, Any] = {}
        self.events_dropped = 0
        self._reset_reported = False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> dict[str, Any]:
        self._home = tempfile.TemporaryDirectory(prefix="rlm-repl-")
        env, kwargs = confine.worker_process_options(self._home.name)
        env["PYTHONHASHSEED"] = "0"
        command = worker_command()
        if self.sandbox.os:
            # For sandbox-exec (macOS), which applies from the first instruction: the
            # runtime the interpreter needs to start (site-packages too: its .pth files are
            # read at start-up) and exactly the corpus files, not their folders.
            read_paths = confine.runtime_read_paths() + sorted(
                {f["path"] for f in self._pack.get("files", ())})
            command, extra_env = confine.launch_command(command, read_paths=read_paths)
            env.update(extra_env)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, cwd=self._home.name, env=env, close_fds=True,
                limit=MAX_FRAME, **kwargs)
        except OSError as exc:
            raise ReplError(f"cannot start the REPL worker: {exc}") from exc
        parent_side: dict[str, Any] = {}
        if self.sandbox.os:
            parent_side = confine.confine_child(self._proc.pid,
                                                memory_bytes=self._memory_bytes)
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        self._over_memory = False
        if self._watchdog:
            self._watch_task = asyncio.create_task(self._watch_memory(self._proc))
        await self._send({"op": "init", "pack": self._pack, "spans": self._spans,
                          "sandbox": {**self.sandbox.to_json(),
                                      "memory_bytes": self._memory_bytes,
                                      "parent": parent_side}})
        try:
            message = await asyncio.wait_for(self._receive(), START_TIMEOUT)
        except TimeoutError:
            message = None
            self.stderr_tail += b"no answer within the start-up time limit"
        if message is None or message.get("op") != "ready":
            await self.kill()
            raise ReplError("the REPL worker failed to start: "
                            + (self.stderr_tail.decode("utf-8", "replace")[-500:] or "no reason"))
        self.info = message
        problem = self._level_problem(message.get("sandbox") or {})
        if problem is not None:
            await self.kill()
            raise ReplError(problem)
        return message

    def _level_problem(self, report: dict[str, Any]) -> str | None:
        """Why model code must not run here: confinement below the user's minimum."""
        level = str(report.get("level", "none")) if self.sandbox.os else "none"
        if confine.level_at_least(level, self.sandbox.minimum):
            return None
        missing = "; ".join(report.get("missing") or ()) or "OS confinement is off"
        return (f"the sandbox reached level {level!r}, below the minimum "
                f"{self.sandbox.minimum!r} set in the settings ({missing}); model code was "
                "not run")

    async def _drain_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        with contextlib.suppress(Exception):
            while line := await self._proc.stderr.readline():
                self.stderr_tail = (self.stderr_tail + line)[-4000:]

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        payload = json.dumps(message).encode("utf-8")
        if len(payload) > MAX_FRAME:
            raise ReplError("a message to the REPL worker is too large")
        self._proc.stdin.write(_HEADER.pack(len(payload), JSON_FRAME) + payload)
        await self._proc.stdin.drain()

    async def _receive(self) -> dict[str, Any] | None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            header = await self._proc.stdout.readexactly(_HEADER.size)
            length, kind = _HEADER.unpack(header)
            if length > MAX_FRAME or kind != JSON_FRAME:
                return {"op": "invalid", "reason": "a malformed frame header"}
            payload = await self._proc.stdout.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        try:
            message = json.loads(payload, parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            return {"op": "invalid", "reason": "a frame that is not valid JSON"}
        if not isinstance(message, dict) or not isinstance(message.get("op"), str):
            return {"op": "invalid", "reason": "a frame without an op"}
        limit = size_limit(message["op"])
        if limit is not None and len(payload) > limit:
            return {"op": "invalid", "reason": f"a {message['op']!r} frame of "
                                               f"{len(payload):,} bytes"}
        return message

    async def run_cell(self, code: str, *, timeout: float, on_call: CallHandler,
                       on_event: EventHandler) -> CellResult:
        """Run one cell. Exceptions raised by `on_call` (budget, cancel) kill the worker
        and propagate."""
        notice = ""
        if not self.running:
            if self._proc is not None and not self._reset_reported:
                # It died between cells (e.g. killed from outside): say so once.
                notice = (f"[the REPL had stopped ({_describe_exit(self._proc.returncode)}) "
                          "and was restarted: every variable is gone]\n")
            await self._cleanup()
            await self.start()
        self._reset_reported = False
        events = 0
        active = 0.0
        mark = time.monotonic()
        try:
            await self._send({"op": "exec", "code": code})
            while True:
                remaining = timeout - active - (time.monotonic() - mark)
                try:
                    message = await asyncio.wait_for(self._receive(), max(remaining, 0.001))
                except TimeoutError:
                    return await self._stopped(
                        f"the cell ran past its time limit of {timeout:g} s and was stopped",
                        timeout)
                if message is None:
                    code_ = await self._exit_code()
                    reason = (f"the cell used more than {self._memory_bytes / 2**20:,.0f} MiB "
                              "of memory" if self._over_memory else
                              f"the REPL worker died ({_describe_exit(code_)})")
                    return await self._stopped(reason, active + time.monotonic() - mark)
                try:
                    check_worker_frame(message)
                except FrameError as exc:
                    return await self._stopped(f"the REPL sent an invalid message ({exc})",
                                               active + time.monotonic() - mark)
                op = message["op"]
                if op == "event":
                    events += 1
                    if events <= EVENTS_PER_CELL:  # the worker caps them too, if honest
                        on_event(message)
                elif op == "call":
                    active += time.monotonic() - mark
                    value = await on_call(message)
                    mark = time.monotonic()
                    await self._send({"op": "result", "value": value})
                elif op == "done":
                    active += time.monotonic() - mark
                    final = message.get("final")
                    self.events_dropped = max(int(message.get("events_dropped") or 0),
                                              events - EVENTS_PER_CELL)
                    return CellResult(notice + str(message.get("stdout") or ""),
                                      message.get("error"),
                                      final if isinstance(final, dict) else None,
                                      elapsed=active)
                else:
                    return await self._stopped(f"the REPL sent an unexpected {op!r} message",
                                               active + time.monotonic() - mark)
        except (ConnectionError, BrokenPipeError, OSError) as exc:
            code_ = await self._exit_code()
            return await self._stopped(
                f"the REPL worker stopped answering ({_describe_exit(code_)}; {exc})",
                active + time.monotonic() - mark)
        except BaseException:
            await self.kill()
            self._reset_reported = True
            raise

    async def _watch_memory(self, proc: asyncio.subprocess.Process) -> None:
        """Kill the worker when its resident memory passes the limit (polled every 0.2 s)."""
        while proc.returncode is None:
            rss = await _resident_bytes(proc.pid)
            if rss is not None and rss > self._memory_bytes:
                self._over_memory = True
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                return
            await asyncio.sleep(0.2)

    async def _stopped(self, reason: str, elapsed: float) -> CellResult:
        """Kill the worker; the next cell starts a fresh one. Reported once, here."""
        await self.kill()
        self._reset_reported = True
        return CellResult("", f"{reason}; the REPL was restarted, so every variable is gone",
                          None, reset=True, elapsed=elapsed)

    async def _exit_code(self) -> int | None:
        if self._proc is None:
            return None
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self._proc.wait(), 2)
        return None

    async def kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.shield(proc.wait())

    async def _cleanup(self) -> None:
        await self.kill()
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(BaseException):
                await self._watch_task
            self._watch_task = None
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        if self._stderr_task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._stderr_task, 1)
            self._stderr_task = None
        if self._home is not None:
            self._home.cleanup()
            self._home = None

    async def close(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 2)
        await self._cleanup()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a frame")


async def _resident_bytes(pid: int) -> int | None:
    """Resident memory of a process, from `ps` (macOS and Linux), or None."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "ps", "-o", "rss=", "-p", str(pid), stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        out, _ = await proc.communicate()
        return int(out.strip() or b"0") * 1024
    except (OSError, ValueError):
        return None


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "it stopped responding"
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}, perhaps out of memory"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
