"""The parent side of the parser processes: start them, feed them, kill them.

A worker that crashes, runs out of memory or overstays its time is killed and replaced by
the parent (`rlm_desktop.corpus.ingest`); the file it was reading becomes a per-file error
and the batch goes on. Frames from all workers arrive on one queue, read by a thread each.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from typing import Any

from rlm_desktop.confine import worker_process_options
from rlm_desktop.corpus.worker import ProtocolError, read_frame, send_json


def worker_command() -> list[str]:
    if getattr(sys, "frozen", False):
        return [sys.executable, "--ingest-worker"]
    return [sys.executable, "-m", "rlm_desktop.corpus.worker"]


Event = tuple[int, int, bytes | None]  # worker id, frame kind (-1 = exited), payload


class WorkerProcess:
    """One parser process; its frames arrive on a queue shared by all workers."""

    def __init__(self, ident: int, events: queue.Queue[Event]) -> None:
        self.ident = ident
        self._home = tempfile.TemporaryDirectory(prefix="rlm-parser-")
        env, kwargs = worker_process_options(self._home.name)
        self.process = subprocess.Popen(
            worker_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self._home.name,
            env=env,
            close_fds=True,
            **kwargs,
        )
        self.stderr_tail = b""
        self._events = events
        self._threads = [
            threading.Thread(target=self._pump, daemon=True, name=f"parser-{ident}"),
            threading.Thread(target=self._drain_stderr, daemon=True, name=f"parser-{ident}-err"),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        try:
            while (frame := read_frame(self.process.stdout)) is not None:
                self._events.put((self.ident, frame[0], frame[1]))
        except (ProtocolError, OSError, ValueError):
            pass
        self.process.wait()
        self._events.put((self.ident, -1, None))

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        try:
            for line in self.process.stderr:
                self.stderr_tail = (self.stderr_tail + line)[-4000:]
        except (OSError, ValueError):
            pass

    def send(self, message: dict[str, Any]) -> bool:
        assert self.process.stdin is not None
        try:
            send_json(self.process.stdin, message)
            return True
        except (OSError, ValueError):
            return False

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.close()

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        self._home.cleanup()

    @property
    def exit_code(self) -> int | None:
        return self.process.poll()


def describe_exit(code: int | None) -> str:
    """What a worker's exit status means for the file it was reading."""
    if code is None:
        return "the parser stopped responding"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the parser crashed on this file ({name})"
    return f"the parser exited unexpectedly (code {code})"

