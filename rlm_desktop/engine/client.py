"""Model calls over the OpenAI Chat Completions protocol (OpenAI, Azure, OpenRouter, Ollama,
LM Studio, vLLM, llama.cpp): streaming, retries that honour Retry-After, usage and cost.

The openai client's own retries are switched off: ours cover streams that break halfway
too, and every retry is reported to the trace so the user sees why a step is slow.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import openai

from rlm_desktop.engine.budget import estimate_tokens
from rlm_desktop.engine.trace import Usage

Message = dict[str, Any]


class ModelError(Exception):
    """A model call failed for good; the message is meant for the user."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal  # the run cannot go on (bad key, unknown model, unreachable server)


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    usage: Usage
    model: str
    finish_reason: str | None
    retries: int = 0
    from_record: bool = False    # served by the response cache: no model was called


# attempt, delay in seconds, reason; text streamed by the failed attempt is void after it
RetryNotice = Callable[[int, float, str], None]


class ReplayMiss(ModelError):
    """Replaying a record that has no response for this request: the run stops (fatal)
    instead of asking the server."""

    def __init__(self, message: str) -> None:
        super().__init__(message, fatal=True)


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """What identifies a model call for the replay cache. `key` is the SHA-256 of the
    canonical JSON of model, messages and parameters (never the key or the endpoint),
    computed when the request is made: the caller may append to `messages` later."""

    model: str
    stream: bool
    max_tokens: int | None
    key: str

    @classmethod
    def of(cls, messages: list[Message], *, model: str, stream: bool,
           max_tokens: int | None) -> ModelRequest:
        canonical = json.dumps(
            {"model": model, "messages": messages, "stream": stream, "max_tokens": max_tokens},
            sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
        return cls(model, stream, max_tokens, digest)


class ResponseCache(Protocol):
    """Records model responses, or serves them back (sessions.replay.ReplayCache).

    `lookup` returns a recorded completion, None to call the server, or raises ReplayMiss
    when replaying and the record has nothing for this request. `save` is called with every
    completion the server sent (not with those `lookup` served)."""

    def lookup(self, request: ModelRequest) -> Completion | None: ...

    def save(self, request: ModelRequest, completion: Completion) -> None: ...


class ModelClient:
    """One client per endpoint; safe to share between concurrent calls of one event loop."""

    def __init__(self, *, base_url: str | None, api_key: str | None,
                 request_timeout: float = 300.0, max_retries: int = 4,
                 backoff: float = 0.5, cache: ResponseCache | None = None) -> None:
        self.base_url = base_url
        self.cache = cache
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "not-needed", max_retries=0,
            timeout=openai.Timeout(request_timeout, connect=min(10.0, request_timeout)),
        )
        self.max_retries = max_retries
        self.backoff = backoff
        self._key = api_key or ""
        self._stream_usage = True  # cleared when a server refuses stream_options

    async def close(self) -> None:
        await self._client.close()

    async def complete(self, messages: list[Message], *, model: str,
                       on_delta: Callable[[str], None] | None = None,
                       max_tokens: int | None = None,
                       on_retry: RetryNotice | None = None) -> Completion:
        """One chat completion; streamed when `on_delta` is given. Raises ModelError.

        With a response cache, a recorded response is served without any HTTP request (a
        streamed call gets its text as one delta) and every response received is saved."""
        if self.cache is None:
            return await self._complete(messages, model, on_delta, max_tokens, on_retry)
        request = ModelRequest.of(messages, model=model, stream=on_delta is not None,
                                  max_tokens=max_tokens)
        recorded = self.cache.lookup(request)
        if recorded is not None:
            if on_delta is not None and recorded.text:
                on_delta(recorded.text)
            return dataclasses.replace(recorded, from_record=True)
        result = await self._complete(messages, model, on_delta, max_tokens, on_retry)
        self.cache.save(request, result)
        return result

    async def _complete(self, messages: list[Message], model: str,
                        on_delta: Callable[[str], None] | None, max_tokens: int | None,
                        on_retry: RetryNotice | None) -> Completion:
        attempt = 0
        while True:
            try:
                if on_delta is not None:
                    result = await self._stream(messages, model, on_delta, max_tokens)
                else:
                    result = await self._once(messages, model, max_tokens)
                if attempt:
                    result = Completion(result.text, result.usage, result.model,
                                        result.finish_reason, attempt)
                return result
            except openai.BadRequestError as exc:
                if on_delta is not None and self._stream_usage and "stream_options" in str(exc):
                    self._stream_usage = False
                    continue
                raise ModelError(self._clean(
                    f"the server rejected the request: {_detail(exc)}")) from exc
            except openai.RateLimitError as exc:
                if _code(exc) == "insufficient_quota":
                    raise ModelError(self._clean(
                        f"the account has no quota left ({_detail(exc)}); check its billing"),
                        fatal=True) from exc
                if attempt >= self.max_retries:
                    raise ModelError(self._clean(_describe(exc, self.base_url, attempt))
                                     ) from exc
                attempt = await self._wait(exc, attempt, on_retry)
                continue
            except openai.AuthenticationError as exc:
                raise ModelError(
                    f"the server refused the API key ({_detail(exc)}); check the key in "
                    "Settings, --api-key or OPENAI_API_KEY", fatal=True) from exc
            except openai.PermissionDeniedError as exc:
                raise ModelError(self._clean(f"access denied by the server: {_detail(exc)}"),
                                 fatal=True) from exc
            except openai.NotFoundError as exc:
                raise ModelError(
                    f"model {model!r} or endpoint not found at {self.base_url or 'OpenAI'}: "
                    f"{_detail(exc)}", fatal=True) from exc
            except (openai.InternalServerError, openai.APITimeoutError,
                    openai.APIConnectionError, openai.APIResponseValidationError,
                    _BrokenStream, openai.APIStatusError) as exc:
                status = getattr(exc, "status_code", None)
                retryable = (
                    not isinstance(exc, openai.APIStatusError)
                    or status in (408, 409, 429) or (status or 0) >= 500
                )
                if not retryable or attempt >= self.max_retries:
                    raise ModelError(self._clean(_describe(exc, self.base_url, attempt)),
                                     fatal=isinstance(exc, openai.APIConnectionError)
                                     and not isinstance(exc, openai.APITimeoutError)) from exc
                attempt = await self._wait(exc, attempt, on_retry)
            except openai.OpenAIError as exc:
                raise ModelError(self._clean(f"the model client failed: {exc}"),
                                 fatal=True) from exc
            except (ValueError, TypeError, OverflowError, RuntimeError) as exc:
                # e.g. a base URL that is not a URL, or a port out of range
                raise ModelError(self._clean(
                    f"cannot use the endpoint {self.base_url!r}: {exc}"), fatal=True) from exc

    async def _wait(self, exc: BaseException, attempt: int,
                    on_retry: RetryNotice | None) -> int:
        """Sleep before the next attempt (Retry-After, else backoff); the new attempt."""
        delay = _retry_after(exc)
        if delay is None:
            delay = self.backoff * (2 ** attempt) * (0.5 + random.random())  # noqa: S311
        attempt += 1
        if on_retry is not None:
            on_retry(attempt, delay, _short(exc))
        await asyncio.sleep(min(delay, 60.0))
        return attempt

    def _clean(self, message: str) -> str:
        """Some proxies echo the key in their error bodies: never pass it on."""
        if self._key and len(self._key) >= 8:
            message = message.replace(self._key, "[API key]")
        return message

    async def _once(self, messages: list[Message], model: str,
                    max_tokens: int | None) -> Completion:
        kwargs: dict[str, Any] = {"model": model, "messages": messages}
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        try:
            response = await self._client.chat.completions.create(**kwargs)
        except openai.APIError:
            raise
        except ValueError as exc:  # a body that is not JSON
            raise _BrokenStream(f"the server sent a response that is not JSON: {exc}") from exc
        if not response.choices:
            raise _BrokenStream("the server sent a completion with no choices")
        choice = response.choices[0]
        text = choice.message.content or ""
        usage = _usage(response.usage, messages, text)
        return Completion(text, usage, response.model or model, choice.finish_reason)

    async def _stream(self, messages: list[Message], model: str,
                      on_delta: Callable[[str], None], max_tokens: int | None) -> Completion:
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "stream": True}
        if self._stream_usage:
            kwargs["stream_options"] = {"include_usage": True}
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        parts: list[str] = []
        finish: str | None = None
        reported = None
        served_model = model
        stream = await self._client.chat.completions.create(**kwargs)
        try:
            async for chunk in stream:
                if chunk.usage is not None:
                    reported = chunk.usage
                served_model = chunk.model or served_model
                for choice in chunk.choices:
                    if choice.delta is not None and choice.delta.content:
                        parts.append(choice.delta.content)
                        on_delta(choice.delta.content)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except openai.APIStatusError:
            raise
        except Exception as exc:  # the transport's errors (httpx2) and undecodable chunks
            raise _BrokenStream(f"the response stream broke off: {exc}") from exc
        finally:
            await stream.close()
        # A stream cut short fails in the transport (an incomplete chunked body); one that
        # ended cleanly without a finish_reason (some llama.cpp builds) is complete.
        text = "".join(parts)
        return Completion(text, _usage(reported, messages, text), served_model, finish)


