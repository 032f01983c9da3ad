"""The replay cache, and rerunning a saved investigation (from the cache, or live).

Every model response of a recorded run is saved under the SHA-256 of its request (model,
messages, parameters; never the key or the endpoint) and its occurrence among identical
requests. A rerun in replay mode is served entirely from those responses: it makes no HTTP
request, costs nothing, and reproduces the same tree and answer, which proves the record
is complete. A request the record does not have stops the run with a clear error.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from rlm_desktop.corpus.document import Document
from rlm_desktop.engine.budget import Limits, Pricing
from rlm_desktop.engine.client import Completion, ModelRequest, ReplayMiss
from rlm_desktop.engine.repl import SandboxPolicy
from rlm_desktop.engine.run import RunConfig, RunResult
from rlm_desktop.engine.trace import TraceNode
from rlm_desktop.sessions.investigation import Investigation, source_files, usage_from_json
from rlm_desktop.sessions.store import Store

# (request hash, occurrence, step, response JSON) -> stored somewhere
ResponseSink = Callable[[str, int, int, dict[str, Any]], None]


def completion_to_json(completion: Completion, request: ModelRequest) -> dict[str, Any]:
    return {"text": completion.text, "usage": completion.usage.to_json(),
            "model": completion.model, "finish_reason": completion.finish_reason,
            "role": "root" if request.stream else "child",
            "requested_model": request.model}


def completion_from_json(data: dict[str, Any]) -> Completion:
    usage = usage_from_json(data.get("usage"))
    assert usage is not None
    return Completion(str(data.get("text") or ""), usage, str(data.get("model") or ""),
                      data.get("finish_reason"))


class ReplayCache:
    """The engine's ResponseCache (engine/client.py): records responses through `sink`, and
    with `recorded` serves them back instead of calling the server.

    Used from the run's event loop thread only."""

    def __init__(self, recorded: dict[str, list[dict[str, Any]]] | None = None, *,
                 sink: ResponseSink | None = None, source: str | None = None,
                 then_live: bool = False) -> None:
        self.recorded = recorded
        self.sink = sink
        self.source = source            # the investigation replayed, for messages
        self.then_live = then_live      # resume: past the record, call the model
        self.steps = 0                  # model calls asked for so far
        self.served = 0                 # of which answered from the record
        self.live = 0                   # of which sent to the model (resuming)
        self._seen: dict[str, int] = {}
        self._pending: dict[int, tuple[int, int]] = {}  # id(request) -> (occurrence, step)

    @property
    def replaying(self) -> bool:
        return self.recorded is not None

    def lookup(self, request: ModelRequest) -> Completion | None:
        self.steps += 1
        occurrence = self._seen.get(request.key, 0)
        self._seen[request.key] = occurrence + 1
        if self.recorded is None:
            self._pending[id(request)] = (occurrence, self.steps)
            return None
        answers = self.recorded.get(request.key, [])
        if occurrence >= len(answers) and self.then_live:
            if self.served == 0 and self.recorded:
                # Not one recorded response fits the first request: the documents, settings
                # or prompt changed, and "resuming" would silently run everything again.
                where = f"investigation {self.source}" if self.source else "the record"
                raise ReplayMiss(
                    f"{where} does not match this run from its first step (the documents, "
                    "settings or prompt version differ): nothing to resume; rerun it live "
                    "instead")
            self.live += 1
            self._pending[id(request)] = (occurrence, self.steps)
            return None
        if occurrence >= len(answers):
            where = f"investigation {self.source}" if self.source else "the record"
            role = "root" if request.stream else "child"
            raise ReplayMiss(
                f"{where} has no response for step {self.steps} (a {role} call to "
                f"{request.model}): the documents, settings or prompt version differ from "
                "the recorded run; the replay stopped without calling the model")
        data = answers[occurrence]
        self.served += 1
        if self.sink is not None:  # the new investigation keeps its own copy
            self.sink(request.key, occurrence, self.steps, data)
        return completion_from_json(data)

    def save(self, request: ModelRequest, completion: Completion) -> None:
        occurrence, step = self._pending.pop(id(request), (0, self.steps))
        if self.sink is not None:
            self.sink(request.key, occurrence, step, completion_to_json(completion, request))


