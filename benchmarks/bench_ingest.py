"""Ingestion throughput benchmark: text PDFs, a large mbox, a log folder, cached re-open.

    uv run python benchmarks/bench_ingest.py [--quick] [--data DIR]

Inputs are generated with `rlm_desktop.testing.fixtures` into DIR (default
`benchmarks/_data/`, gitignored) and reused by later runs as long as the generator
parameters and the fixtures module are unchanged.  Every figure is set against a
baseline measured in the same run on the same files, so the ratios compare like with like
on whatever machine runs it:

1. Text PDFs: pages/s of `ingest()` (fresh text cache) vs a single-process pypdf loop.
2. mbox: MB/s of `ingest()` (one file, so one worker, i.e. one core) vs the stdlib
   `mailbox.mbox` + `email.message_from_bytes(policy=compat32)` loop; peak RSS of the
   parser process (against the file size, and against its peak on a 100-message mbox)
   and of this (parent) process.
3. Logs: MB/s of uncompressed text through `ingest()` vs reading and UTF-8 decoding
   every file (gzip.open for .gz) in one process.
4. Cached re-open: a second `ingest()` of all of the above on the same TextCache vs the
   first (cold) one.

Timings use time.perf_counter; input files are in the OS page cache (just generated or
read), so disk speed is not measured.  The table is markdown, for docs/performance.md.
`--quick` shrinks every input about 10x for a smoke run; its figures mean little.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import hashlib
import inspect
import json
import mailbox
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path
from typing import Any

import _common
from _common import MB, Row

from rlm_desktop.corpus.cache import TextCache
from rlm_desktop.corpus.formats import EXTRACTOR_VERSION
from rlm_desktop.corpus.ingest import IngestResult, ingest
from rlm_desktop.testing import fixtures

try:
    import resource
except ImportError:  # Windows: no getrusage; memory figures are reported as unknown
    resource = None  # type: ignore[assignment]

HERE = Path(__file__).resolve().parent
MiB = 1024 * 1024
SEED = 0
SMALL_MBOX_MESSAGES = 100
#: The parser's peak RSS on the large mbox may exceed its peak on the 100-message one by at
#: most this fraction of the large file's size for memory to count as flat.
FLAT_GROWTH = 0.10


@dataclass(frozen=True)
class Scale:
    pdf_files: int
    pdf_pages: int
    mbox_bytes: int
    log_bytes: int
    log_gz_fraction: float = 0.3


FULL = Scale(pdf_files=40, pdf_pages=50, mbox_bytes=200_000_000, log_bytes=100_000_000)
QUICK = Scale(pdf_files=4, pdf_pages=50, mbox_bytes=20_000_000, log_bytes=10_000_000)


# --------------------------------------------------------------------------- inputs


def _fixtures_digest() -> str:
    """Changes whenever the generators change, so stale inputs are regenerated."""
    source = inspect.getsourcefile(fixtures)
    assert source is not None
    return hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16]


def _generated(
    directory: Path, params: dict[str, Any], make: Callable[[Path], dict[str, Any]]
) -> dict[str, Any]:
    """What `make(directory)` described, generating it only if the directory does not hold
    a complete earlier generation with the same parameters.  The marker is a hidden file
    (ingest skips hidden files) written last, so an interrupted generation is redone."""
    marker = directory / ".generated.json"
    wanted = {"params": params, "fixtures": _fixtures_digest()}
    if marker.is_file():
        try:
            saved = json.loads(marker.read_text())
            if {k: saved.get(k) for k in wanted} == wanted and all(
                (directory / name).is_file() for name in saved["info"]["files"]
            ):
                print(f"  reusing {directory}", file=sys.stderr)
                return dict(saved["info"])
        except (ValueError, KeyError, TypeError):
            pass
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    print(f"  generating {directory} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    info = make(directory)
    print(f"  ... {time.perf_counter() - started:.1f} s", file=sys.stderr)
    marker.write_text(json.dumps({**wanted, "info": info}, indent=1))
    return info


def pdf_inputs(data: Path, scale: Scale) -> tuple[list[Path], int]:
    params = {"files": scale.pdf_files, "pages_per_file": scale.pdf_pages, "seed": SEED}

    def make(directory: Path) -> dict[str, Any]:
        info = fixtures.make_pdf_corpus(directory, scale.pdf_files, scale.pdf_pages, seed=SEED)
        return {"files": [p.name for p in info.paths], "total_pages": info.total_pages}

    directory = data / f"pdf-{scale.pdf_files}x{scale.pdf_pages}-s{SEED}"
    info = _generated(directory, params, make)
    return [directory / name for name in info["files"]], int(info["total_pages"])


def mbox_inputs(data: Path, scale: Scale) -> tuple[Path, int]:
    params = {"target_bytes": scale.mbox_bytes, "seed": SEED}

    def make(directory: Path) -> dict[str, Any]:
        info = fixtures.write_mbox(directory / "mail.mbox", 0, seed=SEED,
                                   target_bytes=scale.mbox_bytes)
        return {"files": ["mail.mbox"], "messages": info.messages}

    directory = data / f"mbox-{scale.mbox_bytes}-s{SEED}"
    info = _generated(directory, params, make)
    return directory / "mail.mbox", int(info["messages"])


def small_mbox_input(data: Path) -> Path:
    """100 messages with the same mix as the large mbox (PDF attachments included)."""
    params = {"messages": SMALL_MBOX_MESSAGES, "seed": SEED}

    def make(directory: Path) -> dict[str, Any]:
        fixtures.write_mbox(directory / "mail.mbox", SMALL_MBOX_MESSAGES, seed=SEED)
        return {"files": ["mail.mbox"]}

    directory = data / f"mbox-{SMALL_MBOX_MESSAGES}msg-s{SEED}"
    _generated(directory, params, make)
    return directory / "mail.mbox"


def log_inputs(data: Path, scale: Scale) -> tuple[list[Path], int]:
    params = {"total_bytes": scale.log_bytes, "gz_fraction": scale.log_gz_fraction,
              "seed": SEED}

    def make(directory: Path) -> dict[str, Any]:
        info = fixtures.make_log_corpus(directory, scale.log_bytes,
                                        gz_fraction=scale.log_gz_fraction, seed=SEED)
        return {"files": [f.path.name for f in info.files],
                "uncompressed_bytes": info.total_uncompressed_bytes}

    directory = data / f"logs-{scale.log_bytes}-gz{scale.log_gz_fraction}-s{SEED}"
    info = _generated(directory, params, make)
    return [directory / name for name in info["files"]], int(info["uncompressed_bytes"])


# --------------------------------------------------------------------------- measuring


def _best_of(runs: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(runs))


def _timed_ingest(paths: Sequence[Path], cache: TextCache) -> tuple[float, IngestResult]:
    gc.collect()
    started = time.perf_counter()
    result = ingest(paths, cache=cache)
    elapsed = time.perf_counter() - started
    if result.failed:
        problems = "; ".join(f"{f.name}: {f.error}" for f in result.failed[:5])
        raise SystemExit(f"ingest failed for {len(result.failed)} file(s): {problems}")
    return elapsed, result


def _fresh_ingest(paths: Sequence[Path]) -> tuple[float, IngestResult]:
    """ingest() with a new, empty TextCache in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="rlm-bench-cache-") as tmp:
        cache = TextCache(Path(tmp), extractor=EXTRACTOR_VERSION)
        try:
            return _timed_ingest(paths, cache)
        finally:
            cache.close()


