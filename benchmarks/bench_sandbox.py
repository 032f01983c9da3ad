"""What the sandbox costs: a fully confined REPL worker vs an unconfined one, same corpus.

    uv run python benchmarks/bench_sandbox.py [--quick]

Every figure compares `ReplProcess` workers that differ only in their `SandboxPolicy`
(`minimum="none"`, so every combination is allowed to run):

* confined:   language=True, os=True   (RestrictedPython + guards; rlimits, no_new_privs,
                                         Landlock, seccomp: what the app runs by default)
* unconfined: language=False, os=False (plain `exec` with every builtin, no OS layer): the
                                         baseline, measured in the same run;
* language only and OS only: the two layers one at a time, in the notes, to tell which
  layer a difference comes from.

The corpus is `bench_grep.make_corpus` (~100 MB of log lines in ~5,000 ~20 KB documents,
deterministic), written as 64 .log files (whole documents each, so the lines are the
same) and ingested with `corpus.ingest.ingest` into the text cache of a temporary
RLM_DESKTOP_HOME, as bench_repl.py does: `build_pack` only points the workers at byte
ranges of the cache files, and every worker loads the same text.  The workers of the
different modes run side by side and the measurements are interleaved (mode A, mode B,
... then again), so a slow spell of this VM hits every mode alike.

(a) grep inside the worker.  A cell `hits = grep(PATTERN)` + `print(len(hits))`, timed with
time.perf_counter around `await run_cell(...)` (the whole round trip), for a selective
literal, a common literal and `grep("timeout|refused|segfault", ignore_case=True)`.
One cold run per worker (the first grep of a worker also builds the newline index, the
first case-insensitive one the lowercased copy of the corpus), then 5 warm runs; the
figure is the median of the warm runs.  Each mode has 3 workers and the figure pools
them: how fast one worker scans its 100 MB text varies from process to process by up to
~40% on this VM (the selective literal: 41-68 ms in workers of the same mode), which one
worker per mode would report as a difference between the modes.  Target: confined <=
1.1x unconfined.  The printed count must equal the count of the REPL's grep run in this
process over the original text (also timed, as a reference).

(b) Cell round trip.  After 10 warm-up cells, 200 trivial cells alternating `x = 1` and
`print(len(context))`, and 50 runs of a 20-line cell of ordinary model code (a Counter, a
loop over split lines, f-strings, a dict comprehension, an attribute of a document): the
language layer compiles each cell with RestrictedPython and routes attribute reads,
subscripts and writes through guards.  Median and p95; target <= 10 ms median confined.
The compile step alone (RestrictedPython `compile_cell` vs `ast.parse` + `compile`, as
the worker does each) and running the compiled 20-line cell (guarded namespace vs plain
exec) are timed in this process and shown in the notes, with the floor of the protocol
(bench_repl's echo process) and a guarded loop: `for h in hits: n += len(h.text)` over up
to 100,000 hits of the original text, under the guards vs plain exec.

(c) Worker start with the 100 MB corpus: `ReplProcess.start()` to its return on "ready"
(spawn, imports, reading and decoding the corpus, building the `Corpus`, the namespace;
confined also: importing RestrictedPython and every allowed module before the lockdown,
then rlimits/Landlock/seccomp).  3 starts per mode, interleaved; best of 3 and median,
with the worker's own `load_s` and the `lockdown_ms` of its sandbox report.  Target
<= 0.5 s confined.

Files are in the OS page cache (just written).  `--quick` uses 50 cells, 10 runs of the
20-line cell and a 10 MB corpus: a smoke run.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import gc
import io
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common
from _common import MB, Row, make_corpus, ms, no_call, no_event, percentile, say

# Before anything of the app is imported: keep the user's profile out of it (bench_repl
# does the same on import, and gets the same home).
os.environ["RLM_DESKTOP_HOME"] = _common.private_home()

import bench_repl
from bench_repl import CELLS, WARMUP

from rlm_desktop.engine import restricted
from rlm_desktop.engine.helpers import make_helpers
from rlm_desktop.engine.pack import build_pack
from rlm_desktop.engine.repl import ReplProcess, SandboxPolicy
from rlm_desktop.engine.replapi import Corpus

HOME = os.environ["RLM_DESKTOP_HOME"]
SEED = 0
RUNS = 3          # worker starts per mode
GREP_RUNS = 5     # warm grep cells per worker and query
GREP_WORKERS = 3  # workers per mode for grep: a worker's speed at memchr/find varies
TIMEOUT = 300.0   # seconds per cell

# (label, sandbox.language, sandbox.os); the first two are the table's figure and baseline.
MODES: tuple[tuple[str, bool, bool], ...] = (
    ("confined", True, True),
    ("unconfined", False, False),
    ("language only", True, False),
    ("OS only", False, True),
)
QUERIES: tuple[tuple[str, str], ...] = (
    # (label, the cell's grep call); the patterns are bench_grep's
    ("selective literal", r'grep(r"203\.0\.113\.77")'),
    ("common literal", 'grep("Failed password for root")'),
    ("case-insensitive alternation", 'grep("timeout|refused|segfault", ignore_case=True)'),
)
# Ordinary model code: no corpus-wide work, so the cell's cost is compile + guards + I/O.
CELL_20 = '''counts = collections.Counter()
users = {}
lines = [f"Failed password for user{i % 7} from 10.0.0.{i} port 22" for i in range(40)]
for line in lines:
    parts = line.split()
    user, ip = parts[3], parts[5]
    counts[user] += 1
    users.setdefault(ip, []).append(user)
top = counts.most_common(3)
summary = []
for name, n in top:
    summary.append(f"{name}: {n}")
total = sum(counts.values())
share = {k: round(v / total, 3) for k, v in counts.items()}
first = context[0]
title = first.name.upper()
ips = sorted(users)[:3]
flag = total > 10 and "user0" in counts
report = "; ".join(summary)
print(len(lines), total, report, title, ips, flag, share["user0"])'''
assert len(CELL_20.splitlines()) == 20


@dataclass(frozen=True)
class Scale:
    cells: int
    long_cells: int
    corpus_bytes: int


FULL = Scale(cells=200, long_cells=50, corpus_bytes=100 * MB)
QUICK = Scale(cells=50, long_cells=10, corpus_bytes=10 * MB)


def policy(language: bool, os_layer: bool) -> SandboxPolicy:
    return SandboxPolicy(language=language, os=os_layer, minimum="none")


# --------------------------------------------------------------------------- the corpus


@dataclass
class Reference:
    """The REPL's grep in this process over the original text: counts and times."""

    hits: dict[str, int] = field(default_factory=dict)
    cold: dict[str, float] = field(default_factory=dict)
    warm: dict[str, float] = field(default_factory=dict)
    loop: tuple[int, float, float] = (0, 0.0, 0.0)  # hits, guarded s, plain s: see hit_loop


