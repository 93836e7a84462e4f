"""The end of a call, made to stick. A final status callback ends the call in the memory
service and queues its post-call record there; Twilio does not retry a status callback
that got 200, so when memory (or the Redis behind it) is down at that moment the work is
kept here and retried in the background, with backoff, until both are done. The record is
then delivered like any other, once things recover."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aura_common.tasks import stop
from aura_telephony import metrics
from aura_telephony.backends import Backends
from aura_telephony.budget import TurnBudget
from aura_telephony.config import Settings
from aura_telephony.errors import DownstreamError, describe
from aura_telephony.post_call import PostCallSender

log = logging.getLogger(__name__)

_FIRST_RETRY_SECONDS = 1.0
_MAX_RETRY_SECONDS = 30.0
# Hang-ups kept at most: an outage long enough to fill this is one to page about, and
# memory must not grow without bound meanwhile.
MAX_PENDING = 10_000


@dataclass
class _Hangup:
    call_sid: str
    status: str
    duration: str
    ended: bool = False
    queued: bool = False
    attempts: int = 0
    due: float = 0.0


class Hangups:
    def __init__(
        self,
        settings: Settings,
        backends: Backends,
        post_call: PostCallSender | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._backends = backends
        self._post_call = post_call
        self._clock = clock
        self._pending: dict[str, _Hangup] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        await stop(self._task)
        if self._pending:
            log.error("%d ended calls not yet recorded at shutdown", len(self._pending))

    async def record(self, call_sid: str, status: str, duration: str) -> None:
        """End the call and queue its record now, or keep trying until that is done."""
        hangup = _Hangup(call_sid, status, duration, queued=self._post_call is None)
        if await self._attempt(hangup):
            return
        if call_sid not in self._pending and len(self._pending) >= MAX_PENDING:
            oldest = next(iter(self._pending))
            log.error("call %s: dropped from the hang-up retries (full)", oldest)
            del self._pending[oldest]
        self._pending[call_sid] = hangup
        metrics.HANGUPS_PENDING.set(len(self._pending))
        self._wake.set()

    async def _attempt(self, hangup: _Hangup) -> bool:
        """One try at what is left to do; True when all is done."""
        budget = TurnBudget(self._settings.MEMORY_TIMEOUT_SECONDS)
        try:
            if not hangup.ended:
                # Counted once per call: a retried callback finds the call already ended.
                if await self._backends.memory.end_call(hangup.call_sid, hangup.status, budget):
                    metrics.CALLS_ENDED.labels(hangup.status).inc()
                hangup.ended = True
            if not hangup.queued and self._post_call is not None:
                # Once per call: the outbox takes a CallSid once.
                await self._post_call.enqueue(hangup.call_sid, hangup.status, hangup.duration)
                hangup.queued = True
        except DownstreamError as error:
            hangup.attempts += 1
            wait = min(_FIRST_RETRY_SECONDS * 2 ** (hangup.attempts - 1), _MAX_RETRY_SECONDS)
            hangup.due = self._clock() + wait
            log.error(
                "call %s: the end of the call not recorded (%s); retrying in %.0f s",
                hangup.call_sid,
                describe(error),
                wait,
            )
            return False
        if hangup.attempts:
            log.info(
                "call %s: the end of the call recorded after %d retries",
                hangup.call_sid,
                hangup.attempts,
            )
        return True

    async def _run(self) -> None:
        while True:
            now = self._clock()
            for hangup in [h for h in self._pending.values() if h.due <= now]:
                if await self._attempt(hangup):
                    del self._pending[hangup.call_sid]
            metrics.HANGUPS_PENDING.set(len(self._pending))
            due = min((h.due for h in self._pending.values()), default=None)
            self._wake.clear()
            timeout = None if due is None else max(0.05, due - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
