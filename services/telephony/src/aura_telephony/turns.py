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

import grpc

from aura_common.logs import mask_phone
from aura_telephony import metrics, twiml
from aura_telephony.backends import Backends
from aura_telephony.budget import BudgetExhaustedError, TurnBudget
from aura_telephony.config import Settings
from aura_telephony.conversation import is_goodbye, parse_confidence, wants_a_person

log = logging.getLogger(__name__)

# Time kept back from the turn budget to store the finished answer for retries.
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


class Turns:
    def __init__(self, settings: Settings, backends: Backends, builder: twiml.Twiml) -> None:
        self.settings = settings
        self.backends = backends
        self.twiml = builder

    async def once(
        self, call_sid: str, key: str, produce: Callable[[TurnBudget], Awaitable[str]]
    ) -> str:
        """Run `produce` for the first delivery of `key`; replay its TwiML for the others."""
        budget = TurnBudget(self.settings.TURN_BUDGET_SECONDS)
        try:
            claim = await self.backends.claim(call_sid, key, budget)
        except DownstreamError as error:
            # Without the memory service nothing can be deduplicated; answering matters more.
            log.error("call %s: cannot claim the delivery: %s", call_sid, describe(error))
            return await produce(budget)
        if claim.state == "completed":
            log.info("call %s: replayed the answer to a retried webhook", call_sid)
            metrics.REPLAYS.inc()
            return claim.result
        if claim.state == "in_progress":
            return await self._wait_for(call_sid, key, budget)
        document = await produce(budget)
        try:
            await self.backends.complete(
                call_sid, key, document, max(_COMPLETE_SECONDS, budget.remaining())
            )
        except grpc.aio.AioRpcError as error:
            log.error("call %s: cannot store the answer for retries: %s", call_sid, describe(error))
        return document

    async def _wait_for(self, call_sid: str, key: str, budget: TurnBudget) -> str:
        """A duplicate delivery while the first is still working: wait for its answer."""
        pause = _POLL_FIRST_SECONDS
        while budget.remaining() > pause + _COMPLETE_SECONDS:
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL_MAX_SECONDS)
            try:
                claim = await self.backends.claim(call_sid, key, budget)
            except DownstreamError as error:
                log.error(
                    "call %s: cannot follow the first delivery: %s", call_sid, describe(error)
                )
                break
            if claim.state == "completed":
                metrics.REPLAYS.inc()
                return claim.result
            if claim.state == "claimed":
                break  # the first delivery's claim expired without an answer
        return self.twiml.ask(twiml.HOLDING)

    async def welcome(self, call_sid: str, params: Mapping[str, str], budget: TurnBudget) -> str:
        caller = params.get("From", "").strip()
        limit = self.settings.MAX_CALLS_PER_NUMBER_PER_HOUR
        if limit and caller:
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
                    return self.twiml.hang_up(twiml.TOO_MANY_CALLS)
        welcome = self.settings.welcome_message
        metrics.CALLS_STARTED.inc()
        metrics.ACTIVE_CALLS.inc()
        try:
            # The transcript keeps only the masked number; the full one never leaves here.
            callee = params.get("To", "")
            await self.backends.open_call(call_sid, mask_phone(caller), callee, budget)
            await self.backends.append(call_sid, [("assistant", welcome)], budget, "welcome")
        except DownstreamError as error:
            log.error("call %s: could not store the welcome: %s", call_sid, describe(error))
        return self.twiml.ask(welcome)

    async def respond(
        self, call_sid: str, params: Mapping[str, str], reprompts: int, budget: TurnBudget
    ) -> str:
        digits = params.get("Digits", "").strip()
        if digits:
            metrics.CALL_EVENTS.labels("keypad").inc()
            return self._keypress(digits)
        speech = " ".join(params.get("SpeechResult", "").split())[: self.settings.MAX_SPEECH_CHARS]
        if not speech:
            return self._reprompt(twiml.DIDNT_CATCH, reprompts)
        confidence = parse_confidence(params.get("Confidence", ""))
        if confidence is not None and confidence < self.settings.SPEECH_MIN_CONFIDENCE:
            log.info("call %s: confidence %.2f too low, asking again", call_sid, confidence)
            metrics.CALL_EVENTS.labels("low_confidence").inc()
            return self._reprompt(twiml.NOT_SURE, reprompts)
        if wants_a_person(speech):
            return self._transfer()
        if is_goodbye(speech):
            metrics.CALL_EVENTS.labels("goodbye").inc()
            await self._store(call_sid, speech, twiml.FAREWELL, budget)
            return self.twiml.hang_up(twiml.FAREWELL)
        try:
            # The budget bounds the whole turn, whatever a downstream call does with its own.
            async with asyncio.timeout(max(0.0, budget.remaining() - _COMPLETE_SECONDS)):
                history = await self.backends.history(call_sid, budget)
                answer = await self.backends.generate(call_sid, history, speech, budget)
        except DownstreamError as error:
            log.error("call %s: no answer this turn: %s", call_sid, describe(error))
            late = _late(error)
            metrics.CALL_EVENTS.labels("holding" if late else "apology").inc()
            return self.twiml.ask(twiml.HOLDING if late else twiml.APOLOGY)
        if answer.failover:
            log.warning(
                "call %s answered by fallback %s after %s",
                call_sid,
                answer.provider,
                ", ".join(f"{f.provider} {f.reason}" for f in answer.failures),
            )
        await self._store(call_sid, speech, answer.text, budget)
        metrics.CALL_EVENTS.labels("answered").inc()
        return self.twiml.ask(answer.text)

    async def _store(self, call_sid: str, said: str, answer: str, budget: TurnBudget) -> None:
        try:
            await self.backends.append(call_sid, [("user", said), ("assistant", answer)], budget)
        except DownstreamError as error:
            # The answer is ready: speaking it beats an apology, even if the turn is not stored.
            log.error("call %s: could not store the turn: %s", call_sid, describe(error))

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
