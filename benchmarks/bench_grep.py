"""grep throughput over a ~100 MB corpus: the REPL's `grep` vs ripgrep and naive Python.

    uv run python benchmarks/bench_grep.py [--quick] [--seed N]

The corpus is generated in memory (deterministic for a seed): log-like lines (sshd, kernel,
cron, an application server) in ~5,000 documents of ~20 KB, laid out as the REPL worker lays
it (one blob, "\\n" between documents) and wrapped with `Corpus.from_blob`. Each query goes
through the real helper, `make_helpers(corpus)["grep"]`, which builds and returns Hit objects
(document, line, page, line text, offsets):

1. a selective literal (one IP address, `re.escape`d);
2. a common literal (~0.3% of lines);
3. a case-insensitive alternation of three words (ignore_case=True, ~1% of lines).

The first call on a fresh corpus ("cold") also builds what later calls reuse (the line index;
for ignore_case the case-folded copy of the blob); "warm" is the best of 5 later calls.

Baselines measured in the same run on the same text:
* ripgrep, when `rg` is on PATH: the text written to a temp dir as 64 files (whole
  documents each, so lines are the same), `rg -c` summed over files = matching lines, which
  must equal the number of hits; best of 5 runs including process start. ripgrep uses every
  CPU by default (the target's baseline); the REPL's grep uses one, so `rg -j1` is shown too.
* a naive Python loop: `re.search` on every line of every document;
* `re.finditer` with the `[^\\n]*X[^\\n]*` form, timed on a 2 MB slice (it is far too slow
  for the whole corpus: quadratic in the line length), reported as MB/s.

The table is markdown, for docs/performance.md. `--quick` uses ~10 MB; its figures mean little.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import MB, machine, make_corpus, markdown_table, write_log_files

from rlm_desktop.engine.helpers import make_helpers
from rlm_desktop.engine.replapi import Corpus

SEED = 0

QUERIES: list[tuple[str, str, bool, str]] = [
    # (label, pattern, ignore_case, target)
    # (the same pattern text goes to ripgrep, so no `re.escape` of spaces: rg rejects "\ ")
    ("selective literal", r"203\.0\.113\.77", False, "<= 2x ripgrep"),
    ("common literal", "Failed password for root", False, "<= 2x ripgrep"),
    ("case-insensitive alternation", "timeout|refused|segfault", True, "<= 3x ripgrep"),
]


# --------------------------------------------------------------------------- measuring


def _best(runs: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def ripgrep(rg: str, pattern: str, ignore_case: bool, directory: Path,
            threads: int = 0) -> tuple[float, int]:
    """Best of 5 `rg -c` runs (0 threads: ripgrep's default, every CPU) and the line count."""
    args = [rg, "--no-config", "-c", *(["-i"] if ignore_case else []),
            *([f"-j{threads}"] if threads else []), "-e", pattern, str(directory)]

    def run() -> int:
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode not in (0, 1):
            raise SystemExit(f"rg failed: {done.stderr}")
        return sum(int(line.rsplit(":", 1)[1]) for line in done.stdout.splitlines())

    return _best(5, run)


def naive_lines(blob: str, entries: Sequence[dict[str, Any]], pattern: str,
                ignore_case: bool) -> tuple[float, int]:
    regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)

    def run() -> int:
        count = 0
        for entry in entries:
            for line in blob[entry["start"] : entry["end"]].split("\n"):
                if regex.search(line):
                    count += 1
        return count

    return _best(1, run)


def catastrophic_rate(blob: str, pattern: str, ignore_case: bool) -> float:
    """MB/s of re.finditer with the [^\\n]*(X)[^\\n]* form on a 2 MB slice."""
    piece = blob[: 2 * MB]
    regex = re.compile(f"[^\\n]*(?:{pattern})[^\\n]*", re.IGNORECASE if ignore_case else 0)
    elapsed, _ = _best(1, lambda: sum(1 for _ in regex.finditer(piece)))
    return len(piece) / MB / elapsed


@dataclass(frozen=True)
class Row:
    query: str
    hits: int
    cold: float
    warm: float
    rg: float | None
    rg1: float | None
    naive: float
    catastrophic: float
    target: str


