"""Realtime mode's test pieces: the vendor fakes (aura_dev.fake_realtime) on a loop of
their own, for stacks of real processes, and waiting on state in async tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from aura_dev.fake_realtime import FakeGeminiLive, FakeOpenAIRealtime, Script
from aura_phone.media import StreamPlayer, StreamTwiml, silence_ulaw, tone_ulaw
from aura_phone.twilio import Twilio
from tests.support.fake_vendors import serving_in_thread

Fake = TypeVar("Fake", FakeOpenAIRealtime, FakeGeminiLive)
T = TypeVar("T")


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


class LiveStream:
    """A realtime call played on an event loop of its own, for tests that are not async
    (the observability scenario): it asks a question, talks over the long answer, and
    stays live until closed, as calls are when Prometheus looks."""

    def __init__(self, base_url: str, twilio: Twilio, call_sid: str, ticket: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.player = StreamPlayer(base_url, twilio, call_sid)
        url = base_url.replace("http", "ws", 1) + "/api/voice/stream"
        self._run(self.player.open(StreamTwiml(url, {"ticket": ticket})))

    def _run(self, work: Coroutine[Any, Any, T], seconds: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=seconds)

    def ask_and_interrupt(self) -> None:
        async def play() -> None:
            player = self.player
            await until(lambda: player.playback.received_ms > 0 and not player.playing)
            await player.say("tell me everything")
            await until(lambda: player.playing, what="the answer playing")
            await player.speak(tone_ulaw(300) + silence_ulaw(700))
            await until(lambda: player.playback.clears > 0, what="the barge-in")

        self._run(play())

    def close(self) -> None:
        self._run(self.player.hang_up())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
