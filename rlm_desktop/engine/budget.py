"""Limits a user sets on a run, the ledger that spends against them, and model prices.

Every check happens *before* a model call: a run never starts a call it cannot afford. The
ledger is shared by the root RLM and every child RLM of one run.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlm_desktop.engine.trace import Usage

# USD per million tokens (input, output), as published by the providers on PRICES_DATED.
# Users override or extend it with a JSON file {"model": [input, output], ...}
# (`pricing.json` in the config dir, or `--pricing FILE`). Models not listed cost 0: local
# servers (Ollama, LM Studio, llama.cpp) are free to run, and a cost limit cannot be
# enforced for them; the run reports such models as unpriced.
PRICES_DATED = "2025-08-07"
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
}


class Pricing:
    """Cost of a call from its usage; unknown models are free (and listed as unpriced)."""

    def __init__(self, prices: dict[str, tuple[float, float]] | None = None) -> None:
        self.prices = dict(DEFAULT_PRICES if prices is None else prices)
        self.unpriced: set[str] = set()

    @classmethod
    def load(cls, path: Path | None) -> Pricing:
        pricing = cls()
        if path is not None and path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"{path}: expected an object of model -> [input, output]")
            for model, pair in data.items():
                if (not isinstance(pair, list | tuple) or len(pair) != 2
                        or not all(isinstance(x, int | float) for x in pair)):
                    raise ValueError(f"{path}: price of {model!r} must be [input, output]")
                pricing.prices[str(model)] = (float(pair[0]), float(pair[1]))
        return pricing

    def price_of(self, model: str) -> tuple[float, float] | None:
        if model in self.prices:
            return self.prices[model]
        # Dated snapshots ("gpt-4o-2024-08-06") and provider prefixes ("openai/gpt-4o").
        base = model.rsplit("/", 1)[-1]
        for name in sorted(self.prices, key=len, reverse=True):
            if base == name or base.startswith(name + "-20"):
                return self.prices[name]
        return None

    def cost(self, model: str, usage: Usage) -> float:
        price = self.price_of(model)
        if price is None:
            self.unpriced.add(model)
            return 0.0
        return (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1e6

    def estimate(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.price_of(model)
        if price is None:
            return 0.0
        return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6


@dataclass(frozen=True, slots=True)
class Limits:
    """What one run may spend. None means unlimited."""

    max_iterations: int = 20          # root-model turns per RLM (each child RLM has its own)
    max_depth: int = 2                # rlm_query nesting: root is depth 0
    max_subcalls: int | None = 1000   # llm_query items + rlm_query calls in the whole run
    max_tokens: int | None = None     # prompt + completion tokens in the whole run
    max_cost_usd: float | None = None
    timeout_s: float | None = None    # wall clock of the whole run
    cell_timeout_s: float = 60.0      # wall clock of one REPL cell, child calls excluded
    concurrency: int = 8              # child model calls in flight at once
    output_chars: int = 8000          # REPL output shown to the root model per turn
    request_timeout_s: float = 300.0  # one HTTP request to the model server
    max_retries: int = 4

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class BudgetExhausted(Exception):
    """A limit would be crossed by the next call; the run ends with its best answer."""

    def __init__(self, message: str, status: str = "budget_exhausted") -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Ledger:
    """What a run has spent so far; shared by every RLM in the run."""

    limits: Limits
    pricing: Pricing = field(default_factory=Pricing)
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    subcalls: int = 0
    started: float = field(default_factory=time.monotonic)
    # Prompts of calls in flight: concurrent calls must not all pass the same check.
    reserved_tokens: int = 0
    reserved_cost: float = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining_time(self) -> float | None:
        if self.limits.timeout_s is None:
            return None
        return self.limits.timeout_s - self.elapsed()

    def check_time(self) -> None:
        remaining = self.remaining_time()
        if remaining is not None and remaining <= 0:
            raise BudgetExhausted(
                f"the run's time limit of {self.limits.timeout_s:g} s was reached", "timeout")

    def check_call(self, model: str, prompt_tokens: int) -> None:
        """Before a model call: time, tokens and cost must allow at least its prompt."""
        self.check_time()
        limits = self.limits
        committed = self.usage.total_tokens + self.reserved_tokens
        if limits.max_tokens is not None and committed + prompt_tokens > limits.max_tokens:
            raise BudgetExhausted(
                f"the token limit of {limits.max_tokens:,} would be exceeded "
                f"({committed:,} used or in flight, the next call needs ~{prompt_tokens:,})")
        if limits.max_cost_usd is not None:
            next_cost = self.pricing.estimate(model, prompt_tokens, 0)
            if self.cost_usd + self.reserved_cost + next_cost > limits.max_cost_usd:
                raise BudgetExhausted(
                    f"the cost limit of ${limits.max_cost_usd:.2f} would be exceeded "
                    f"(${self.cost_usd:.4f} spent)")

    def reserve(self, model: str, prompt_tokens: int) -> tuple[int, float]:
        """Hold the prompt of a call in flight; give the returned pair to release()."""
        held = (prompt_tokens, self.pricing.estimate(model, prompt_tokens, 0))
        self.reserved_tokens += held[0]
        self.reserved_cost += held[1]
        return held

    def release(self, held: tuple[int, float]) -> None:
        self.reserved_tokens -= held[0]
        self.reserved_cost -= held[1]

    def take_subcalls(self, n: int) -> None:
        """Reserve `n` child calls, all or nothing."""
        limit = self.limits.max_subcalls
        if limit is not None and self.subcalls + n > limit:
            raise BudgetExhausted(
                f"the limit of {limit:,} child calls would be exceeded "
                f"({self.subcalls:,} made, {n:,} more asked for)")
        self.subcalls += n

    def spend(self, model: str, usage: Usage) -> float:
        cost = self.pricing.cost(model, usage)
        self.usage.add(usage)
        self.cost_usd += cost
        return cost


def estimate_tokens(text: str) -> int:
    """A server-independent estimate: about four characters per token for prose and code."""
    return max(1, len(text) // 4)