def table(rows: Sequence[Row], size: int, rg_version: str | None) -> str:
    head = ("query", "hits (= lines)", "grep warm", "grep cold", "ripgrep", "ratio to rg",
            "ripgrep -j1 (ratio)",
            "naive per-line re.search", "`[^\\n]*X[^\\n]*` finditer", "target", "met?")
    body = []
    for r in rows:
        rate = size / MB / r.warm
        limit = 2.0 if "2x" in r.target else 3.0
        ratio = None if r.rg is None else r.warm / r.rg
        cells = (
            r.query, f"{r.hits:,}", f"{r.warm * 1000:,.0f} ms ({rate:,.0f} MB/s)",
            f"{r.cold * 1000:,.0f} ms",
            "not installed" if r.rg is None else (
                f"{r.rg * 1000:,.0f} ms ({size / MB / r.rg:,.0f} MB/s)"),
            "n/a" if ratio is None else f"{ratio:.1f}x",
            "n/a" if r.rg1 is None else f"{r.rg1 * 1000:,.0f} ms ({r.warm / r.rg1:.1f}x)",
            f"{r.naive * 1000:,.0f} ms ({r.naive / r.warm:.0f}x slower)",
            f"{r.catastrophic:,.1f} MB/s ({rate / r.catastrophic:,.0f}x slower)",
            r.target,
            "n/a" if ratio is None else ("yes" if ratio <= limit else "**no**"),
        )
        body.append(cells)
    note = f"ripgrep: {rg_version}" if rg_version else "ripgrep not installed"
    return markdown_table(head, body) + f"\n\n{note}; corpus {size / MB:,.1f} MB."


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="~10 MB instead of ~100 MB")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    size = 10 * MB if args.quick else 100 * MB

    print("generating the corpus ...", file=sys.stderr, flush=True)
    blob, entries = make_corpus(size, args.seed)
    started = time.perf_counter()
    Corpus._from_blob(blob, entries)
    build = time.perf_counter() - started
    rg = shutil.which("rg")
    rg_version = None
    if rg:
        rg_version = subprocess.run([rg, "--version"], capture_output=True, text=True,
                                    check=False).stdout.splitlines()[0]

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="rlm-bench-grep-") as tmp:
        if rg:
            write_log_files(blob, entries, Path(tmp))
        for label, pattern, ignore_case, target in QUERIES:
            print(f"{label}: grep ...", file=sys.stderr, flush=True)
            corpus = Corpus._from_blob(blob, entries)  # fresh: the first call is cold
            grep = make_helpers(corpus)["grep"]
            cold, hits = _best(1, lambda: grep(pattern, ignore_case=ignore_case))  # noqa: B023
            warm, again = _best(5, lambda: grep(pattern, ignore_case=ignore_case))  # noqa: B023
            if len(again) != len(hits) or hits.truncated:
                raise SystemExit(f"{label}: unstable or truncated result")
            rg_s = rg1_s = None
            if rg:
                print(f"{label}: ripgrep ...", file=sys.stderr, flush=True)
                rg_s, rg_count = ripgrep(rg, pattern, ignore_case, Path(tmp))
                rg1_s, _ = ripgrep(rg, pattern, ignore_case, Path(tmp), threads=1)
                if rg_count != len(hits):
                    raise SystemExit(f"{label}: ripgrep counts {rg_count:,} lines, "
                                     f"grep {len(hits):,}")
            print(f"{label}: naive baselines ...", file=sys.stderr, flush=True)
            naive_s, naive_count = naive_lines(blob, entries, pattern, ignore_case)
            if naive_count != len(hits):
                raise SystemExit(f"{label}: naive loop counts {naive_count:,}, "
                                 f"grep {len(hits):,}")
            rows.append(Row(label, len(hits), cold, warm, rg_s, rg1_s,
                            naive_s, catastrophic_rate(blob, pattern, ignore_case), target))

    print(machine(usable=False))
    print(f"Corpus: {len(entries):,} documents, {len(blob) / MB:,.1f} MB; "
          f"Corpus.from_blob: {build * 1000:.1f} ms\n")
    print(table(rows, len(blob), rg_version))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