@dataclass(slots=True)
class RerunPlan:
    """What a rerun needs: hand question, documents and config to a Run (or the GUI's
    bridge) and record it with `Recorder.begin(..., replay_of=plan.replay_of)`."""

    question: str
    documents: list[Document]
    config: RunConfig
    replay_of: str
    skipped: list[str]            # source files that could not be read again, with reasons
    mode: str = "replay"          # "replay" | "live" | "resume": recorded with the rerun
    recorded_base_url: str | None = None   # the endpoint the investigation was run with


def same_server(recorded_url: str | None, url: str | None) -> bool:
    """Whether an endpoint is on the host an investigation was recorded with (None is the
    client's default, OpenAI). A resume sends the run's conversation, document excerpts
    included, to `url`: on another host only when the user says so."""
    default = "https://api.openai.com/v1"
    return urlsplit(recorded_url or default).hostname == urlsplit(url or default).hostname


# What a resume can carry on: runs cut short. Not `completed` (nothing is left to do) and
# not `running` (its process may still be calling the model).
RESUMABLE = frozenset({"interrupted", "cancelled", "timeout", "budget_exhausted",
                       "max_iterations", "error"})


def plan_rerun(store: Store, investigation_id: str, *, replay: bool = True,
               documents: Sequence[Document] | None = None, base_url: str | None = None,
               api_key: str | None = None, model: str | None = None,
               sub_model: str | None = None, resume: bool = False,
               limits: Limits | None = None) -> RerunPlan:
    """Prepare to run a saved investigation again: the same question, files (read again
    from their paths unless `documents` is given), limits and sandbox policy. With `replay`
    every model response comes from the record (no endpoint or key needed); without it the
    run is live, optionally with another endpoint or models. `resume` continues a run that
    was cut short: the recorded responses bring it back to where it stopped (at no cost),
    then the same models are called live through `base_url` / `api_key` for the rest; its
    files must be unchanged, and `limits` (e.g. a raised budget) replace the recorded ones,
    which would stop it again at the same step. ValueError says why a resume cannot be."""
    investigation = store.load(investigation_id)
    if resume:
        if investigation.status not in RESUMABLE:
            raise ValueError(
                "this investigation is still running" if investigation.status == "running"
                else f"this investigation ended {investigation.status}: there is nothing "
                     "to resume (replay it, or rerun it live)")
        if (model and model != investigation.model) or (
                sub_model and sub_model != investigation.sub_model):
            raise ValueError("resuming continues with the recorded models; to try other "
                             "models, rerun it live")
        model = sub_model = None
    if replay and ((model and model != investigation.model)
                   or (sub_model and sub_model != investigation.sub_model)):
        raise ValueError("a replay reproduces the recorded run; to try other models, rerun "
                         "it live")
    skipped: list[str] = []
    if documents is None:
        from rlm_desktop.corpus.ingest import ingest

        read = ingest(list(source_files(investigation.corpus)))
        documents = read.documents
        skipped = [f"{f.path}: {f.error}" for f in read.failed]
    if resume:
        _same_files(investigation, documents, skipped)
    cached = replay or resume
    config = config_of(investigation, replay=ReplayCache(
        store.responses(investigation.id), source=investigation.id, then_live=resume)
        if cached else None)
    # A live rerun goes where it is told (None: the client's default, OpenAI), never to the
    # recorded endpoint with today's key; a replay calls nothing, so it keeps the record's.
    if limits is not None:
        config = dataclasses.replace(config, limits=limits)
    config = dataclasses.replace(
        config, api_key=api_key,
        base_url=(base_url or config.base_url) if replay and not resume else base_url,
        model=model or config.model,
        sub_model=sub_model or (model if model else config.sub_model))
    mode = "resume" if resume else "replay" if replay else "live"
    return RerunPlan(investigation.question, list(documents), config, investigation.id,
                     skipped, mode, investigation.settings.get("base_url"))


