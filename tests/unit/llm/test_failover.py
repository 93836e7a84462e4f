"""The failover router over providers written for the test (our own interface)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace

import pytest

from aura_llm.failover import NoAnswerError, Piece, StreamInterruptedError
from aura_llm.providers import Completion, Prompt, Provider, ProviderError
from aura_llm.providers.base import ToolCall
from tests.support.llm import router

PROMPT = Prompt("CA1", "Aura", "Be brief.", (), "when are you open")


class Scripted(Provider):
    """Answers (or fails) from a list, one entry per call; streams deltas when given lists."""

    model = "m1"

    def __init__(self, name: str, *script: str | list[str] | ProviderError | None) -> None:
        self.name = name
        self.script = list(script)
        self.calls = 0

    def _next(self) -> str | list[str] | ProviderError | None:
        self.calls += 1
        return self.script.pop(0) if self.script else "default answer."

    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        step = self._next()
        if isinstance(step, ProviderError):
            raise step
        if step is None:
            await asyncio.Event().wait()  # hangs
        return Completion(step if isinstance(step, str) else "".join(step or []))

    async def stream(self, prompt: Prompt, budget: float) -> AsyncGenerator[str, None]:
        step = self._next()
        if isinstance(step, ProviderError):
            raise step
        if step is None:
            await asyncio.Event().wait()
        for delta in [step] if isinstance(step, str) else step or []:
            if delta == "!CUT":
                raise ProviderError("connection", "stream cut", retryable=True)
            yield delta


def deadline(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


def rate_limited(retry_after: float | None = None) -> ProviderError:
    return ProviderError("rate_limited", "429", retryable=True, retry_after=retry_after)


def auth() -> ProviderError:
    return ProviderError("auth", "401 bad key", retryable=False)


async def test_primary_answers() -> None:
    answer = await router(Scripted("a", "Hi."), Scripted("b")).generate(PROMPT, deadline())
    assert (answer.text, answer.provider, answer.failover, answer.failures) == (
        "Hi.",
        "a",
        False,
        (),
    )


async def test_retryable_failure_is_retried_on_the_same_provider() -> None:
    primary, fallback = Scripted("a", rate_limited(), "Second try."), Scripted("b")
    answer = await router(primary, fallback).generate(PROMPT, deadline())
    assert (answer.provider, answer.text, answer.failover) == ("a", "Second try.", False)
    assert [f.reason for f in answer.failures] == ["rate_limited"]
    assert (primary.calls, fallback.calls) == (2, 0)


async def test_retries_exhausted_fail_over() -> None:
    primary, fallback = Scripted("a", rate_limited(), rate_limited()), Scripted("b", "From b.")
    answer = await router(primary, fallback, max_retries=1).generate(PROMPT, deadline())
    assert (answer.provider, answer.failover) == ("b", True)
    assert [(f.provider, f.reason) for f in answer.failures] == [
        ("a", "rate_limited"),
        ("a", "rate_limited"),
    ]


async def test_auth_errors_are_not_retried() -> None:
    primary, fallback = Scripted("a", auth()), Scripted("b", "From b.")
    answer = await router(primary, fallback, max_retries=3).generate(PROMPT, deadline())
    assert primary.calls == 1
    assert answer.provider == "b"
    assert answer.failures[0].reason == "auth"


async def test_only_auth_failures_are_reported_as_such() -> None:
    with pytest.raises(NoAnswerError) as failure:
        await router(Scripted("a", auth())).generate(PROMPT, deadline())
    assert failure.value.only_auth
    assert "401 bad key" in str(failure.value)


async def test_a_hanging_provider_is_cut_off_in_time_for_the_fallback() -> None:
    fallback = Scripted("b", "From b.")
    fallback.min_attempt_seconds = 0.3
    answer = await router(Scripted("a", None), fallback).generate(PROMPT, deadline(1.0))
    assert answer.provider == "b"
    assert [f.reason for f in answer.failures] == ["timeout"]


async def test_retry_after_longer_than_the_deadline_allows_fails_over_at_once() -> None:
    primary = Scripted("a", rate_limited(retry_after=30))
    answer = await router(primary, Scripted("b", "From b.")).generate(PROMPT, deadline(2.0))
    assert primary.calls == 1
    assert answer.provider == "b"


async def test_no_time_left_asks_nobody() -> None:
    primary = Scripted("a")
    with pytest.raises(NoAnswerError) as failure:
        await router(primary).generate(PROMPT, time.monotonic() - 1)
    assert primary.calls == 0
    assert failure.value.out_of_time


async def test_answers_are_cleaned_for_speech() -> None:
    answer = await router(Scripted("a", "**Yes!** We're open 😀 — see https://x.io")).generate(
        PROMPT, deadline()
    )
    assert answer.text == "Yes! We're open — see"
    listed = await router(Scripted("a", "Hours:\n- Mon 9 to 5\n- Sat 8 to 4")).generate(
        PROMPT, deadline()
    )
    assert listed.text == "Hours: Mon 9 to 5. Sat 8 to 4."


async def test_an_answer_with_nothing_speakable_counts_as_a_failure() -> None:
    primary, fallback = Scripted("a", "😀😀", "   "), Scripted("b", "From b.")
    answer = await router(primary, fallback).generate(PROMPT, deadline())
    assert answer.provider == "b"
    assert [f.reason for f in answer.failures] == ["bad_response", "bad_response"]


async def collect(items: AsyncIterator[Piece | ToolCall]) -> list[Piece]:
    """The pieces of a stream that has no tool calls."""
    pieces = [item async for item in items]
    assert all(isinstance(p, Piece) for p in pieces)
    return [p for p in pieces if isinstance(p, Piece)]


async def test_stream_yields_whole_sentences() -> None:
    deltas = ["We open at ", "nine on weekdays. On Sat", "urdays we open at eight. See you!"]
    pieces = await collect(router(Scripted("a", deltas)).stream(PROMPT, deadline()))
    assert [p.text for p in pieces] == [
        "We open at nine on weekdays.",
        "On Saturdays we open at eight.",
        "See you!",  # the short tail is released when the answer ends
    ]
    assert {p.provider for p in pieces} == {"a"}


async def test_stream_fails_over_before_the_first_sentence() -> None:
    primary = Scripted("a", ["We open at", "!CUT"], auth())
    fallback = Scripted("b", ["From b, the hours are nine to five."])
    pieces = await collect(router(primary, fallback).stream(PROMPT, deadline()))
    assert [p.text for p in pieces] == ["From b, the hours are nine to five."]
    assert pieces[0].failover
    assert [f.reason for f in pieces[0].failures] == ["connection", "auth"]


async def test_stream_cut_after_the_first_sentence_is_an_error_not_a_failover() -> None:
    primary = Scripted("a", ["We are open from nine until five. And on", "!CUT"])
    fallback = Scripted("b")
    received: list[str] = []

    async def listen() -> None:
        async for piece in router(primary, fallback).stream(PROMPT, deadline()):
            assert isinstance(piece, Piece)
            received.append(piece.text)

    with pytest.raises(StreamInterruptedError):
        await listen()
    assert received == ["We are open from nine until five."]
    assert fallback.calls == 0


class CallsTools(Provider):
    """A model that answers with a tool call and no words, whatever it was allowed."""

    name = "tools"
    model = "t1"

    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        return Completion("", tool_calls=(ToolCall("c1", "end_call", "{}"),))


async def test_tool_calls_count_as_an_answer_only_where_tools_may_be_called() -> None:
    allowed = await router(CallsTools()).generate(PROMPT, deadline())
    assert [c.name for c in allowed.completion.tool_calls] == ["end_call"]
    # On the last round words are owed: a bare tool call is a failure, and failover speaks.
    last_round = replace(PROMPT, may_call_tools=False)
    answer = await router(CallsTools(), Scripted("b", "From b.")).generate(last_round, deadline())
    assert (answer.provider, answer.text) == ("b", "From b.")
    streamed = await collect(
        router(CallsTools(), Scripted("b", ["From b, streamed."])).stream(last_round, deadline())
    )
    assert [(p.provider, p.text) for p in streamed] == [("b", "From b, streamed.")]
