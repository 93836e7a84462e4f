"""Metrics and spans for provider attempts: what the failover router did, and how long
each provider took."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry import trace
from prometheus_client import Counter, Histogram

from aura_common.metrics import LATENCY_BUCKETS
from aura_llm.providers.base import Completion, Provider

if TYPE_CHECKING:
    from aura_common.actions import CallAction

ATTEMPTS = Counter(
    "aura_llm_attempts",
    "Provider attempts, by provider, model and outcome (ok or the failure reason).",
    ["provider", "model", "outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "aura_llm_attempt_seconds",
    "Time one provider attempt took, until its answer (or first sentence when streaming).",
    ["provider", "model"],
    buckets=LATENCY_BUCKETS,
)
FAILOVERS = Counter(
    "aura_llm_failovers",
    "Answers that came from a fallback provider, by the provider that failed before it.",
    ["from_provider", "to_provider"],
)
TOKENS = Counter(
    "aura_llm_tokens",
    "Tokens the providers reported, by direction (input or output).",
    ["provider", "model", "direction"],
)

_tracer = trace.get_tracer("aura.llm")


@dataclass
class Attempt:
    outcome: str = "error"


@contextmanager
def attempt(provider: Provider, failover: bool) -> Iterator[Attempt]:
    """One provider attempt, as a span (provider, model, outcome, failover) and metrics."""
    result = Attempt()
    attributes: dict[str, str | bool] = {
        "aura.llm.provider": provider.name,
        "aura.llm.model": provider.model,
        "aura.llm.failover": failover,
    }
    with _tracer.start_as_current_span(
        f"llm.attempt {provider.name}", attributes=attributes
    ) as span:
        started = time.perf_counter()
        try:
            yield result
        finally:
            span.set_attribute("aura.llm.outcome", result.outcome)
            if result.outcome != "ok":
                span.set_status(trace.StatusCode.ERROR, result.outcome)
            ATTEMPTS.labels(provider.name, provider.model, result.outcome).inc()
            ATTEMPT_SECONDS.labels(provider.name, provider.model).observe(
                time.perf_counter() - started
            )


def answered(provider: Provider, completion: Completion | None, failed_before: str | None) -> None:
    if completion is not None:
        TOKENS.labels(provider.name, provider.model, "input").inc(completion.input_tokens)
        TOKENS.labels(provider.name, provider.model, "output").inc(completion.output_tokens)
    if failed_before is not None:
        FAILOVERS.labels(failed_before, provider.name).inc()


TOOL_CALLS = Counter(
    "aura_llm_tool_calls",
    "Tool calls the model made, by tool and outcome (ok, error, timeout, invalid_arguments).",
    ["tool", "outcome"],
)
TOOL_SECONDS = Histogram(
    "aura_llm_tool_seconds",
    "Time one tool call took, argument checks included.",
    ["tool"],
    buckets=LATENCY_BUCKETS,
)
ACTIONS = Counter(
    "aura_llm_actions",
    "Call actions the built-in tools decided, by kind (transfer_call, end_call, take_message).",
    ["kind"],
)


def tool_called(tool: str, outcome: str, seconds: float, action: CallAction | None) -> None:
    TOOL_CALLS.labels(tool, outcome).inc()
    TOOL_SECONDS.labels(tool).observe(seconds)
    if action is not None:
        ACTIONS.labels(action.kind).inc()
