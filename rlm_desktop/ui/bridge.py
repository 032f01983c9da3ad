"""The one way the window runs work off the GUI thread, and the run bridge built on it.

`run_in_background(op, on_done, on_failed)` runs `op` on a Python thread and calls back on the
GUI thread. `op` must never touch a widget or a model: it only computes and returns.
`RunBridge` runs an engine `Run` that way; the engine's trace events are queued from the
engine thread and flushed to the GUI thread every `FLUSH_MS`. A flush hands them over in time
slices: one `events(list)` signal per slice, sized so its slots take about `SLICE_MS`, the
event loop running (ticking, laying out, painting) between slices.
"""

from __future__ import annotations

import gc
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from PySide6.QtCore import Property, QObject, Qt, QTimer, Signal, Slot

from rlm_desktop.corpus.document import Document
from rlm_desktop.engine.run import Run, RunConfig, RunResult
from rlm_desktop.engine.trace import Trace, TraceEvent

T = TypeVar("T")

FLUSH_MS = 50  # well under the 100 ms a person notices
SLICE_MS = 12  # GUI-thread time of one slice: with layout and paint after it, a stall < 50 ms
FIRST_SLICE = 128  # events in the first slice, before the cost of one is known
MIN_SLICE = 16  # a slice always makes progress, however slow its slots are
MAX_SLICE = 2000  # and never grows unbounded when its slots are cheap


class _Relay(QObject, Generic[T]):
    """Lives on the GUI thread; the worker emits, the queued connection delivers here."""

    done = Signal(object)
    failed = Signal(object, str)

    def __init__(self, on_done: Callable[[T], None],
                 on_failed: Callable[[BaseException, str], None]) -> None:
        super().__init__()
        self._on_done = on_done
        self._on_failed = on_failed
        self.done.connect(self._deliver_done, Qt.ConnectionType.QueuedConnection)
        self.failed.connect(self._deliver_failed, Qt.ConnectionType.QueuedConnection)

        self.thread: threading.Thread | None = None

    @Slot(object)
    def _deliver_done(self, value: T) -> None:
        try:
            self._on_done(value)
        finally:
            self._release()

    @Slot(object, str)
    def _deliver_failed(self, error: BaseException, details: str) -> None:
        try:
            self._on_failed(error, details)
        finally:
            self._release()

    def _release(self) -> None:
        # Let go only once the worker has ended and dropped its own references: the last
        # reference to this relay, its callbacks and the operation (often methods of a
        # widget) must die on the GUI thread, never on the worker's (Qt objects deleted off
        # their thread crash).
        if self.thread is not None:
            self.thread.join(5)
        self._on_done = self._on_failed = _ignore
        _live.discard(self)


_live: set[_Relay[Any]] = set()  # relays waiting for their worker: kept alive until it ends


def run_in_background(op: Callable[[], T], on_done: Callable[[T], None],
                      on_failed: Callable[[BaseException, str], None],
                      name: str = "rlm-background") -> threading.Thread:
    """Run `op()` on a daemon thread; `on_done(result)` or `on_failed(error, traceback)` is
    then called on the GUI thread. Call from the GUI thread."""
    relay: _Relay[T] = _Relay(on_done, on_failed)
    _live.add(relay)

    def work() -> None:
        try:
            result = op()
        except Exception as exc:  # delivered to the GUI thread, where the crash dialog is
            relay.failed.emit(exc, traceback.format_exc())
        else:
            relay.done.emit(result)

    thread = threading.Thread(target=work, name=name, daemon=True)
    relay.thread = thread
    thread.start()
    return thread


def _ignore(*args: Any) -> None:
    return None


class _LongLived:
    """While a run streams, the cyclic GC scans only what the run made.

    Everything alive when a run starts (the modules, the window, the corpus: a few hundred
    thousand objects) moves to the GC's permanent generation (`gc.freeze`). Otherwise every
    full collection, on whichever thread happens to trigger it (often the engine's, holding
    the GIL), scans all of it: a 40 to 50 ms freeze of the GUI in the middle of a stream
    (benchmarks/bench_gui.py). `release` hands them back when the last run ends, so cycles
    among them are still collected, only later.
    """

    runs = 0

    @classmethod
    def hold(cls) -> None:
        if cls.runs == 0:
            gc.freeze()
        cls.runs += 1

    @classmethod
    def release(cls) -> None:
        cls.runs = max(0, cls.runs - 1)
        if cls.runs == 0:
            gc.unfreeze()


def _fit(samples: Sequence[tuple[int, float]]) -> tuple[float, float] | None:
    """Least squares `ms = per_slice + per_event * events` over (events, ms) samples; None
    when the sizes are too alike to tell the two apart."""
    n = len(samples)
    mean_x = sum(x for x, _ in samples) / n
    mean_y = sum(y for _, y in samples) / n
    spread = sum((x - mean_x) ** 2 for x, _ in samples)
    if spread < (mean_x * 0.25) ** 2 * n:
        return None
    per_event = sum((x - mean_x) * (y - mean_y) for x, y in samples) / spread
    per_event = max(per_event, 0.0)
    per_slice = max(mean_y - per_event * mean_x, 0.0)
    return per_slice, per_event


