"""A run: the Recursive Language Model loop over one corpus and one question.

    run = Run(documents, "How many ...?", RunConfig(base_url=..., model="gpt-5"))
    run.trace.subscribe(print)
    result = run.execute_sync()        # or: await run.execute(); run.cancel() from any thread

The root model writes code; the REPL worker runs it and asks for child calls; this module
makes those calls within the shared budget, records every step in the trace and turns the
run into a RunResult with a status, an answer and citations.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rlm_desktop.corpus.document import Document
from rlm_desktop.engine import prompts
from rlm_desktop.engine.budget import BudgetExhausted, Ledger, Limits, Pricing, estimate_tokens
from rlm_desktop.engine.client import (
    Completion,
    Message,
    ModelClient,
    ModelError,
    ResponseCache,
)
from rlm_desktop.engine.frames import MAX_PROMPT_CHARS as MAX_CHILD_PROMPT_CHARS
from rlm_desktop.engine.frames import is_int
from rlm_desktop.engine.pack import CorpusPack, build_pack
from rlm_desktop.engine.repl import ReplError, ReplProcess, SandboxPolicy
from rlm_desktop.engine.trace import Trace, TraceNode, Usage

STATUSES = ("completed", "max_iterations", "budget_exhausted", "timeout", "cancelled", "error")

FALLBACK_CONTEXT_CHARS = 200_000    # text a depth-limited rlm_query passes to a plain call


@dataclass(frozen=True, slots=True)
class RunConfig:
    base_url: str | None = None
    api_key: str | None = None
    model: str = "gpt-5"
    sub_model: str | None = None     # child calls; the root model when None
    limits: Limits = field(default_factory=Limits)
    pricing: Pricing | None = None
    sandbox: SandboxPolicy = field(default_factory=SandboxPolicy)
    # Records every model response, or replays recorded ones without calling the server
    # (sessions.replay.ReplayCache).
    replay: ResponseCache | None = None

    @property
    def child_model(self) -> str:
        return self.sub_model or self.model

    def __repr__(self) -> str:  # never show the key
        return (f"RunConfig(base_url={self.base_url!r}, model={self.model!r}, "
                f"sub_model={self.sub_model!r}, limits={self.limits!r})")


@dataclass(slots=True)
class RunResult:
    answer: str
    status: str
    citations: list[dict[str, Any]]
    iterations: int
    subcalls: int
    usage: Usage
    cost_usd: float
    elapsed_s: float
    error: str | None = None
    unpriced_models: list[str] = field(default_factory=list)
    sandbox: dict[str, Any] = field(default_factory=dict)  # what confinement was achieved

    def to_json(self, trace_path: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "answer": self.answer, "status": self.status, "citations": self.citations,
            "iterations": self.iterations, "subcalls": self.subcalls,
            "usage": {"prompt_tokens": self.usage.prompt_tokens,
                      "completion_tokens": self.usage.completion_tokens,
                      "total_tokens": self.usage.total_tokens},
            "cost_usd": round(self.cost_usd, 6), "elapsed_s": round(self.elapsed_s, 3),
            "trace": trace_path, "sandbox": self.sandbox,
        }
        if self.usage.estimated:
            data["usage"]["estimated"] = True
        if self.error:
            data["error"] = self.error
        if self.unpriced_models:
            data["unpriced_models"] = self.unpriced_models
        return data


class _Stop(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class _Outcome:
    answer: str
    status: str
    citations: list[dict[str, Any]] = field(default_factory=list)
    iterations: int = 0
    error: str | None = None


class Run:
    """One question over one corpus. Not reusable: make a new Run per question."""

    def __init__(self, documents: Sequence[Document], question: str, config: RunConfig,
                 trace: Trace | None = None) -> None:
        if not question.strip():
            raise ValueError("the question is empty")
        self.documents = list(documents)
        self.question = question
        self.config = config
        self.trace = trace or Trace()
        self.ledger = Ledger(config.limits, config.pricing or Pricing())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[RunResult] | None = None
        self._cancel_requested = threading.Event()
        self._pack: CorpusPack | None = None
        self._client: ModelClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._stop: _Stop | None = None
        self._time_up = False

    # -- control ---------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the run from any thread: in-flight requests and the running cell end now."""
        self._cancel_requested.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)

    def execute_sync(self) -> RunResult:
        return asyncio.run(self.execute())

    async def execute(self) -> RunResult:
        """Run to the end and return the result; never raises for what a run can meet.
        Cancelling the caller's task cancels the run and still returns its result."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.ensure_future(self._execute())
        try:
            return await asyncio.shield(self._task)
        except asyncio.CancelledError:
            # Our caller was cancelled: cancel the run and wait for it to tidy up.
            self._task.cancel()
            return await self._task

    # -- the run ---------------------------------------------------------------------------

    async def _execute(self) -> RunResult:
        config = self.config
        limits = config.limits
        started = time.monotonic()
        root = self.trace.start("run", None, input={
            "question": self.question, "documents": len(self.documents),
            "model": config.model, "sub_model": config.child_model,
            "prompt_version": prompts.PROMPT_VERSION, "limits": limits.to_json(),
            "sandbox": config.sandbox.to_json(),
        }, model=config.model)
        outcome = _Outcome("", "error")
        self._semaphore = asyncio.Semaphore(max(1, limits.concurrency))
        rlm: _Rlm | None = None
        watchdog: asyncio.TimerHandle | None = None
        self.ledger.started = time.monotonic()
        try:
            if self._cancel_requested.is_set():
                raise asyncio.CancelledError
            self._pack = await asyncio.to_thread(build_pack, self.documents)
            self._client = ModelClient(base_url=config.base_url, api_key=config.api_key,
                                       request_timeout=limits.request_timeout_s,
                                       max_retries=limits.max_retries,
                                       cache=config.replay)
            rlm = _Rlm(self, depth=0, node=root, question=self.question, spans=None)
            remaining = self.ledger.remaining_time()
            if remaining is not None:
                watchdog = asyncio.get_running_loop().call_later(max(0.0, remaining),
                                                                 self._on_time_up)
            outcome = await rlm.solve()
        except asyncio.CancelledError:
            status = "timeout" if self._time_up else "cancelled"
            message = (f"the run's time limit of {limits.timeout_s:g} s was reached"
                       if self._time_up else "cancelled by the user")
            outcome = rlm.partial(status, message) if rlm else _Outcome("", status,
                                                                        error=message)
        except (ModelError, ReplError, OSError) as exc:
            outcome = rlm.partial("error", str(exc)) if rlm else _Outcome("", "error",
                                                                          error=str(exc))
        except Exception as exc:  # a bug must still give a result and end the trace
            message = f"internal error: {type(exc).__name__}: {exc}"
            outcome = rlm.partial("error", message) if rlm else _Outcome("", "error",
                                                                         error=message)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            with contextlib.suppress(BaseException):
                if rlm is not None:
                    await asyncio.shield(rlm.close())
                if self._client is not None:
                    await asyncio.shield(self._client.close())
            if self._pack is not None:
                self._pack.cleanup()
        # Partial answers (the model's last prose) are neutralised like FINAL answers.
        answer, _ = prompts.neutralise_answer(outcome.answer)
        result = RunResult(
            answer=answer, status=outcome.status,
            citations=self._with_paths(outcome.citations), iterations=outcome.iterations,
            subcalls=self.ledger.subcalls, usage=self.ledger.usage,
            cost_usd=self.ledger.cost_usd, elapsed_s=time.monotonic() - started,
            error=outcome.error, unpriced_models=sorted(self.ledger.pricing.unpriced),
            sandbox=dict(rlm.repl.info.get("sandbox") or {}) if rlm else {})
        self.trace.end(root, output={"answer": result.answer, "status": result.status,
                                     "citations": len(result.citations)},
                       error=outcome.error, usage=Usage(self.ledger.usage.prompt_tokens,
                                                        self.ledger.usage.completion_tokens,
                                                        self.ledger.usage.estimated),
                       cost_usd=self.ledger.cost_usd)
        return result

    def _on_time_up(self) -> None:
        self._time_up = True
        if self._task is not None:
            self._task.cancel()

    def stop_message(self, exc: BaseException) -> str:
        """Why a step ended early, for its trace node."""
        if isinstance(exc, asyncio.CancelledError):
            return "stopped: the run's time limit was reached" if self._time_up else "cancelled"
        if isinstance(exc, _Stop):
            return f"stopped: {exc}"
        return str(exc) or type(exc).__name__

    def _with_paths(self, citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Citations rebuilt from our own documents: the worker only says where (document
        index and offsets), and anything that does not fit a real document is dropped."""
        out = []
        for c in citations:
            raw = (c.get("doc_index"), c.get("start"), c.get("end"))
            if not all(is_int(v) for v in raw):
                continue
            index, start, end = (int(v or 0) for v in raw)
            if not 0 <= index < len(self.documents):
                continue
            doc = self.documents[index]
            try:
                text = doc.text
            except (OSError, UnicodeDecodeError):
                continue
            if not 0 <= start <= end <= len(text):
                continue
            location = doc.location(start)
            if c.get("kind") == "line":
                line_start, line_end = doc.index.line_span(start)
                shown = text[line_start:line_end][:500]
            else:
                shown = text[start:min(end, start + 300)]
            out.append({"document": doc.name, "path": doc.path, "page": location.page,
                        "line": location.line, "text": shown, "start": start, "end": end})
        return out

    # -- model calls (shared by every RLM of the run) --------------------------------------

    def _check(self, model: str, prompt_tokens: int) -> None:
        if self._stop is not None:
            raise self._stop
        try:
            self.ledger.check_call(model, prompt_tokens)
        except BudgetExhausted as exc:
            self._stop = _Stop(exc.status, str(exc))
            raise self._stop from None

    async def call_model(self, node: TraceNode, messages: list[Message], model: str, *,
                         stream: bool) -> Completion:
        assert self._client is not None
        prompt_tokens = sum(estimate_tokens(str(m["content"])) for m in messages)
        self._check(model, prompt_tokens)
        retries: list[dict[str, Any]] = []

        def on_retry(attempt: int, delay: float, reason: str) -> None:
            retries.append({"attempt": attempt, "delay_s": round(delay, 3), "reason": reason})
            node.extra["retries"] = retries
            if stream:
                self.trace.delta(node, "", reset=True)

        held = self.ledger.reserve(model, prompt_tokens)
        try:
            completion = await self._client.complete(
                messages, model=model, on_retry=on_retry,
                on_delta=(lambda text: self.trace.delta(node, text)) if stream else None)
        finally:
            self.ledger.release(held)
        cost = self.ledger.spend(model, completion.usage)
        node.usage, node.cost_usd = completion.usage, cost
        if completion.from_record:     # counted against the limits, but not spent now
            node.extra["from_record"] = True
        return completion

    async def child_call(self, parent: TraceNode, prompt: str, model: str,
                         index: int | None) -> str:
        """One llm_query item: its own trace node; failures become an error string."""
        assert self._semaphore is not None
        node = self.trace.start("llm_query", parent, input={"prompt": prompt, "index": index},
                                model=model)
        try:
            if len(prompt) > MAX_CHILD_PROMPT_CHARS:
                raise ModelError(f"the prompt has {len(prompt):,} characters, more than the "
                                 f"{MAX_CHILD_PROMPT_CHARS:,} a child call may take")
            async with self._semaphore:
                completion = await self.call_model(
                    node, [{"role": "user", "content": prompt}], model, stream=False)
        except ModelError as exc:
            self.trace.end(node, error=str(exc))
            if exc.fatal:
                self._stop = _Stop("error", str(exc))
                raise self._stop from exc
            return f"[error: {exc}]"
        except BaseException as exc:
            self.trace.end(node, error=self.stop_message(exc))
            raise
        self.trace.end(node, output=completion.text)
        return completion.text