def _expect(what: str, got: object, wanted: object) -> None:
    if got != wanted:
        raise SystemExit(f"{what}: ingest found {got}, the generator wrote {wanted}")


def _rss_scale() -> int:
    return 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux


def children_peak_rss() -> int | None:
    """Largest peak RSS of any child process waited for so far (bytes)."""
    if resource is None:
        return None
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * _rss_scale()


def rss_now() -> int | None:
    """Current RSS of this process (bytes), where /proc tells it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class SelfPeak:
    """Peak RSS of this process over a stretch of code.  On Linux the kernel's high-water
    mark is reset first (/proc/self/clear_refs), so the figure covers only that stretch;
    elsewhere it is the peak since the process started."""

    def __init__(self) -> None:
        self.scoped = False
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.scoped = True
        except OSError:
            pass

    def peak(self) -> int | None:
        if self.scoped:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        if resource is None:
            return None
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _rss_scale()


def pypdf_loop(files: Sequence[Path]) -> tuple[float, int]:
    from pypdf import PdfReader

    started = time.perf_counter()
    pages = 0
    for f in files:
        for page in PdfReader(f).pages:
            page.extract_text()
            pages += 1
    return time.perf_counter() - started, pages


def stdlib_mbox_loop(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    box = mailbox.mbox(path, create=False)
    count = 0
    try:
        for key in box.iterkeys():
            message_from_bytes(box.get_bytes(key), policy=compat32)
            count += 1
    finally:
        box.close()
    return time.perf_counter() - started, count


def read_decode_loop(files: Sequence[Path]) -> tuple[float, int]:
    started = time.perf_counter()
    chars = 0
    for f in files:
        opener = gzip.open if f.suffix == ".gz" else open
        with opener(f, "rb") as handle:
            chars += len(handle.read().decode("utf-8"))
    return time.perf_counter() - started, chars


# --------------------------------------------------------------------------- report


def _met(*checks: tuple[str, bool | None]) -> str:
    """"yes", or "**no**" naming the checks that failed; "n/a" when one cannot be judged."""
    if any(ok is None for _, ok in checks):
        return "n/a"
    failed = [name for name, ok in checks if not ok]
    if not failed:
        return "yes"
    return "**no**" + (f" ({', '.join(failed)})" if len(checks) > 1 else "")


def _mb(n: int | None) -> str:
    return "unknown" if n is None else f"{n / MiB:,.0f} MiB"


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="inputs ~10x smaller (smoke run)")
    parser.add_argument("--data", type=Path, default=HERE / "_data",
                        help="where generated inputs are kept (default: benchmarks/_data)")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    data: Path = args.data.resolve()
    data.mkdir(parents=True, exist_ok=True)
    total_started = time.perf_counter()

    print("Inputs:", file=sys.stderr)
    pdfs, total_pages = pdf_inputs(data, scale)
    mbox, messages = mbox_inputs(data, scale)
    small_mbox = small_mbox_input(data)
    logs, log_bytes = log_inputs(data, scale)
    mbox_bytes = mbox.stat().st_size
    notes: list[str] = []

    # The mboxes go first: RUSAGE_CHILDREN reports the largest peak of *any* child waited
    # for, so the parser processes of these runs must be the first children started.  A
    # 100-message mbox (same mix of bodies and attachments) is read first: its parser's
    # peak is the fixed cost of a parser process, and the large mbox may add little to it.
    print("mbox: ingest (100 messages, then the large one) ...", file=sys.stderr, flush=True)
    children_before = children_peak_rss()
    _fresh_ingest([small_mbox])
    worker_peak_small = children_peak_rss()
    gc.collect()
    parent_before = rss_now()
    self_peak = SelfPeak()
    mbox_s, result = _fresh_ingest([mbox])
    parent_peak = self_peak.peak()
    worker_peak = children_peak_rss()
    _expect("mbox messages", result.files[0].messages, messages)
    mbox_docs = len(result.documents)
    del result
    print("mbox: stdlib baseline ...", file=sys.stderr, flush=True)
    stdlib_s, stdlib_count = stdlib_mbox_loop(mbox)
    _expect("stdlib mbox messages", stdlib_count, messages)

    print("PDF: ingest x2 ...", file=sys.stderr, flush=True)
    pdf_runs: list[float] = []
    for _ in range(2):
        elapsed, result = _fresh_ingest(pdfs)
        _expect("PDF pages", sum(f.pages or 0 for f in result.files), total_pages)
        pdf_runs.append(elapsed)
    pdf_s = min(pdf_runs)
    print("PDF: pypdf baseline ...", file=sys.stderr, flush=True)
    pypdf_s, pypdf_pages = pypdf_loop(pdfs)
    _expect("pypdf pages", pypdf_pages, total_pages)

    print("logs: ingest x2 ...", file=sys.stderr, flush=True)
    log_runs: list[float] = []
    for _ in range(2):
        elapsed, result = _fresh_ingest(logs)
        log_chars = sum(f.chars for f in result.files)
        _expect("log characters", log_chars, log_bytes)  # ASCII: one byte per character
        log_runs.append(elapsed)
    log_s = min(log_runs)
    print("logs: read+decode baseline x2 ...", file=sys.stderr, flush=True)
    decode_s = _best_of(2, lambda: read_decode_loop(logs)[0])

    print("cached re-open: cold ingest of everything, then warm x2 ...", file=sys.stderr,
          flush=True)
    everything = [*pdfs, mbox, *logs]
    with tempfile.TemporaryDirectory(prefix="rlm-bench-cache-") as tmp:
        cache = TextCache(Path(tmp), extractor=EXTRACTOR_VERSION)
        try:
            cold_s, cold = _timed_ingest(everything, cache)
            cold_docs = len(cold.documents)
            del cold
            warm_runs: list[float] = []
            for _ in range(2):
                elapsed, warm = _timed_ingest(everything, cache)
                if not all(f.cached for f in warm.files):
                    raise SystemExit("cached re-open: some files were parsed again")
                _expect("cached re-open documents", len(warm.documents), cold_docs)
                warm_runs.append(elapsed)
                del warm
            warm_s = min(warm_runs)
        finally:
            cache.close()

    # ---- the table
    pdf_rate, pypdf_rate = total_pages / pdf_s, total_pages / pypdf_s
    pdf_ratio = pdf_rate / pypdf_rate
    mbox_rate, stdlib_rate = mbox_bytes / MB / mbox_s, mbox_bytes / MB / stdlib_s
    log_rate, decode_rate = log_bytes / MB / log_s, log_bytes / MB / decode_s
    reopen_ratio = cold_s / warm_s

    growth: int | None = None
    if worker_peak is not None and worker_peak_small is not None:
        growth = max(0, worker_peak - worker_peak_small)
    if worker_peak is None:
        worker_cells = ("unknown", "unknown")
    else:
        worker_cells = (
            f"{_mb(worker_peak)} (100-message mbox: {_mb(worker_peak_small)})",
            f"peak = {worker_peak / mbox_bytes:.2f}x file size; growth over the 100-message "
            f"mbox = {_mb(growth)} = {(growth or 0) / mbox_bytes:.1%} of file size",
        )
    parent_growth = (None if parent_peak is None or parent_before is None
                     else max(0, parent_peak - parent_before))
    parent_figure = _mb(parent_peak)
    if parent_growth is not None:
        parent_figure += (f" ({_mb(parent_before)} before the run: +{_mb(parent_growth)}, "
                          f"{parent_growth / mbox_docs / 1024:,.1f} KiB per document)")

    rows = [
        Row(f"1. Text PDFs: `ingest()`, {len(pdfs)} files x {scale.pdf_pages} pages "
            f"= {total_pages:,} pages, fresh cache (best of 2)",
            f"{pdf_rate:,.0f} pages/s ({pdf_s:.2f} s)",
            f"{pypdf_rate:,.0f} pages/s: single-process pypdf `extract_text()` loop "
            f"({pypdf_s:.1f} s)",
            f"{pdf_ratio:.1f}x", ">= 1,500 pages/s and >= 4x",
            _met(("pages/s", pdf_rate >= 1500), ("ratio", pdf_ratio >= 4))),
        Row(f"2a. mbox: `ingest()`, {mbox_bytes / MB:,.0f} MB, {messages:,} messages "
            f"({mbox_docs:,} documents with attachments), fresh cache; one file is read by "
            "one parser process, i.e. one core",
            f"{mbox_rate:,.1f} MB/s on 1 core ({mbox_s:.1f} s)",
            f"{stdlib_rate:,.1f} MB/s: stdlib `mailbox.mbox` + `message_from_bytes(compat32)`,"
            f" parse only, one process ({stdlib_s:.1f} s)",
            f"{mbox_rate / stdlib_rate:.2f}x", ">= 40 MB/s per core",
            _met(("MB/s", mbox_rate >= 40))),
        Row("2b. mbox: peak RSS of the parser process (`RUSAGE_CHILDREN` ru_maxrss)",
            worker_cells[0], f"file size {_mb(mbox_bytes)}", worker_cells[1],
            f"flat: far below the file size (< 50% of it) and growing by < {FLAT_GROWTH:.0%} "
            "of it over the 100-message mbox",
            _met(("< 50% of file size",
                  None if worker_peak is None else worker_peak < 0.5 * mbox_bytes),
                 ("growth", None if growth is None else growth < FLAT_GROWTH * mbox_bytes))),
        Row("2c. mbox: peak RSS of the benchmark (parent) process during that ingest"
            + ("" if self_peak.scoped else " (peak since start)"),
            parent_figure, f"file size {_mb(mbox_bytes)}",
            "unknown" if parent_peak is None else f"{parent_peak / mbox_bytes:.2f}x file size",
            "none set", "n/a"),
        Row(f"3. Logs: `ingest()`, {len(logs)} files ({scale.log_gz_fraction:.0%} of the "
            f"text in .gz), {log_bytes / MB:,.0f} MB uncompressed, fresh cache (best of 2)",
            f"{log_rate:,.0f} MB/s ({log_s:.2f} s)",
            f"{decode_rate:,.0f} MB/s: single-process read (gzip.open for .gz) + UTF-8 decode"
            f" ({decode_s:.2f} s, best of 2)",
            f"{log_rate / decode_rate:.2f}x", ">= 500 MB/s", _met(("MB/s", log_rate >= 500))),
        Row(f"4. Cached re-open: 2nd `ingest()` of all {len(everything)} files above on the "
            f"same TextCache ({cold_docs:,} documents; best of 2)",
            f"{warm_s:.2f} s", f"first (cold) `ingest()` of the same files: {cold_s:.1f} s",
            f"{reopen_ratio:,.0f}x faster", ">= 20x", _met(("ratio", reopen_ratio >= 20))),
    ]
    if children_before:
        notes.append("child processes had run before the mbox measurement, so the parser "
                     "peak RSS figures may belong to an earlier child.")
    if args.quick:
        notes.append("--quick: inputs are ~10x smaller; process start-up dominates and the "
                     "fixed memory of a parser process exceeds the whole mbox, so the "
                     "figures are a smoke test only.")
    notes.append("MB = 10^6 bytes; MiB = 2^20 bytes. Input files are in the OS page cache. "
                 "Each `ingest()` starts its own parser processes (one per usable CPU, at "
                 "most one per file), so their start-up is in every figure.")
    notes.append("`ingest()` does more than its baselines: it hashes each file (sha256), "
                 "decodes bodies and headers, turns HTML into text, reads PDF attachments, "
                 "and writes the text to the cache through a pipe from the parser process.")
    notes.append("Row 4's cold run is dominated by the mbox, which one parser process reads "
                 "while the other reads the PDFs and logs; the warm run only loads manifests "
                 "from the cache's SQLite index and builds the Document objects.")
    notes.append(f"PDF ingest runs: {', '.join(f'{t:.2f} s' for t in pdf_runs)}; log ingest "
                 f"runs: {', '.join(f'{t:.2f} s' for t in log_runs)}; warm re-open runs: "
                 f"{', '.join(f'{t:.3f} s' for t in warm_runs)}.")

    _common.report(
        rows, notes, total_started,
        machine_line=_common.machine(note="; ingest uses one parser process per usable CPU"),
        wall_note=", including input generation")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
