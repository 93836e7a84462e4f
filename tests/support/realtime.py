"""Realtime mode's test pieces: the vendor fakes (aura_dev.fake_realtime) on a loop of
their own, for stacks of real processes, and waiting on state in async tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from aura_dev.fake_realtime import FakeGeminiLive, FakeOpenAIRealtime, Script
from tests.support.fake_vendors import serving_in_thread

Fake = TypeVar("Fake", FakeOpenAIRealtime, FakeGeminiLive)


class _Served:
    """A realtime fake as serving_in_thread runs one."""

    def __init__(self, fake: FakeOpenAIRealtime | FakeGeminiLive) -> None:
        self.fake = fake

    async def start(self) -> str:
        await self.fake.start()
        return self.fake.url

    async def stop(self) -> None:
        await self.fake.close()


@contextmanager
def realtime_fake(fake: Fake) -> Iterator[Fake]:
    with serving_in_thread(_Served(fake)):
        yield fake


def fresh(script: Script) -> None:
    """Forget what earlier tests left in a module's shared script."""
    script.rules.clear()
    script.transcripts.clear()
    script.fail_next_connects = 0
    script.drop_after_words = script.silent_after_words = script.go_away_after_words = ""


async def until(condition: Callable[[], bool], seconds: float = 20.0, what: str = "") -> None:
    """Wait until `condition` holds, for what another process does on its own schedule."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:.0f}s: {what or condition}")
        await asyncio.sleep(0.05)
