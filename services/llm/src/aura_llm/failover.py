"""Failover across providers inside the caller's deadline.

Providers are tried in order (AI_PROVIDER, then AI_FALLBACK_PROVIDERS). Each attempt gets a
slice of the time that remains: at most LLM_ATTEMPT_TIMEOUT_SECONDS, and never so much that
the providers still to try lose their minimum. A retryable failure (rate limit, server
error, dropped connection, unusable answer) is retried on the same provider after a
jittered backoff, only while the deadline leaves room for it; anything else, a timeout
included, moves on to the next provider."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from aura_llm import observe
from aura_llm.providers.base import Completion, Delta, Prompt, Provider, ProviderError, ToolCall
from aura_llm.speech import SentenceSplitter, clean_for_speech

log = logging.getLogger(__name__)

# Below this an attempt cannot even open a connection; the time is better left to others.
_MIN_SLICE_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class Failure:
    provider: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    provider: str
    model: str
    failover: bool
    failures: tuple[Failure, ...]
    completion: Completion


@dataclass(frozen=True, slots=True)
class Piece:
    text: str
    provider: str
    model: str
    failover: bool
    failures: tuple[Failure, ...]  # filled on the first piece only
    ungrounded: bool = False  # states a fact none of the turn's sources holds


class NoAnswerError(Exception):
    """Every provider failed, or no time was left to ask one."""

    def __init__(self, failures: Sequence[Failure]) -> None:
        self.failures = tuple(failures)
        summary = "; ".join(f"{f.provider}: {f.reason} ({f.message})" for f in failures)
        super().__init__(summary or "no time left to ask any provider")

    @property
    def only_auth(self) -> bool:
        return bool(self.failures) and all(f.reason == "auth" for f in self.failures)

    @property
    def out_of_time(self) -> bool:
        return not self.failures or self.failures[-1].reason == "timeout"


class StreamInterruptedError(Exception):
    """A provider failed after part of its answer had already been sent."""


class FailoverRouter:
    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        attempt_timeout: float,
        max_retries: int,
        backoff: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not providers:
            raise ValueError("at least one provider is needed")
        self.providers = tuple(providers)
        self._attempt_timeout = attempt_timeout
        self._max_retries = max_retries
        self._backoff = backoff
        self._clock = clock
        self._jitter = jitter

    def _reserve_after(self, index: int) -> float:
        return sum(p.min_attempt_seconds for p in self.providers[index + 1 :])

    def _slice(self, index: int, deadline: float) -> float | None:
        """Seconds for one attempt on provider `index`, or None when too little is left."""
        budget = min(self._attempt_timeout, deadline - self._clock() - self._reserve_after(index))
        return budget if budget >= _MIN_SLICE_SECONDS else None

    def _retry_wait(
        self, index: int, retries: int, error: ProviderError, deadline: float
    ) -> float | None:
        """How long to wait before retrying the same provider, or None to move on."""
        if not error.retryable or retries >= self._max_retries:
            return None
        if error.retry_after is not None:
            wait = error.retry_after
        else:
            wait = self._jitter() * self._backoff * 2**retries  # full jitter
        needed = wait + self.providers[index].min_attempt_seconds + self._reserve_after(index)
        return wait if self._clock() + needed <= deadline else None

    async def _retry_after(
        self,
        failures: list[Failure],
        index: int,
        retries: int,
        error: ProviderError,
        deadline: float,
    ) -> bool:
        """Record a failed attempt; True, after the backoff, when the same provider is to be
        tried again, False when the next provider's turn has come."""
        provider = self.providers[index]
        failures.append(Failure(provider.name, error.reason, str(error)))
        level = logging.ERROR if error.reason == "auth" else logging.WARNING
        hint = f": check {provider.name.upper()}_API_KEY" if error.reason == "auth" else ""
        log.log(level, "provider %s failed (%s): %s%s", provider.name, error.reason, error, hint)
        wait = self._retry_wait(index, retries, error, deadline)
        if wait is None:
            return False
        await asyncio.sleep(wait)
        return True

    async def generate(self, prompt: Prompt, deadline: float) -> Answer:
        failures: list[Failure] = []
        for index, provider in enumerate(self.providers):
            retries = 0
            while (budget := self._slice(index, deadline)) is not None:
                with observe.attempt(provider, failover=index > 0) as attempt:
                    try:
                        async with asyncio.timeout(budget):
                            completion = await provider.generate(prompt, budget)
                        text = clean_for_speech(completion.text)
                        # Tool calls count only where tools may be called; else words must.
                        if not text and not (completion.tool_calls and prompt.may_call_tools):
                            raise ProviderError("bad_response", "nothing speakable", retryable=True)
                        attempt.outcome = "ok"
                        observe.answered(provider, completion, _last_failed(failures))
                        return Answer(
                            text,
                            provider.name,
                            provider.model,
                            index > 0,
                            tuple(failures),
                            completion,
                        )
                    except TimeoutError:
                        error = ProviderError(
                            "timeout", f"no answer in {budget:.2f}s", retryable=False
                        )
                    except ProviderError as caught:
                        error = caught
                    attempt.outcome = error.reason
                if not await self._retry_after(failures, index, retries, error, deadline):
                    break
                retries += 1
        raise NoAnswerError(failures)

    async def stream(
        self, prompt: Prompt, deadline: float
    ) -> AsyncGenerator[Piece | ToolCall, None]:
        """Speakable pieces of the answer, then the tool calls the model made. Failover is
        possible until the first piece (or, in an answer of tool calls only, the calls) is
        ready; after that a failure raises StreamInterruptedError."""
        failures: list[Failure] = []
        for index, provider in enumerate(self.providers):
            retries = 0
            while (budget := self._slice(index, deadline)) is not None:
                splitter = SentenceSplitter()
                deltas = provider.stream(prompt, budget)
                first: list[Delta] | None = None
                with observe.attempt(provider, failover=index > 0) as attempt:
                    try:
                        # asyncio.timeout, not wait_for: the stream must stay in this task,
                        # as HTTP clients tie a response to the task that opened it.
                        async with asyncio.timeout(budget):
                            first = await _first_pieces(deltas, splitter, prompt.may_call_tools)
                        attempt.outcome = "ok"
                    except TimeoutError:
                        error = ProviderError(
                            "timeout", f"no answer in {budget:.2f}s", retryable=False
                        )
                    except ProviderError as caught:
                        error = caught
                    if first is None:
                        attempt.outcome = error.reason
                        await deltas.aclose()
                if first is not None:
                    observe.answered(provider, None, _last_failed(failures))
                    pieces = _rest(provider, index > 0, tuple(failures), first, deltas, splitter)
                    async for piece in pieces:
                        yield piece
                    return
                if not await self._retry_after(failures, index, retries, error, deadline):
                    break
                retries += 1
        raise NoAnswerError(failures)