def prepare(work: Path, size: int) -> tuple[dict[str, Any], int, int, Reference]:
    """Generate, write, ingest; returns the pack spec, documents, characters, reference."""
    say(f"generating a {size / MB:g} MB corpus (bench_grep.make_corpus) ...")
    blob, entries = make_corpus(size, SEED)
    logs = work / "logs"
    logs.mkdir()
    _common.write_log_files(blob, entries, logs)  # 64 files of whole documents: the same lines
    say(f"ingesting {len(list(logs.iterdir()))} files into the text cache of {HOME} ...")
    started = time.perf_counter()
    documents = _common.cached_documents(logs)
    say(f"  ... {time.perf_counter() - started:.1f} s, {len(documents)} documents")
    pack = build_pack(documents)
    if pack.temp_dir is not None:
        raise SystemExit("build_pack wrote a pack file: some documents are not cached")
    chars = sum(e["chars"] for e in pack.entries)

    say("reference: the REPL's grep in this process over the original text ...")
    reference = Reference()
    corpus = Corpus._from_blob(blob, entries)
    grep = make_helpers(corpus)["grep"]
    for label, call in QUERIES:
        started = time.perf_counter()
        hits = eval(call, {"grep": grep})  # the cell's own call expression
        reference.cold[label] = time.perf_counter() - started
        warm = []
        for _ in range(GREP_RUNS):
            started = time.perf_counter()
            eval(call, {"grep": grep})
            warm.append(time.perf_counter() - started)
        if hits.truncated:
            raise SystemExit(f"{label}: more than grep's default cap of hits")
        reference.hits[label] = len(hits)
        reference.warm[label] = statistics.median(warm)
    reference.loop = hit_loop(corpus, grep)
    del grep, corpus, blob, entries
    gc.collect()
    return pack.to_json(), len(documents), chars, reference


