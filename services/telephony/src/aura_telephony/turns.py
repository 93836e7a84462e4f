"""One webhook delivery, from Twilio's parameters to the TwiML answer.

Twilio retries a webhook it got no answer to, so each delivery is first claimed in the
memory service under its idempotency key: the first delivery does the work and stores the
TwiML, a duplicate that arrives meanwhile waits for it, and a later one replays it. The
caller never hears an answer twice, and the model is asked once."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import grpc

from aura.memory.v1 import memory_service_pb2 as memory_pb
from aura_common.logs import mask_phone
from aura_telephony import metrics, twiml
from aura_telephony.backends import Backends, Role
from aura_telephony.budget import BudgetExhaustedError, TurnBudget
from aura_telephony.config import Settings
from aura_telephony.conversation import is_goodbye, parse_confidence, wants_a_person

log = logging.getLogger(__name__)

# Time kept back from the turn budget to store the finished turn and its answer.
_COMPLETE_SECONDS = 0.3
_POLL_FIRST_SECONDS = 0.05
_POLL_MAX_SECONDS = 0.25

DownstreamError = (grpc.aio.AioRpcError, BudgetExhaustedError, TimeoutError)


def describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return "turn budget exhausted"


def _late(error: BaseException) -> bool:
    return not isinstance(error, grpc.aio.AioRpcError) or (
        error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    )


def idempotency_key(target: str, header: str, params: Mapping[str, str]) -> str:
    """Twilio's I-Twilio-Idempotency-Token when sent; otherwise a digest of the request,
    which a retry repeats exactly."""
    if header:
        return f"token:{header[:200]}"
    content = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    return "digest:" + hashlib.sha256(f"{target}#{content}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Reply:
    """A delivery's TwiML and the turns it adds to the conversation."""

    document: str
    turns: list[tuple[Role, str]] = field(default_factory=list)


# The history a delivery sees: the call's newest turns, or None when memory is unreachable.
History = tuple[memory_pb.Turn, ...] | None


