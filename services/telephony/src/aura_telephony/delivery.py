"""Twilio's webhook delivery protocol: claim → produce → complete.

Twilio retries a webhook it got no answer to, so each delivery is first claimed in the
memory service under its idempotency key: the first delivery does the work and stores the
TwiML, a duplicate that arrives meanwhile waits for it, and a later one replays it. The
caller never hears an answer twice, and the model is asked once. What a delivery answers
is the call flow's business (calls.py); this module only makes it happen once."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aura_telephony import metrics
from aura_telephony.backends import Backends
from aura_telephony.budget import TurnBudget
from aura_telephony.errors import DownstreamError, ServiceError, describe
from aura_telephony.model import Claim, Conversation, Counting, Parties, Turn

log = logging.getLogger(__name__)

# Time kept back from the turn budget to store the finished turn and its answer.
COMPLETE_SECONDS = 0.3
_POLL_FIRST_SECONDS = 0.05
_POLL_MAX_SECONDS = 0.25


def idempotency_key(target: str, header: str, params: Mapping[str, str]) -> str:
    """Twilio's I-Twilio-Idempotency-Token when sent; otherwise a digest of the request,
    which a retry repeats exactly."""
    if header:
        return f"token:{header[:200]}"
    content = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    return "digest:" + hashlib.sha256(f"{target}#{content}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Reply:
    """A delivery's TwiML and the turns it adds to the conversation; a welcome's also the
    call's parties, stored with them."""

    document: str
    turns: list[Turn] = field(default_factory=list)
    parties: Parties | None = None


# What a turn sees of the call: its newest turns and purpose, or None when memory is
# unreachable.
History = Conversation | None
# What produces a delivery's reply, given the new claim (None when memory is unreachable).
Produce = Callable[[TurnBudget, Claim | None], Awaitable[Reply]]


class Deliveries:
    def __init__(self, backends: Backends, budget_seconds: float, holding: str) -> None:
        self._backends = backends
        self._budget_seconds = budget_seconds
        self._holding = holding  # the TwiML a duplicate gets when the first never finishes

    async def once(
        self, call_sid: str, key: str, produce: Produce, counting: Counting | None = None
    ) -> str:
        """Run `produce` for the first delivery of `key`; replay its TwiML for the others.
        With `counting`, the first delivery's claim also counts in that counter.
        Claiming also fetches the conversation, and completing also stores the new turns (and
        a welcome's parties), so a turn costs the memory service two round trips. A claim is
        a lease no longer than a turn: if the replica holding it dies, a retry after it
        lapses does the work."""
        budget = TurnBudget(self._budget_seconds)
        pause = _POLL_FIRST_SECONDS
        while True:
            try:
                claim = await self._backends.memory.claim(call_sid, key, budget, counting)
            except DownstreamError as error:
                # Nothing can be deduplicated or remembered; the delivery answers as it can.
                log.error("call %s: memory unreachable: %s", call_sid, describe(error))
                return (await produce(budget, None)).document
            if claim.state == "completed":
                log.info("call %s: replayed the answer to a retried webhook", call_sid)
                metrics.REPLAYS.inc()
                return claim.result
            if claim.state == "claimed":
                break
            # A duplicate while another delivery works: wait for its answer, or for its
            # lease to lapse (the replica died), whichever comes first.
            if budget.remaining() <= pause + COMPLETE_SECONDS:
                return self._holding
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL_MAX_SECONDS)
        reply = await produce(budget, claim)
        try:
            seconds = max(COMPLETE_SECONDS, budget.remaining())
            await self._backends.memory.complete(
                call_sid, key, reply.document, seconds, reply.turns, reply.parties
            )
        except ServiceError as error:
            # The answer is ready: speaking it beats an apology, even if it is not stored.
            log.error("call %s: cannot store the turn: %s", call_sid, describe(error))
        return reply.document