def _same_files(investigation: Investigation, documents: Sequence[Document],
                skipped: Sequence[str]) -> None:
    """A resume carries on from recorded answers about these files: they must be the same
    bytes. ValueError names the ones that are missing or changed."""
    recorded = source_files(investigation.corpus)
    now = {path: doc.sha256 for doc in documents for path in (doc.path, *doc.paths)}
    missing = [p for p in recorded if p not in now]
    changed = [p for p, digest in recorded.items() if p in now and now[p] != digest]
    if missing or changed or skipped:
        parts = []
        if changed:
            parts.append("changed since: " + ", ".join(changed[:5]))
        if missing:
            parts.append("missing or unreadable: " + ", ".join(missing[:5]))
        raise ValueError("its files are not what the recorded run read ("
                         + "; ".join(parts) + "): nothing to resume; rerun it live")


def config_of(investigation: Investigation, *, replay: ReplayCache | None = None
              ) -> RunConfig:
    """The RunConfig an investigation was recorded with (without the key, never saved)."""
    settings = investigation.settings
    known = {f.name for f in dataclasses.fields(Limits)}
    limits = Limits(**{k: v for k, v in (settings.get("limits") or {}).items() if k in known})
    known = {f.name for f in dataclasses.fields(SandboxPolicy)}
    sandbox = SandboxPolicy(**{k: v for k, v in (settings.get("sandbox_policy") or {}).items()
                               if k in known})
    pricing = Pricing()
    for name, price in (settings.get("pricing") or {}).items():
        if isinstance(price, list) and len(price) == 2:
            pricing.prices[str(name)] = (float(price[0]), float(price[1]))
    return RunConfig(base_url=settings.get("base_url"), api_key=None,
                     model=str(settings.get("model") or "gpt-5"),
                     sub_model=settings.get("sub_model"), limits=limits, pricing=pricing,
                     sandbox=sandbox, replay=replay)


def rerun(store: Store, investigation_id: str, *, replay: bool = True, save: bool = True,
          documents: Sequence[Document] | None = None, base_url: str | None = None,
          api_key: str | None = None, model: str | None = None,
          sub_model: str | None = None, resume: bool = False, limits: Limits | None = None,
          ) -> tuple[str | None, RunResult, list[TraceNode]]:
    """Run a saved investigation again, here and now (blocking), and record it as a new
    investigation (unless `save` is false). Returns (new id or None, result, its steps)."""
    plan = plan_rerun(store, investigation_id, replay=replay, documents=documents,
                      base_url=base_url, api_key=api_key, model=model, sub_model=sub_model,
                      resume=resume, limits=limits)
    return run_plan(store, plan, save=save)


def run_plan(store: Store, plan: RerunPlan, *, save: bool = True,
             subscribers: Sequence[Any] = ()) -> tuple[str | None, RunResult, list[TraceNode]]:
    """Run a planned rerun (blocking), recorded unless `save` is false; `subscribers` hear
    its trace events (e.g. the CLI's live tree). After it, `plan.config.replay` (a
    ReplayCache) tells how many calls came from the record (`served`) and went live."""
    from rlm_desktop.engine.run import Run
    from rlm_desktop.sessions.recorder import Recorder

    config = plan.config
    recorder = None
    new_id = None
    if save:
        recorder = Recorder(store)
        new_id = recorder.begin(plan.question, plan.documents, config,
                                replay_of=plan.replay_of, rerun=plan.mode)
        config = recorder.configure(config)
    run = Run(plan.documents, plan.question, config)
    if recorder is not None:
        run.trace.subscribe(recorder)
    for subscriber in subscribers:
        run.trace.subscribe(subscriber)
    result = run.execute_sync()
    if recorder is not None:
        recorder.finish(result)
    return new_id, result, sorted(run.trace.nodes.values(), key=lambda n: n.id)


# Times differ from run to run, and so may the retries a server needed and the sandbox level
# the machine reached; nothing else may.
_VOLATILE = ("started", "ended", "retries", "sandbox_level", "from_record")


def step_signature(node: TraceNode) -> dict[str, Any]:
    """What a step did, without when it did it (for comparing a replay with its record)."""
    data = node.to_json()
    for key in _VOLATILE:
        data.pop(key, None)
    normal: dict[str, Any] = json.loads(json.dumps(data, default=str))  # tuples -> lists
    return normal


def same_steps(a: Sequence[TraceNode], b: Sequence[TraceNode]) -> bool:
    """Whether two runs took the same steps with the same inputs and outputs."""
    return [step_signature(n) for n in a] == [step_signature(n) for n in b]
