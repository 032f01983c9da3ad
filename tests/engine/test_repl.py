"""The REPL worker process seen from the parent: levels, limits, resets, forged frames."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from rlm_desktop.corpus.document import Document
from rlm_desktop.engine.pack import build_pack
from rlm_desktop.engine.repl import CellResult, ReplError, ReplProcess, SandboxPolicy

DOCS = [Document(id="a", name="a.log", path="/x/a.log", kind="log", sha256="0" * 64, size=20,
                 text="boot ok\nERROR disk full\n")]


async def _no_call(message: dict[str, Any]) -> Any:
    raise AssertionError(f"unexpected call {message}")


def run_cells(cells: list[str], policy: SandboxPolicy, **kw: Any
              ) -> tuple[list[CellResult], dict[str, Any]]:
    async def go() -> tuple[list[CellResult], dict[str, Any]]:
        pack = build_pack(DOCS)
        repl = ReplProcess(pack.to_json(), None, sandbox=policy, **kw)
        try:
            info = await repl.start()
            results = [await repl.run_cell(c, timeout=10, on_call=_no_call,
                                           on_event=lambda m: None) for c in cells]
            return results, info
        finally:
            await repl.close()
            pack.cleanup()

    return asyncio.run(go())


def test_a_worker_below_the_minimum_level_refuses_to_run_code() -> None:
    with pytest.raises(ReplError, match="below the minimum 'partial'"):
        run_cells(["print(1)"], SandboxPolicy(os=False, minimum="partial"))
    results, info = run_cells(["print(1)"], SandboxPolicy(os=False, minimum="none"))
    assert results[0].stdout == "1\n" and info["sandbox"]["level"] == "none"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Landlock and seccomp")
def test_the_confined_worker_reports_its_layers() -> None:
    results, info = run_cells(["print(len(context))"], SandboxPolicy())
    report = info["sandbox"]
    assert report["language"] == "restricted"
    assert report["level"] in ("full", "partial")
    assert "seccomp" in report["layers"] and results[0].stdout == "1\n"


@pytest.mark.skipif(sys.platform == "win32", reason="ps")
def test_the_memory_watchdog_stops_a_cell_that_grows_too_big() -> None:
    policy = SandboxPolicy(language=False, os=False, minimum="none",
                           memory_bytes=150 * 2**20)
    results, _ = run_cells(["x = b'x' * 600_000_000\nimport time\ntime.sleep(5)", "print(2)"],
                           policy, memory_watchdog=True)
    assert results[0].reset and "more than" in (results[0].error or "")
    assert results[1].stdout == "2\n" and results[1].error is None


def test_a_forged_frame_stops_the_worker() -> None:
    forge = ("import os, json, struct\n"
             "payload = json.dumps({'op': 'call', 'kind': 'llm_query', 'prompts': ['x'],"
             " 'model': 'm', 'max_tokens': 10**9}).encode()\n"
             "for fd in range(3, 20):\n"
             "    try:\n"
             "        os.write(fd, struct.pack('>IB', len(payload), 0) + payload)\n"
             "    except OSError:\n"
             "        pass\n"
             "import time\ntime.sleep(1)\n")
    results, _ = run_cells([forge, "print(3)"],
                           SandboxPolicy(language=False, os=False, minimum="none"))
    assert results[0].reset and "invalid message" in (results[0].error or "")
    assert "max_tokens" in (results[0].error or "")
    assert results[1].stdout == "3\n"