class _Rlm:
    """One level of recursion: a root model and its REPL worker over a (sub-)corpus."""

    def __init__(self, run: Run, *, depth: int, node: TraceNode, question: str,
                 spans: list[list[int]] | None) -> None:
        self.run = run
        self.depth = depth
        self.node = node
        self.question = question
        self.spans = spans
        assert run._pack is not None
        self.repl = ReplProcess(run._pack.to_json(), spans, sandbox=run.config.sandbox)
        self.iterations = 0
        self.last_prose = ""
        self.messages: list[Message] = []

    async def close(self) -> None:
        await self.repl.close()

    def partial(self, status: str, message: str) -> _Outcome:
        """The best answer a run cut short can give: the model's last words, if any."""
        answer = self.last_prose.strip()
        return _Outcome(answer, status, iterations=self.iterations, error=message)

    def _describe(self) -> str:
        pack = self.run._pack
        assert pack is not None
        entries = pack.entries
        if self.spans is not None:
            chosen: dict[int, int] = {}
            for index, start, end in self.spans:
                chosen[index] = chosen.get(index, 0) + (end - start)
            entries = [{**entries[i], "chars": n} for i, n in chosen.items()]
        return prompts.describe_corpus(entries)

    async def solve(self) -> _Outcome:
        limits = self.run.config.limits
        try:
            await self.repl.start()
            # Known from here on, not only at the end: the window's status bar shows it.
            level = (self.repl.info.get("sandbox") or {}).get("level")
            if level:
                self.node.extra["sandbox_level"] = level
            self.messages = [
                {"role": "system", "content": prompts.system_prompt(limits.output_chars)},
                {"role": "user", "content": prompts.first_message(self.question,
                                                                   self._describe())},
            ]
            while self.iterations < limits.max_iterations:
                self.iterations += 1
                reply = await self._root_turn()
                outcome = await self._act(reply)
                if outcome is not None:
                    return outcome
            return await self._last_chance()
        except _Stop as stop:
            return self.partial(stop.status, str(stop))

    async def _root_turn(self, extra: str | None = None) -> str:
        run = self.run
        node = run.trace.start("root_call", self.node, input={
            "messages": len(self.messages), "last": self.messages[-1]["content"]},
            model=run.config.model, iteration=self.iterations)
        try:
            completion = await run.call_model(node, self.messages, run.config.model,
                                              stream=True)
        except ModelError as exc:
            run.trace.end(node, error=str(exc))
            raise
        except BaseException as exc:
            run.trace.end(node, error=run.stop_message(exc))
            raise
        run.trace.end(node, output=completion.text)
        self.messages.append({"role": "assistant", "content": completion.text})
        prose = prompts.parse_reply(completion.text).prose
        if prose:
            self.last_prose = prose
        return completion.text

    async def _act(self, text: str) -> _Outcome | None:
        run, limits = self.run, self.run.config.limits
        reply = prompts.parse_reply(text)
        outputs = []
        blocks = reply.code_blocks
        for number, code in enumerate(blocks, 1):
            node = run.trace.start("code", self.node, input=code, iteration=self.iterations,
                                   block=number)
            result = await self._cell(code, node)
            shown = result.stdout
            if result.error:
                shown = f"{shown}\n{result.error}" if shown else result.error
            if self.repl.events_dropped:
                node.extra["helper_calls_not_traced"] = self.repl.events_dropped
            run.trace.end(node, output=result.stdout, error=result.error)
            if result.final is not None:
                return self._finish(result.final["answer"], result.final["sources"])
            label = f"[block {number} output]" if len(blocks) > 1 else "[output]"
            outputs.append(f"{label}\n{shown or '(no output)'}")
            if result.reset and number < len(blocks):
                outputs.append(f"[blocks {number + 1} to {len(blocks)} were not run: the REPL was "
                               "restarted; run them again if they are still needed]")
                break
        # FINAL written outside code counts too (the paper's protocol), after the code ran.
        outcome, problem = await self._final_outside(reply)
        if outcome is not None:
            return outcome
        if problem:
            outputs.append(problem)
        if not outputs:
            self.messages.append({"role": "user", "content": prompts.NUDGE})
            return None
        joined = "\n\n".join(outputs)
        self.messages.append({"role": "user", "content": prompts.truncate(
            joined, limits.output_chars)})
        return None

    async def _final_outside(self, reply: prompts.Reply, status: str = "completed"
                             ) -> tuple[_Outcome | None, str | None]:
        """FINAL(...) or FINAL_VAR(name) written outside a code block: evaluated in the REPL
        (so `FINAL("3 errors", sources=hits)` keeps its citations); FINAL's argument falls
        back to plain text when it is not valid Python there."""
        if reply.final_var is not None:
            result = await self._cell(f"FINAL_VAR({reply.final_var!r})", None)
            if result.final is not None:
                return self._finish(result.final["answer"], result.final["sources"],
                                    status), None
            return None, result.error or f"FINAL_VAR({reply.final_var}) found nothing"
        if reply.final_args is None:
            return None, None
        result = await self._cell(f"FINAL({reply.final_args})", None)
        if result.final is not None:
            return self._finish(result.final["answer"], result.final["sources"], status), None
        return self._finish(reply.final_text or "", [], status), None

    async def _cell(self, code: str, node: TraceNode | None) -> Any:
        run = self.run
        parent = node or self.node

        def on_event(message: dict[str, Any]) -> None:
            kind = str(message.get("kind"))
            output = message.get("output")
            error = output.get("error") if isinstance(output, dict) else None
            run.trace.record(kind, parent, input=message.get("input"), output=output,
                             started=float(message.get("started") or time.time()),
                             ended=float(message.get("ended") or time.time()),
                             error=str(error) if error else None)

        async def on_call(message: dict[str, Any]) -> Any:
            return await self._handle_call(parent, message)

        try:
            return await self.repl.run_cell(code, timeout=run.config.limits.cell_timeout_s,
                                            on_call=on_call, on_event=on_event)
        except BaseException as exc:
            if node is not None:
                run.trace.end(node, error=run.stop_message(exc))
            raise

    async def _handle_call(self, parent: TraceNode, message: dict[str, Any]) -> Any:
        run = self.run
        kind = message.get("kind")
        if kind == "llm_query":
            prompts_ = message.get("prompts")
            if not isinstance(prompts_, list) or not all(isinstance(p, str) for p in prompts_):
                return ["[error: prompts must be strings]"]
            model = self._child_model(message.get("model"))
            if model is None:
                return [f"[error: model {message.get('model')!r} is not one of the models "
                         "configured for this run]"] * len(prompts_)
            try:
                run.ledger.take_subcalls(len(prompts_))
            except BudgetExhausted as exc:
                run._stop = _Stop(exc.status, str(exc))
                raise run._stop from None
            batched = bool(message.get("batched"))
            tasks = [asyncio.ensure_future(run.child_call(parent, p, model,
                                                          i if batched else None))
                     for i, p in enumerate(prompts_)]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:
                # One item stopped the run (budget, fatal error) or we were cancelled: the
                # others must not outlive the run.
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        if kind == "rlm_query":
            return await self._rlm_query(parent, message)
        return f"[error: unknown call {kind!r}]"

    def _child_model(self, requested: Any) -> str | None:
        config = self.run.config
        if requested is None:
            return config.child_model
        if requested in (config.model, config.child_model):
            return str(requested)
        return None

    async def _rlm_query(self, parent: TraceNode, message: dict[str, Any]) -> str:
        run = self.run
        question = str(message.get("question") or "")
        spans = message.get("spans") or []
        if not spans:
            return ("[error: rlm_query was given an empty target (no documents, hits or "
                    "chunks); pass None for the whole corpus]")
        assert run._pack is not None
        entries = run._pack.entries
        if not all(s[0] < len(entries) and s[2] <= int(entries[s[0]].get("chars") or 0)
                   for s in spans):
            return "[error: rlm_query was given a target outside the corpus]"
        try:
            run.ledger.take_subcalls(1)
        except BudgetExhausted as exc:
            run._stop = _Stop(exc.status, str(exc))
            raise run._stop from None
        node = run.trace.start("rlm_query", parent, input={
            "question": question, "target": message.get("target"), "spans": len(spans)})
        if self.depth + 1 > run.config.limits.max_depth:
            # At the depth limit the sub-question goes to a plain child call, as in the paper.
            node.extra["fallback"] = "llm_query"
            try:
                text = self._span_text(spans)
                answer = await run.child_call(node, f"{question}\n\n{text}",
                                              run.config.child_model, None)
            except BaseException as exc:
                run.trace.end(node, error=run.stop_message(exc))
                raise
            run.trace.end(node, output=answer)
            return answer
        child_run = run.trace.start("run", node, input={"question": question,
                                                        "depth": self.depth + 1})
        child = _Rlm(run, depth=self.depth + 1, node=child_run, question=question,
                     spans=[list(s) for s in spans])
        try:
            outcome = await child.solve()
        except (ModelError, ReplError) as exc:
            if isinstance(exc, ModelError) and exc.fatal:
                run.trace.end(child_run, error=str(exc))
                run.trace.end(node, error=str(exc))
                raise
            # A child that fails is the parent's problem to handle, like a failed llm_query.
            outcome = child.partial("error", str(exc))
        except BaseException as exc:
            run.trace.end(child_run, error=run.stop_message(exc))
            run.trace.end(node, error=run.stop_message(exc))
            raise
        finally:
            await asyncio.shield(child.close())
        run.trace.end(child_run, output={"answer": outcome.answer, "status": outcome.status},
                      error=outcome.error)
        run.trace.end(node, output=outcome.answer, error=outcome.error)
        if run._stop is not None:
            raise run._stop
        if outcome.status not in ("completed", "max_iterations"):
            return f"[error: the child run ended with status {outcome.status}: {outcome.error}]"
        return outcome.answer

    def _span_text(self, spans: list[list[int]]) -> str:
        docs = self.run.documents
        pieces, total = [], 0
        for index, start, end in spans:
            piece = docs[index].text[start:end]
            pieces.append(f"=== {docs[index].name} ===\n{piece}")
            total += len(piece)
            if total > FALLBACK_CONTEXT_CHARS:
                break
        return "\n".join(pieces)[:FALLBACK_CONTEXT_CHARS]

    def _finish(self, answer: str, sources: list[dict[str, Any]], status: str = "completed",
                *, forced: bool = False) -> _Outcome:
        run = self.run
        answer, neutralised = prompts.neutralise_answer(answer)
        given: dict[str, Any] = {"sources": len(sources)}
        if forced:
            given["forced"] = True
        node = run.trace.start("final", self.node, input=given)
        if neutralised:
            node.extra["remote_images_removed"] = neutralised
        run.trace.end(node, output={"answer": answer,
                                    "citations": run._with_paths(sources[:50])})
        return _Outcome(answer, status, list(sources), self.iterations)

    async def _last_chance(self) -> _Outcome:
        """Out of turns: ask once for the best answer from what has been found."""
        self.messages.append({"role": "user", "content": prompts.LAST_CHANCE})
        text = await self._root_turn()
        reply = prompts.parse_reply(text)
        for code in reply.code_blocks:  # a FINAL written in code still counts
            if "FINAL" in code:
                result = await self._cell(code, None)
                if result.final is not None:
                    return self._finish(result.final["answer"], result.final["sources"],
                                        "max_iterations", forced=True)
        outcome, _ = await self._final_outside(reply, "max_iterations")
        if outcome is not None:
            return outcome
        return self._finish(reply.prose or self.last_prose, [], "max_iterations", forced=True)