# --------------------------------------------------------------------------- measuring


async def start_worker(spec: dict[str, Any], language: bool, os_layer: bool
                       ) -> tuple[ReplProcess, float, dict[str, Any]]:
    repl = ReplProcess(spec, None, sandbox=policy(language, os_layer))
    gc.collect()
    started = time.perf_counter()
    info = await repl.start()
    elapsed = time.perf_counter() - started
    level = (info.get("sandbox") or {}).get("level")
    if os_layer and level != "full":
        await repl.close()
        raise SystemExit(f"the OS layer reached level {level!r} here, not 'full': "
                         f"{(info.get('sandbox') or {}).get('missing')}")
    return repl, elapsed, info


async def timed_cell(repl: ReplProcess, code: str, expect: str | None = None) -> float:
    started = time.perf_counter()
    result = await repl.run_cell(code, timeout=TIMEOUT, on_call=no_call, on_event=no_event)
    elapsed = time.perf_counter() - started
    if result.error or result.reset:
        raise SystemExit(f"cell {code[:60]!r} failed: {result.error}")
    if expect is not None and result.stdout.strip() != expect:
        raise SystemExit(f"cell {code[:60]!r} printed {result.stdout!r}, expected {expect!r}")
    return elapsed


@dataclass
class Starts:
    times: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    lockdown_ms: list[float] = field(default_factory=list)


async def measure_starts(spec: dict[str, Any], chars: int) -> dict[str, Starts]:
    starts = {label: Starts() for label, _, _ in MODES}
    for run in range(RUNS):
        order = MODES[run % len(MODES):] + MODES[: run % len(MODES)]  # rotate: no mode first
        for label, language, os_layer in order:
            repl, elapsed, info = await start_worker(spec, language, os_layer)
            await repl.close()
            if info.get("chars") != chars:
                raise SystemExit(f"{label}: the worker loaded {info.get('chars')} characters, "
                                 f"the pack holds {chars}")
            layers = (info.get("sandbox") or {}).get("layers") or {}
            entry = starts[label]
            entry.times.append(elapsed)
            entry.load.append(float(info["load_s"]))
            if "lockdown_ms" in layers:
                entry.lockdown_ms.append(float(layers["lockdown_ms"]))
            say(f"  (c) start {run + 1}/{RUNS} {label}: {elapsed:.3f} s (load_s "
                 f"{info['load_s']:.3f} s"
                 + (f", lockdown {layers['lockdown_ms']:.1f} ms" if "lockdown_ms" in layers
                    else "") + ")")
    return starts


async def measure_cells(workers: dict[str, ReplProcess], documents: int, scale: Scale
                        ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    expect = {CELLS[0]: None, CELLS[1]: str(documents)}
    for label, repl in workers.items():
        for i in range(WARMUP):
            await timed_cell(repl, CELLS[i % 2], expect[CELLS[i % 2]])
        say(f"  (b) {label}: warm")
    trivial: dict[str, list[float]] = {label: [] for label in workers}
    for i in range(scale.cells):
        for label, repl in workers.items():
            trivial[label].append(await timed_cell(repl, CELLS[i % 2], expect[CELLS[i % 2]]))
    say(f"  (b) {scale.cells} trivial cells per mode done")
    outputs = set()
    long: dict[str, list[float]] = {label: [] for label in workers}
    for label, repl in workers.items():  # warm-up, and every mode must print the same
        result = await repl.run_cell(CELL_20, timeout=TIMEOUT, on_call=no_call,
                                     on_event=no_event)
        if result.error:
            raise SystemExit(f"{label}: the 20-line cell failed: {result.error}")
        outputs.add(result.stdout)
    if len(outputs) != 1:
        raise SystemExit(f"the 20-line cell printed different things: {outputs}")
    for _ in range(scale.long_cells):
        for label, repl in workers.items():
            long[label].append(await timed_cell(repl, CELL_20))
    say(f"  (b) {scale.long_cells} 20-line cells per mode done")
    return trivial, long


@dataclass
class GrepTimes:
    """Per query and mode: the cold run of each worker, the warm runs of each worker."""

    cold: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    warm: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)

    def cold_median(self, query: str, label: str) -> float:
        return statistics.median(self.cold[query][label])

    def warm_median(self, query: str, label: str) -> float:
        """The median of every warm run of every worker of the mode."""
        return statistics.median(t for runs in self.warm[query][label] for t in runs)

    def per_worker(self, query: str, label: str) -> list[float]:
        return [statistics.median(runs) for runs in self.warm[query][label]]