def _last_failed(failures: list[Failure]) -> str | None:
    return failures[-1].provider if failures else None


async def _first_pieces(
    deltas: AsyncIterator[Delta], splitter: SentenceSplitter, may_call_tools: bool
) -> list[Delta]:
    """Read deltas until at least one whole sentence is ready, or the answer ends (in
    tool calls, or a last short sentence). Tool calls where none may be made are dropped."""
    calls: list[Delta] = []
    async for delta in deltas:
        if isinstance(delta, ToolCall):
            if may_call_tools:
                calls.append(delta)
            continue
        pieces: list[Delta] = list(splitter.feed(delta))
        if pieces:
            return calls + pieces
    pieces = list(splitter.flush())
    if not pieces and not calls:
        raise ProviderError("bad_response", "nothing speakable", retryable=True)
    return pieces + calls


async def _rest(
    provider: Provider,
    failover: bool,
    failures: tuple[Failure, ...],
    first: list[Delta],
    deltas: AsyncGenerator[Delta, None],
    splitter: SentenceSplitter,
) -> AsyncIterator[Piece | ToolCall]:
    attach = [failures]  # with the first piece only

    def piece(text: str) -> Piece:
        attached = attach.pop() if attach else ()
        return Piece(text, provider.name, provider.model, failover, attached)

    for item in first:
        yield item if isinstance(item, ToolCall) else piece(item)
    try:
        async for delta in deltas:
            if isinstance(delta, ToolCall):
                yield delta
                continue
            for text in splitter.feed(delta):
                yield piece(text)
    except ProviderError as error:
        log.warning("provider %s stream interrupted (%s): %s", provider.name, error.reason, error)
        raise StreamInterruptedError(f"{provider.name} stopped mid-answer: {error}") from error
    finally:
        await deltas.aclose()
    for text in splitter.flush():
        yield piece(text)
