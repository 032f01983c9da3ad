"""The GUI never freezes: 10,000 trace nodes streamed into the window, and launch time.

    uv run python benchmarks/bench_gui.py [--quick]

Runs headless (QT_QPA_PLATFORM=offscreen unless set).  Two parts:

1. Streaming.  A producer thread builds a realistic trace with `engine.trace.Trace` as fast
   as it can (a run > iterations of root_call, code > grep, peek and a batch of 64
   llm_query, each started and ended; the run node last) until 10,000 nodes exist.  The
   events go through the path `ui.bridge.RunBridge` uses: `RunBridge._listen(trace)` (what
   `start` does for its run's trace: the subscriber appends to the bridge's deque, the GC
   is told to leave the objects alive before the run alone, the 50 ms flush timer starts),
   then the bridge hands the queue to the GUI thread in time slices of about 12 ms, one
   `events` signal each.  (`start` itself wants a real `Run`; everything after `_listen` is
   the app's code.)
   Consumers, each in a fresh subprocess so peak RSS belongs to that configuration alone:
   - `window`: `MainWindow` shown (1440x900), events into `window.bridge`, so its own
     `_on_events` (model, `TraceView` follow-tail and opening/folding, inspector, totals)
     runs;
   - `view`: a shown `TraceView` (900x700) on `TraceFilterProxy(TraceTreeModel())`, fed
     by `TraceView.add_events`: the tree alone, without the rest of the window;
   - `tree` (baseline): a shown plain QTreeView on the same proxy, scrolled to the bottom
     after every slice and opening every parent that receives rows (what the window did
     before `TraceView`);
   - `model` (baseline): `TraceTreeModel.add_events` alone, no view;
   - `idle` (baseline): no events at all, the timer's own jitter for 3 s.
   On the GUI thread a 5 ms PreciseTimer records the longest gap between its ticks: the
   longest event-loop stall (5 ms is the floor).  Nodes/s = 10,000 / (producer start ->
   the slice that brings the model to 10,000 nodes); the stall clock keeps ticking 300 ms
   after that, so the layout and paint of the last batch are counted.  Peak RSS is
   `ru_maxrss` of that subprocess.  Each configuration runs 3 times; the stall reported is
   the worst of the 3, the rate the median, RSS the largest.
2. Launch.  `python -m rlm_desktop --screenshot FILE --exit-when-done` (no paths: the
   screenshot is taken 300 ms after the window is shown, then it quits) as a subprocess,
   wall time to exit, best of 5.  Also the time to the window shown alone: a subprocess that
   does what `run_gui` does up to `window.show()` and one `processEvents()`, and says so on
   stdout (wall time from spawn to that line).  Baselines: `python -c "import
   PySide6.QtWidgets"` and an empty QMainWindow shown and closed, both best of 5.

Targets (issue 5, item 7): longest stall <= 50 ms; launch to window shown <= 1.5 s.
`--quick`: 2,000 nodes, one run per configuration, best of 2 launches: a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import _common
from _common import Row

# Before anything of the app is imported: keep the user's profile out of it.
os.environ["RLM_DESKTOP_HOME"] = _common.private_home()
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TICK_MS = 5
IDLE_S = 3.0
SETTLE_MS = 300   # ticking goes on this long after the last batch is in the model
BATCH = 64
STALL_TARGET_MS = 50.0
LAUNCH_TARGET_S = 1.5
MODES = ("window", "view", "tree", "model", "idle")


@dataclass(frozen=True)
class Scale:
    nodes: int
    runs: int
    launches: int


FULL = Scale(nodes=10_000, runs=3, launches=5)
QUICK = Scale(nodes=2_000, runs=1, launches=2)


# --------------------------------------------------------------------------- producer


def produce(trace: object, total: int) -> float:
    """Build `total` nodes in `trace` as fast as possible; returns the seconds it took."""
    from rlm_desktop.engine.trace import Trace, Usage

    assert isinstance(trace, Trace)
    began = time.perf_counter()
    run = trace.start("run", None, input={"question": "Which hosts saw refused connections?",
                                           "documents": 64, "model": "bench",
                                           "sub_model": "bench-mini"})
    made = 1
    iteration = 0

    def room(n: int) -> int:
        return max(0, min(n, total - made))

    while made < total:
        iteration += 1
        if room(1):
            call = trace.start("root_call", run, input={"messages": 2 * iteration,
                                                        "last": "continue"},
                               model="bench", iteration=iteration)
            made += 1
            trace.end(call, output="```repl\nhits = grep(r'refused|timeout', flags='i')\n```",
                      usage=Usage(1200 + iteration, 180), cost_usd=0.0021)
        if not room(1):
            break
        code = trace.start("code", run, input="hits = grep(r'refused|timeout', flags='i')\n"
                           "answers = llm_query_batched([h.text for h in hits[:64]])",
                           iteration=iteration, block=1)
        made += 1
        now = time.time()
        for kind, inp, out in (
                ("grep", {"pattern": "refused|timeout", "flags": "i"},
                 {"hits": 212, "documents": 37}),
                ("peek", {"doc": f"d{iteration}", "start": 0, "end": 4000},
                 {"chars": 4000})):
            if room(1):
                trace.record(kind, code, input=inp, output=out, started=now, ended=now)
                made += 1
        calls = [trace.start("llm_query", code, input={"prompt": f"Summarise line {i} of "
                                                                 f"iteration {iteration}",
                                                       "index": i}, model="bench-mini")
                 for i in range(room(BATCH))]
        made += len(calls)
        for i, node in enumerate(calls):
            trace.end(node, output=f"host node{i % 24:02d}: connection refused",
                      usage=Usage(300, 20), cost_usd=0.0001)
        trace.end(code, output=f"{len(calls)} answers")
    trace.end(run, output={"answer": "node07 and node12", "status": "ok", "citations": 2},
              usage=Usage(90_000, 9_000), cost_usd=0.2)
    return time.perf_counter() - began


# --------------------------------------------------------------------------- one stream


def stream(mode: str, total: int) -> dict[str, float]:
    """One configuration in this process (a child of the benchmark); the figures as a dict."""
    import resource
    import threading

    from PySide6.QtCore import QElapsedTimer, Qt, QTimer
    from PySide6.QtWidgets import QApplication, QTreeView

    from rlm_desktop.engine.trace import Trace, TraceEvent
    from rlm_desktop.ui.app import make_application
    from rlm_desktop.ui.bridge import RunBridge
    from rlm_desktop.ui.trace_model import TraceFilterProxy, TraceTreeModel

    app = make_application(["bench-gui"])
    clock = QElapsedTimer()
    gaps: list[float] = []
    ends: list[float] = []   # when each gap ended (for BENCH_GUI_DEBUG)
    last = [0.0]
    state: dict[str, float] = {}

    def tick() -> None:
        now = clock.nsecsElapsed() / 1e6
        gaps.append(now - last[0])
        ends.append(now)
        last[0] = now

    ticker = QTimer()
    ticker.setTimerType(Qt.TimerType.PreciseTimer)
    ticker.setInterval(TICK_MS)
    ticker.timeout.connect(tick)

    def finish() -> None:
        tick()   # the gap up to now counts too (the last flush may be the longest)
        ticker.stop()
        QTimer.singleShot(0, app.quit)

    keep: list[object] = []
    if mode == "idle":
        QTimer.singleShot(int(IDLE_S * 1000), finish)
    else:
        if mode == "window":
            from rlm_desktop.ui.main_window import MainWindow

            window = MainWindow()
            window.show()
            keep.append(window)
            bridge = window.bridge
            model = window.model
        else:
            bridge = RunBridge()
            model = TraceTreeModel()
            keep += [bridge, model]
            if mode == "view":
                from rlm_desktop.ui.trace_view import TraceView

                proxy = TraceFilterProxy()
                proxy.setSourceModel(model)
                view = TraceView(model, proxy)
                view.resize(900, 700)
                view.show()
                keep += [proxy, view]
                bridge.events.connect(view.add_events)
            elif mode == "tree":
                proxy = TraceFilterProxy()
                proxy.setSourceModel(model)
                tree = QTreeView()
                tree.setModel(proxy)
                tree.setUniformRowHeights(True)
                tree.resize(900, 700)
                tree.show()
                keep += [proxy, tree]

                def follow(events: list[TraceEvent]) -> None:
                    bar = tree.verticalScrollBar()
                    at_bottom = bar.value() >= bar.maximum() - 2
                    model.add_events(events)
                    if at_bottom:
                        tree.scrollToBottom()

                def expand(parent: object, first: int, last_row: int) -> None:
                    if parent.isValid() and not tree.isExpanded(parent):  # type: ignore[attr-defined]
                        tree.expand(parent)  # type: ignore[arg-type]

                proxy.rowsInserted.connect(expand)
                bridge.events.connect(follow)
            else:
                bridge.events.connect(model.add_events)

        slices: list[tuple[float, int]] = []   # (when, events) per slice, for BENCH_GUI_DEBUG

        def measure(events: list[TraceEvent]) -> None:
            # Connected after the consumer: runs once the slice is in the model.
            slices.append((clock.nsecsElapsed() / 1e6, len(events)))
            if model.node_count() >= total and "done" not in state:
                state["done"] = time.perf_counter()
                # Keep ticking a while: the view lays out and paints after the last batch.
                QTimer.singleShot(SETTLE_MS, finish)

        bridge.events.connect(measure)
        trace = Trace()

        def begin() -> None:
            state["none_refs"] = sys.getrefcount(None)
            state["began"] = time.perf_counter()
            bridge._listen(trace)   # what RunBridge.start does for its run's trace
            worker = threading.Thread(
                target=lambda: state.__setitem__("produce_s", produce(trace, total)),
                name="bench-producer", daemon=True)
            worker.start()
            keep.append(worker)

        QTimer.singleShot(200, begin)   # let the window settle first

    def start_ticking() -> None:
        clock.start()
        last[0] = 0.0
        ticker.start()

    QTimer.singleShot(150, start_ticking)
    app.exec()
    QApplication.processEvents()
    result = {
        "stall_ms": max(gaps[1:]) if len(gaps) > 1 else 0.0,
        "p99_gap_ms": _common.percentile(gaps[1:], 0.99) if len(gaps) > 1 else 0.0,
        "ticks": len(gaps),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / _common.MB,
    }
    if mode != "idle":
        elapsed = state["done"] - state["began"]
        result.update(nodes=float(total), seconds=elapsed, rate=total / elapsed,
                      produce_s=state.get("produce_s", float("nan")),
                      slices=float(bridge.slices), max_slice_ms=bridge.longest_slice_ms)
        if os.environ.get("BENCH_GUI_DEBUG"):
            worst_gaps = sorted(zip(gaps[1:], ends[1:], strict=True), reverse=True)[:6]
            print("gaps (ms, ended at):", [(round(g, 1), round(e)) for g, e in worst_gaps],
                  file=sys.stderr)
            print("slices (at, events):", [(round(t), n) for t, n in slices], file=sys.stderr)
            print("references to None: at the start", state["none_refs"], "at the end",
                  sys.getrefcount(None), file=sys.stderr)
    # Delete views before their models, all before the QApplication (left to the
    # interpreter's exit, a view caught in a reference cycle outlives the application and
    # crashes in its destructor).
    import shiboken6
    from PySide6.QtCore import QObject

    for obj in reversed(keep):
        if isinstance(obj, QObject) and shiboken6.isValid(obj):
            shiboken6.delete(obj)
    return result


def run_stream(mode: str, total: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--stream", mode, "--nodes", str(total)],
                         capture_output=True, text=True, check=False, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"stream {mode} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- launch

SHOWN = """
import sys
from rlm_desktop.ui.app import make_application
from rlm_desktop.ui.main_window import MainWindow
app = make_application([sys.argv[0]])
window = MainWindow()
window.show()
app.processEvents()
print("shown", flush=True)
window.close()
"""

EMPTY = """
import sys
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
window = QMainWindow()
window.resize(1440, 900)
window.show()
app.processEvents()
print("shown", flush=True)
window.close()
"""


def wall(argv: list[str], *, until_line: str | None = None) -> float:
    """Seconds from spawn to exit, or to the first stdout line equal to `until_line`."""
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    assert proc.stdout is not None
    seen = None
    if until_line is not None:
        for line in proc.stdout:
            if line.strip() == until_line:
                seen = time.perf_counter() - began
                break
    proc.communicate()
    ended = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"{argv} exited with {proc.returncode}")
    if until_line is not None and seen is None:
        raise SystemExit(f"{argv} never printed {until_line!r}")
    return seen if seen is not None else ended


def best(argv: list[str], times: int, **kwargs: str) -> float:
    return min(wall(argv, **kwargs) for _ in range(times))


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true",
                        help="2,000 nodes, one run each, 2 launches: a smoke run")
    parser.add_argument("--stream", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--nodes", type=int, default=FULL.nodes, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stream:
        print(json.dumps(stream(args.stream, args.nodes)))
        return

    started = time.perf_counter()
    scale = QUICK if args.quick else FULL
    results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    for run in range(scale.runs):
        for mode in MODES:
            _common.say(f"stream {mode}: {scale.nodes:,} nodes, run {run + 1}/{scale.runs} …")
            r = run_stream(mode, scale.nodes)
            results[mode].append(r)
            _common.say(f"  longest stall {r['stall_ms']:.1f} ms, "
                        f"{r.get('rate', 0):,.0f} nodes/s, peak RSS {r['rss_mb']:.0f} MB")

    py = sys.executable
    with_png = str(Path(_common.private_home()) / "launch.png")
    _common.say(f"launch: best of {scale.launches} each …")
    import_s = best([py, "-c", "import PySide6.QtWidgets"], scale.launches)
    empty_s = best([py, "-c", EMPTY], scale.launches, until_line="shown")
    shown_s = best([py, "-c", SHOWN], scale.launches, until_line="shown")
    cli_s = best([py, "-m", "rlm_desktop", "--screenshot", with_png, "--exit-when-done"],
                 scale.launches)

    def worst(mode: str, key: str) -> float:
        return max(r[key] for r in results[mode])

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    idle = worst("idle", "stall_ms")
    base_model = worst("model", "stall_ms")
    rows: list[Row] = []
    viewers = (("window", "MainWindow"), ("view", "TraceView alone"),
               ("tree", "plain QTreeView + proxy, opening every parent (baseline)"))
    for mode, label in viewers:
        stall = worst(mode, "stall_ms")
        rows.append(Row(
            f"longest event-loop stall, {scale.nodes:,} nodes → {label}",
            f"{stall:.1f} ms", f"model only {base_model:.1f} ms; idle {idle:.1f} ms",
            f"{stall / base_model:.2f}x model", f"≤ {STALL_TARGET_MS:.0f} ms",
            "yes" if stall <= STALL_TARGET_MS else "no"))
    for mode, label in viewers:
        rate = median(mode, "rate")
        rows.append(Row(f"nodes/s until all in the model → {label}", f"{rate:,.0f}",
                        f"model only {median('model', 'rate'):,.0f}",
                        f"{rate / median('model', 'rate'):.2f}x", "—", "—"))
    rss = worst("window", "rss_mb")
    rows.append(Row(f"peak RSS, {scale.nodes:,} nodes → MainWindow", f"{rss:.0f} MB",
                    f"idle Qt process {worst('idle', 'rss_mb'):.0f} MB; model only "
                    f"{worst('model', 'rss_mb'):.0f} MB",
                    f"+{rss - worst('idle', 'rss_mb'):.0f} MB", "—", "—"))
    rows.append(Row("launch → MainWindow shown (subprocess, best of "
                    f"{scale.launches})", f"{shown_s:.2f} s",
                    f"empty QMainWindow shown {empty_s:.2f} s; import QtWidgets "
                    f"{import_s:.2f} s", f"{shown_s / empty_s:.2f}x empty",
                    f"≤ {LAUNCH_TARGET_S} s", "yes" if shown_s <= LAUNCH_TARGET_S else "no"))
    rows.append(Row("`rlm_desktop --screenshot F --exit-when-done`, wall to exit (best of "
                    f"{scale.launches})", f"{cli_s:.2f} s",
                    f"empty QMainWindow {empty_s:.2f} s", f"{cli_s / empty_s:.2f}x",
                    "— (not the launch target: adds a 300 ms wait, the grab, the exit)",
                    "—"))

    def span(mode: str, key: str, fmt: str) -> str:
        values = [r[key] for r in results[mode]]
        return " to ".join(format(v, fmt) for v in (min(values), max(values)))

    notes = [
        f"Stall: the longest gap between ticks of a {TICK_MS} ms PreciseTimer on the GUI "
        f"thread, worst of {scale.runs} run(s) (range window {span('window', 'stall_ms', '.1f')}"
        f" ms, view {span('view', 'stall_ms', '.1f')} ms, tree {span('tree', 'stall_ms', '.1f')}"
        f" ms, model {span('model', 'stall_ms', '.1f')}"
        f" ms, idle {span('idle', 'stall_ms', '.1f')} ms); 99th-percentile gap in the window "
        f"{median('window', 'p99_gap_ms'):.1f} ms.",
        f"Longest slice (one `events` signal, every slot included, as `RunBridge` timed it): "
        f"window {worst('window', 'max_slice_ms'):.1f} ms, view "
        f"{worst('view', 'max_slice_ms'):.1f} ms, tree "
        f"{worst('tree', 'max_slice_ms'):.1f} ms, model {worst('model', 'max_slice_ms'):.1f} "
        f"ms; slices per run {median('window', 'slices'):.0f} (window), "
        f"{median('model', 'slices'):.0f} (model).",
        f"The producer alone (building nodes on its thread, sharing the GIL with the GUI) "
        f"took {median('window', 'produce_s'):.2f} s (window run, median) for "
        f"{scale.nodes:,} nodes; nodes/s is producer start → the slice that completes the "
        f"model, so it includes up to one {50} ms flush interval.",
        "The CLI row includes the automation's deliberate 300 ms wait after show before the "
        "grab, the PNG save and the shutdown; the \"shown\" row stops at the first "
        "processEvents() after window.show().",
    ]
    if args.quick:
        notes.append(f"--quick: {scale.nodes:,} nodes, {scale.runs} run, best of "
                     f"{scale.launches} launches: a smoke run.")
    _common.report(rows, notes, started)


if __name__ == "__main__":
    main()