async def measure_grep(workers: dict[str, list[ReplProcess]], reference: Reference
                       ) -> GrepTimes:
    times = GrepTimes()
    for query, call in QUERIES:
        code = f"hits = {call}\nprint(len(hits))"
        expect = str(reference.hits[query])
        times.cold[query] = {label: [] for label in workers}
        times.warm[query] = {label: [[] for _ in repls] for label, repls in workers.items()}
        for label, repls in workers.items():
            for repl in repls:
                times.cold[query][label].append(await timed_cell(repl, code, expect))
        for _ in range(GREP_RUNS):
            for k in range(GREP_WORKERS):
                for label, repls in workers.items():
                    times.warm[query][label][k].append(
                        await timed_cell(repls[k], code, expect))
        say(f"  (a) {query}: " + ", ".join(
            f"{label} {times.warm_median(query, label) * 1000:.0f} ms" for label in workers))
    return times


def compile_costs(runs: int = 200) -> dict[str, tuple[float, float]]:
    """Median seconds of (RestrictedPython compile_cell, ast.parse + compile) per cell."""

    def plain(code: str) -> None:
        tree = ast.parse(code, "<repl>", "exec")
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            compile(ast.Expression(tree.body[-1].value), "<repl>", "eval")
            tree.body.pop()
        compile(tree, "<repl>", "exec")

    out: dict[str, tuple[float, float]] = {}
    for name, code in (("`x = 1`", CELLS[0]), ("20-line cell", CELL_20)):
        times: dict[str, list[float]] = {"restricted": [], "plain": []}
        for _ in range(runs):
            for kind, fn in (("restricted", lambda c: restricted.compile_cell(c, "<repl>")),
                             ("plain", plain)):
                started = time.perf_counter()
                fn(code)
                times[kind].append(time.perf_counter() - started)
        out[name] = (statistics.median(times["restricted"]), statistics.median(times["plain"]))
    return out


def hit_loop(corpus: Corpus, grep: Any, runs: int = 5) -> tuple[int, float, float]:
    """A loop over up to 100,000 grep hits reading `h.text`: the guarded attribute read in
    a loop, under the guards vs plain exec (median of `runs`, in this process)."""
    import builtins

    hits = grep("INFO request", max_hits=100_000)
    code = "n = 0\nfor h in hits:\n    n += len(h.text)\n"
    guarded_ns = restricted.restricted_globals({"context": corpus, "hits": hits},
                                               write=io.StringIO().write)
    plain_ns = {"__builtins__": dict(vars(builtins)), "context": corpus, "hits": hits}
    results = {}
    for kind, compiled, namespace in (
            ("restricted", restricted.compile_cell(code, "<repl>").body, guarded_ns),
            ("plain", compile(code, "<repl>", "exec"), plain_ns)):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            exec(compiled, namespace)
            times.append(time.perf_counter() - started)
        results[kind] = (statistics.median(times), namespace["n"])
    if results["restricted"][1] != results["plain"][1]:
        raise SystemExit("the hit loop counted differently under the guards")
    return len(hits), results["restricted"][0], results["plain"][0]


def exec_costs(runs: int = 200) -> tuple[float, float]:
    """Median seconds to run the 20-line cell's compiled code (compiling excluded): under the
    language layer's guards vs plain exec, on a one-document corpus, as the worker sets up
    its namespace (`print` into a buffer either way)."""
    import builtins
    import collections

    blob, entries = make_corpus(1, SEED)  # one document
    corpus = Corpus._from_blob(blob, entries[:1])
    out = io.StringIO()
    guarded_ns = restricted.restricted_globals({"context": corpus}, write=out.write)
    guarded_ns["collections"] = guarded_ns["__builtins__"]["__import__"]("collections")
    guarded = restricted.compile_cell(CELL_20, "<repl>")
    plain_ns = {"__builtins__": dict(vars(builtins)), "collections": collections,
                "context": corpus}
    # Like the worker: the body with exec, the last bare expression (the print) with eval.
    tree = ast.parse(CELL_20, "<repl>", "exec")
    last = compile(ast.Expression(tree.body.pop().value), "<repl>", "eval")  # type: ignore[attr-defined]
    plain = (compile(tree, "<repl>", "exec"), last)
    times: dict[str, list[float]] = {"restricted": [], "plain": []}
    with contextlib.redirect_stdout(out):
        for _ in range(runs):
            for kind, (body, last_expr), namespace in (
                    ("restricted", guarded, guarded_ns), ("plain", plain, plain_ns)):
                started = time.perf_counter()
                exec(body, namespace)
                if last_expr is not None:
                    eval(last_expr, namespace)
                times[kind].append(time.perf_counter() - started)
    lines = out.getvalue().splitlines()
    if len(lines) != 2 * runs or len(set(lines)) != 1:
        raise SystemExit(f"the 20-line cell printed {len(lines)} lines: {set(lines)}")
    return statistics.median(times["restricted"]), statistics.median(times["plain"])


