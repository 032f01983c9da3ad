"""Helpers of the sessions tests (a module, not conftest: `from conftest import` resolves
to whichever conftest was imported first): recording a real run, the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rlm_desktop.corpus.ingest import ingest
from rlm_desktop.engine.budget import Limits
from rlm_desktop.engine.run import Run, RunConfig, RunResult
from rlm_desktop.engine.trace import TraceEvent, TraceNode
from rlm_desktop.sessions.recorder import Recorder
from rlm_desktop.sessions.store import Store
from rlm_desktop.testing.scenarios import Tickets
from rlm_desktop.testing.server import ScriptedServer

CANARY = "sk-canary-7d1e5a9b3c0f"


@dataclass
class Recorded:
    store: Store
    server: ScriptedServer
    id: str
    nodes: list[TraceNode]      # the run's own nodes, as the engine made them
    result: RunResult
    tickets: Tickets


def record_run(store: Store, server: ScriptedServer, paths: list[Path], question: str,
               *, stop_after_turn: int | None = None, limits: Limits | None = None,
               ) -> tuple[str, Run, RunResult]:
    """Run `question` over `paths` against `server`, recorded in `store` (key CANARY);
    `stop_after_turn` cancels it once that root turn has its answer (a run cut short)."""
    documents = ingest(paths).documents
    config = RunConfig(base_url=server.base_url, api_key=CANARY, model="gpt-4o",
                       sub_model="gpt-4o-mini", limits=limits or Limits(cell_timeout_s=30.0))
    recorder = Recorder(store)
    investigation = recorder.begin(question, documents, config)
    run = Run(documents, question, recorder.configure(config))
    run.trace.subscribe(recorder)
    if stop_after_turn is not None:
        def stop(event: TraceEvent) -> None:
            node = event.node
            if (event.type == "end" and node.kind == "root_call"
                    and node.extra.get("iteration") == stop_after_turn):
                run.cancel()

        run.trace.subscribe(stop)
    result = run.execute_sync()
    recorder.finish(result)
    return investigation, run, result


def cli(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`rlm-desktop ARGS` as a user runs it, in a subprocess with the test's app home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["RLM_DESKTOP_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "rlm_desktop", *args], capture_output=True,
                          text=True, env=env, timeout=timeout, check=False)