class RunBridge(QObject):
    """Runs one question at a time off the GUI thread and reports on the GUI thread.

    `events(list[TraceEvent])`: one batch per slice, in the engine's order. Each slice's
    size adapts to what its slots cost (measured around the emit), so a slice takes about
    `SLICE_MS`; the next slice follows from a 0 ms timer, after the event loop ran.
    `finished(RunResult)`: after the last batch. `failed(str)`: a programming error escaped
    the engine (the run never raises for what a run can meet); the details are a traceback.
    """

    events = Signal(list)
    finished = Signal(object)
    failed = Signal(str)
    runningChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None, flush_ms: int = FLUSH_MS) -> None:
        super().__init__(parent)
        self._queue: deque[TraceEvent] = deque()   # appended by the engine thread
        self._run: Run | None = None
        self._thread: threading.Thread | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(flush_ms)
        self._timer.timeout.connect(self.flush)
        self._draining = False        # a slice is scheduled: the timer leaves it alone
        self._slice = FIRST_SLICE     # events in the next slice
        self._samples: list[tuple[int, float]] = []   # (events, ms) of recent slices
        self.slices = 0               # slices delivered (for tests and the benchmark)
        self.longest_slice_ms = 0.0   # the longest one, slots included

    def _get_running(self) -> bool:
        return self._run is not None

    running = Property(bool, _get_running, notify=runningChanged)

    @property
    def run(self) -> Run | None:
        """The run in progress, if any."""
        return self._run

    def start(self, documents: Sequence[Document], question: str, config: RunConfig,
              subscribers: Sequence[Callable[[TraceEvent], None]] = ()) -> Run:
        """Start a run; raises ValueError for an empty question, RuntimeError while busy.
        `subscribers` (e.g. the investigation recorder) hear every event from the first,
        on the engine's thread."""
        if self._run is not None:
            raise RuntimeError("a run is already in progress")
        run = Run(documents, question, config)
        for subscriber in subscribers:
            run.trace.subscribe(subscriber)
        self._listen(run.trace)
        self._run = run
        self._thread = run_in_background(run.execute_sync,
                                         lambda result: self._finish(run, result),
                                         lambda exc, details: self._fail(run, details),
                                         name="rlm-run")
        self.runningChanged.emit(True)
        return run

    def _listen(self, trace: Trace) -> None:
        """Queue the trace's events (from any thread) and start flushing them."""
        trace.subscribe(self._queue.append)      # deque.append is thread-safe
        _LongLived.hold()
        self._timer.start()

    def cancel(self) -> None:
        """Stop the run now; `finished` follows with status "cancelled"."""
        if self._run is not None:
            self._run.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker thread ended (for shutdown and tests); True if it did."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def shutdown(self, timeout: float = 10.0) -> None:
        """On quit: cancel and wait, so no engine thread outlives the window."""
        self.cancel()
        self.wait(timeout)

    @Slot()
    def flush(self) -> None:
        """Start handing what is queued to the GUI, unless a delivery is under way: the
        first slice now, the rest in further slices with the event loop running in
        between, so a burst of thousands of nodes never holds the GUI thread for long."""
        if self._draining or not self._queue:
            return
        self._deliver()

    def _deliver(self) -> None:
        self._draining = False
        queue = self._queue
        if not queue:
            return
        pop = queue.popleft
        batch = [pop() for _ in range(min(self._slice, len(queue)))]
        began = time.perf_counter()
        self.events.emit(batch)
        took = time.perf_counter() - began
        self.slices += 1
        self.longest_slice_ms = max(self.longest_slice_ms, took * 1000)
        self._adapt(len(batch), took)
        if queue:
            self._draining = True
            QTimer.singleShot(0, self._deliver)

    def _adapt(self, size: int, took: float) -> None:
        """Size the next slice from what the last ones cost: at most double the current
        limit, at least half of it.

        A slice costs a part per event (the model) and a part per slice (a view laying out
        all its open rows again). Smaller slices only help with the first: when the second
        alone fills the budget, shrinking would multiply it (thousands of slices, each
        paying it), so slices grow instead and the stalls stay as few as they can be."""
        took_ms = took * 1000
        if size < self._slice and took_ms < SLICE_MS:
            return                       # the queue ran dry: says little about the cost
        samples = self._samples
        samples.append((size, took_ms))
        del samples[:-8]
        fit = _fit(samples)
        limit = self._slice              # (a slice is smaller when the queue ran dry)
        if fit is None:                  # sizes too alike: assume the cost is per event ...
            wanted = int(size * SLICE_MS / max(took_ms, 0.1))
            if took_ms > SLICE_MS and limit <= 2 * MIN_SLICE:
                wanted = 2 * limit       # ... unless already tiny: try bigger, to find out
        elif fit[0] > SLICE_MS * 2 / 3:
            wanted = 2 * limit
        else:
            wanted = int((SLICE_MS - fit[0]) / max(fit[1], 1e-4))
        self._slice = max(MIN_SLICE, min(MAX_SLICE, 2 * limit, max(limit // 2, wanted)))

    def _finish(self, run: Run, result: RunResult) -> None:
        self._end(run, lambda: self.finished.emit(result))

    def _fail(self, run: Run, details: str) -> None:
        self._end(run, lambda: self.failed.emit(details))

    def _end(self, run: Run, then: Callable[[], None]) -> None:
        # Every event was queued before execute_sync returned: deliver them all (in slices,
        # the event loop running between them), then report the end.
        run.trace.unsubscribe(self._queue.append)
        if self._queue:
            self.flush()
            QTimer.singleShot(0, lambda: self._end(run, then))
            return
        self._timer.stop()
        _LongLived.release()
        self._run = None
        self.runningChanged.emit(False)
        then()