class _BrokenStream(Exception):
    """A response that ended early or could not be read; worth retrying."""


def _usage(reported: Any, messages: list[Message], text: str) -> Usage:
    if reported is not None and getattr(reported, "prompt_tokens", None) is not None:
        return Usage(int(reported.prompt_tokens or 0), int(reported.completion_tokens or 0))
    prompt = sum(estimate_tokens(str(m.get("content") or "")) for m in messages)
    return Usage(prompt, estimate_tokens(text) if text else 0, estimated=True)


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        if "retry-after" in headers:
            value = headers["retry-after"]
            try:
                return max(0.0, float(value))
            except ValueError:
                when = email.utils.parsedate_to_datetime(value)
                return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None
    return None


def _code(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        code = inner.get("code") if isinstance(inner, dict) else None
        return str(code) if code else None
    return None


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if message:
            return f"{exc.status_code}: {message}"
    return f"{exc.status_code}: {exc.message}"


def _short(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    if isinstance(exc, openai.APIConnectionError):
        return "connection failed"
    return str(exc) or type(exc).__name__


def _describe(exc: BaseException, base_url: str | None, attempts: int) -> str:
    tries = f" (after {attempts + 1} attempts)" if attempts else ""
    where = base_url or "api.openai.com"
    if isinstance(exc, openai.RateLimitError):
        return f"the server kept answering 429 Too Many Requests{tries}"
    if isinstance(exc, openai.APITimeoutError):
        return f"the model server at {where} did not answer in time{tries}"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach the model server at {where}{tries}"
    if isinstance(exc, openai.APIStatusError):
        return f"the model server failed: {_detail(exc)}{tries}"
    if isinstance(exc, openai.APIResponseValidationError):
        return f"the model server sent a response that is not valid{tries}"
    return f"{exc}{tries}"