class Turns:
    def __init__(self, settings: Settings, backends: Backends, builder: twiml.Twiml) -> None:
        self.settings = settings
        self.backends = backends
        self.twiml = builder

    async def once(
        self,
        call_sid: str,
        key: str,
        produce: Callable[[TurnBudget, History], Awaitable[Reply]],
    ) -> str:
        """Run `produce` for the first delivery of `key`; replay its TwiML for the others.
        Claiming also fetches the history, and completing also stores the new turns, so a
        turn costs the memory service two round trips."""
        budget = TurnBudget(self.settings.TURN_BUDGET_SECONDS)
        try:
            claim = await self.backends.claim(call_sid, key, budget)
        except DownstreamError as error:
            # Nothing can be deduplicated or remembered; the delivery answers as it can.
            log.error("call %s: memory unreachable: %s", call_sid, describe(error))
            return (await produce(budget, None)).document
        if claim.state == "completed":
            log.info("call %s: replayed the answer to a retried webhook", call_sid)
            metrics.REPLAYS.inc()
            return claim.result
        if claim.state == "in_progress":
            return await self._wait_for(call_sid, key, budget)
        reply = await produce(budget, claim.history)
        try:
            seconds = max(_COMPLETE_SECONDS, budget.remaining())
            await self.backends.complete(call_sid, key, reply.document, seconds, reply.turns)
        except grpc.aio.AioRpcError as error:
            # The answer is ready: speaking it beats an apology, even if it is not stored.
            log.error("call %s: cannot store the turn: %s", call_sid, describe(error))
        return reply.document

    async def _wait_for(self, call_sid: str, key: str, budget: TurnBudget) -> str:
        """A duplicate delivery while the first is still working: wait for its answer."""
        pause = _POLL_FIRST_SECONDS
        while budget.remaining() > pause + _COMPLETE_SECONDS:
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL_MAX_SECONDS)
            try:
                claim = await self.backends.claim(call_sid, key, budget)
            except DownstreamError as error:
                log.error("call %s: lost the first delivery: %s", call_sid, describe(error))
                break
            if claim.state == "completed":
                metrics.REPLAYS.inc()
                return claim.result
            if claim.state == "claimed":
                break  # the first delivery's claim expired without an answer
        return self.twiml.ask(twiml.HOLDING)

    async def welcome(
        self, call_sid: str, params: Mapping[str, str], budget: TurnBudget, history: History
    ) -> Reply:
        caller = params.get("From", "").strip()
        limit = self.settings.MAX_CALLS_PER_NUMBER_PER_HOUR
        if limit and caller and history is not None:
            # Counted in the memory service so that every replica sees the same number.
            digest = hashlib.sha256(caller.encode()).hexdigest()[:32]
            try:
                calls = await self.backends.count(f"calls-per-number:{digest}", 3600, budget)
            except DownstreamError as error:
                log.error("call %s: cannot count calls, allowing: %s", call_sid, describe(error))
            else:
                if calls > limit:
                    log.warning(
                        "call %s from %s refused: %d calls this hour",
                        call_sid,
                        mask_phone(caller),
                        calls,
                    )
                    metrics.CALL_EVENTS.labels("refused").inc()
                    return Reply(self.twiml.hang_up(twiml.TOO_MANY_CALLS))
        welcome = self.settings.welcome_message
        metrics.CALLS_STARTED.inc()
        metrics.ACTIVE_CALLS.inc()
        if history is not None:
            try:
                # The transcript keeps only the masked number; the full one never leaves here.
                callee = params.get("To", "")
                await self.backends.open_call(call_sid, mask_phone(caller), callee, budget)
            except DownstreamError as error:
                log.error("call %s: could not record the call: %s", call_sid, describe(error))
        # The model sees its own greeting as the first turn.
        return Reply(self.twiml.ask(welcome), [("assistant", welcome)])

    async def respond(
        self,
        call_sid: str,
        params: Mapping[str, str],
        reprompts: int,
        budget: TurnBudget,
        history: History,
    ) -> Reply:
        digits = params.get("Digits", "").strip()
        if digits:
            metrics.CALL_EVENTS.labels("keypad").inc()
            return Reply(self._keypress(digits))
        speech = " ".join(params.get("SpeechResult", "").split())[: self.settings.MAX_SPEECH_CHARS]
        if not speech:
            return Reply(self._reprompt(twiml.DIDNT_CATCH, reprompts))
        confidence = parse_confidence(params.get("Confidence", ""))
        if confidence is not None and confidence < self.settings.SPEECH_MIN_CONFIDENCE:
            log.info("call %s: confidence %.2f too low, asking again", call_sid, confidence)
            metrics.CALL_EVENTS.labels("low_confidence").inc()
            return Reply(self._reprompt(twiml.NOT_SURE, reprompts))
        if wants_a_person(speech):
            return Reply(self._transfer())
        if is_goodbye(speech):
            metrics.CALL_EVENTS.labels("goodbye").inc()
            return Reply(
                self.twiml.hang_up(twiml.FAREWELL),
                [("user", speech), ("assistant", twiml.FAREWELL)],
            )
        if history is None:
            # Without the memory service the answer would ignore the conversation so far.
            metrics.CALL_EVENTS.labels("apology").inc()
            return Reply(self.twiml.ask(twiml.APOLOGY))
        try:
            # The budget bounds the whole turn, whatever a downstream call does with its own.
            async with asyncio.timeout(max(0.0, budget.remaining() - _COMPLETE_SECONDS)):
                answer = await self.backends.generate(call_sid, history, speech, budget)
        except DownstreamError as error:
            log.error("call %s: no answer this turn: %s", call_sid, describe(error))
            late = _late(error)
            metrics.CALL_EVENTS.labels("holding" if late else "apology").inc()
            return Reply(self.twiml.ask(twiml.HOLDING if late else twiml.APOLOGY))
        if answer.failover:
            log.warning(
                "call %s answered by fallback %s after %s",
                call_sid,
                answer.provider,
                ", ".join(f"{f.provider} {f.reason}" for f in answer.failures),
            )
        metrics.CALL_EVENTS.labels("answered").inc()
        return Reply(self.twiml.ask(answer.text), [("user", speech), ("assistant", answer.text)])

    def _reprompt(self, text: str, reprompts: int) -> str:
        metrics.CALL_EVENTS.labels("reprompt").inc()
        if reprompts >= self.settings.MAX_REPROMPTS:
            return self.twiml.hang_up(twiml.NO_INPUT_GOODBYE)
        return self.twiml.ask(text, reprompts + 1)

    def _keypress(self, digits: str) -> str:
        if digits.startswith("0"):
            return self._transfer()
        return self.twiml.ask(twiml.KEYPAD_HELP)

    def _transfer(self) -> str:
        metrics.CALL_EVENTS.labels("transfer").inc()
        if self.settings.TRANSFER_NUMBER:
            return self.twiml.transfer(self.settings.TRANSFER_NUMBER)
        return self.twiml.ask(twiml.NOBODY_AVAILABLE)