# --------------------------------------------------------------------------- report


def _cell(text: str) -> str:
    """Text for a markdown table cell: a `|` would end the cell, even inside backticks."""
    return text.replace("|", "\\|")


def _ratio(figure: float, baseline: float) -> str:
    return f"{figure / baseline:.2f}x ({'+' if figure >= baseline else '-'}" \
           f"{ms(abs(figure - baseline))})"


async def run_all(scale: Scale, work: Path) -> tuple[list[Row], list[str]]:
    spec, documents, chars, reference = prepare(work, scale.corpus_bytes)
    size = f"{chars / MB:,.0f} MB"

    say("(c) worker starts ...")
    starts = await measure_starts(spec, chars)

    say("(a, b) one worker per mode ...")
    workers: dict[str, list[ReplProcess]] = {label: [] for label, _, _ in MODES}
    try:
        for _ in range(GREP_WORKERS):
            for label, language, os_layer in MODES:
                repl, _, _ = await start_worker(spec, language, os_layer)
                workers[label].append(repl)
        trivial, long = await measure_cells(
            {label: repls[0] for label, repls in workers.items()}, documents, scale)
        grep = await measure_grep(workers, reference)
    finally:
        for repls in workers.values():
            for repl in repls:
                await repl.close()
    say("(b) the protocol's floor (bench_repl's echo process) and compile costs ...")
    echo = await bench_repl.echo_cells(scale.cells)
    compiles = compile_costs()
    guarded_s, plain_s = exec_costs()

    conf, base = MODES[0][0], MODES[1][0]
    rows: list[Row] = []
    for query, call in QUERIES:
        w, b = grep.warm_median(query, conf), grep.warm_median(query, base)
        rows.append(Row(
            f"(a) grep in the worker, {size}: cell `hits = {_cell(call)}`; `print(len(hits))` "
            f"({reference.hits[query]:,} hits); median of {GREP_RUNS} warm runs on each of "
            f"{GREP_WORKERS} workers per mode, after one cold run each",
            f"{ms(w)} (cold {ms(grep.cold_median(query, conf))})",
            f"unconfined {ms(b)} (cold {ms(grep.cold_median(query, base))})",
            _ratio(w, b), "confined <= 1.1x", "yes" if w <= 1.1 * b else "**no**"))
    for name, times in ((f"{scale.cells} trivial cells alternating `{CELLS[0]}` / "
                         f"`{CELLS[1]}`", trivial),
                        (f"{scale.long_cells} runs of a 20-line cell", long)):
        m, mb = statistics.median(times[conf]), statistics.median(times[base])
        rows.append(Row(
            f"(b) REPL cell round trip, {name}",
            f"median {ms(m)}, p95 {ms(percentile(times[conf], 0.95))}",
            f"unconfined: median {ms(mb)}, p95 {ms(percentile(times[base], 0.95))}",
            _ratio(m, mb), "<= 10 ms median", "yes" if m <= 0.010 else "**no**"))
    sc, sb = starts[conf], starts[base]
    lock = sc.lockdown_ms
    rows.append(Row(
        f"(c) Worker start: `ReplProcess.start()` to ready, {documents} documents, {size} "
        f"in the text cache ({RUNS} starts per mode)",
        f"best {min(sc.times):.3f} s, median {statistics.median(sc.times):.3f} s "
        f"(lockdown_ms {statistics.median(lock):.1f}; worker load_s median "
        f"{statistics.median(sc.load):.3f} s)",
        f"unconfined: best {min(sb.times):.3f} s, median {statistics.median(sb.times):.3f} s "
        f"(load_s median {statistics.median(sb.load):.3f} s)",
        f"{min(sc.times) / min(sb.times):.2f}x best (+{min(sc.times) - min(sb.times):.3f} s), "
        f"{statistics.median(sc.times) / statistics.median(sb.times):.2f}x median",
        "<= 0.5 s", "yes" if min(sc.times) <= 0.5 else "**no**"))

    load = {label: statistics.median(starts[label].load) for label, _, _ in MODES}

    def modes_line(values: dict[str, float], fmt: Any) -> str:
        return ", ".join(f"{label} {fmt(values[label])}" for label, _, _ in MODES)

    notes = [
        "(a) warm medians by mode: " + "; ".join(
            f"{query}: " + modes_line({label: grep.warm_median(query, label)
                                       for label, _, _ in MODES}, ms)
            for query, _ in QUERIES) + ".",
        "(a) warm medians of each worker, confined | unconfined: " + "; ".join(
            f"{query}: " + ", ".join(ms(t) for t in grep.per_worker(query, conf)) + " | "
            + ", ".join(ms(t) for t in grep.per_worker(query, base))
            for query, _ in QUERIES) + ".",
        "(a) the same calls in this process over the original text (no worker, no frames): "
        + "; ".join(f"{q} {ms(reference.warm[q])} warm, {ms(reference.cold[q])} cold"
                    for q, _ in QUERIES) + ".",
        "(b) trivial cells, medians by mode: "
        + modes_line({k: statistics.median(v) for k, v in trivial.items()}, ms)
        + f"; the protocol's floor (bench_repl's echo process): median "
        f"{ms(statistics.median(echo))}, p95 {ms(percentile(echo, 0.95))}.",
        "(b) 20-line cell, medians by mode: "
        + modes_line({k: statistics.median(v) for k, v in long.items()}, ms) + ".",
        "(b) compile alone, in this process (median of 200): " + "; ".join(
            f"{name}: RestrictedPython `compile_cell` {ms(r)}, `ast.parse` + `compile` "
            f"{ms(p)} (+{ms(r - p)})" for name, (r, p) in compiles.items())
        + f"; running the compiled 20-line cell (median of 200): under the guards "
        f"{ms(guarded_s)}, plain exec {ms(plain_s)} (+{ms(guarded_s - plain_s)}).",
        f"(b) a loop `for h in hits: n += len(h.text)` over {reference.loop[0]:,} grep hits, "
        f"in this process (median of 5): under the guards {ms(reference.loop[1])}, plain "
        f"exec {ms(reference.loop[2])} ({reference.loop[1] / reference.loop[2]:.1f}x; "
        f"{(reference.loop[1] - reference.loop[2]) / max(reference.loop[0], 1) * 1e6:.2f} "
        "µs per guarded attribute read).",
        "(c) starts by mode, best / median (worker load_s median): " + ", ".join(
            f"{label} {min(starts[label].times):.3f} / "
            f"{statistics.median(starts[label].times):.3f} s ({load[label]:.3f} s)"
            for label, _, _ in MODES)
        + "; confined runs: " + ", ".join(f"{t:.3f} s" for t in sc.times)
        + "; lockdown_ms: " + ", ".join(f"{v:.1f}" for v in lock) + ".",
        "(c) where the confined start's extra time goes (medians of the worker's load_s): "
        f"language layer (RestrictedPython import, guarded namespace) "
        f"+{ms(load['language only'] - load['unconfined'])}; OS layer "
        f"+{ms(load['OS only'] - load['unconfined'])}, of which the lockdown itself "
        f"(rlimits, no_new_privs, Landlock, seccomp) {statistics.median(lock):.1f} ms and the "
        "rest importing every allowed module (and RestrictedPython, whose proxies they "
        "get) before it; both together "
        f"+{ms(load['confined'] - load['unconfined'])} (not the sum: both import "
        "RestrictedPython).",
    ]
    return rows, notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true",
                        help="50 cells, 10 long cells and a 10 MB corpus (smoke run)")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    total_started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="rlm-bench-sandbox-"))
    try:
        rows, notes = asyncio.run(run_all(scale, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.quick:
        notes.append(f"--quick: {scale.cells} cells, {scale.long_cells} long cells, "
                     f"{scale.corpus_bytes / MB:g} MB corpus; a smoke run.")

    _common.report(rows, notes, total_started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
