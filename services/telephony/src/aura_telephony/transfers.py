"""Warm transfers (TRANSFER_MODE=warm), the same for every voice mode: the caller hears
that a colleague is being briefed; the transfer webhook has the llm service write who is
calling and what they want (within TRANSFER_SUMMARY_SECONDS, failing over like any turn;
past it, the caller's number and last request), keeps it with the call, and dials; the
person who answers hears it first (<Number url>, the whisper) and takes the call with 1.
If they do not, decline or hang up, the <Dial> action brings the caller back to the
assistant. Every step is a signed webhook, answered once under Twilio's retries."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aura_telephony.budget import TurnBudget
from aura_telephony.delivery import Reply
from aura_telephony.errors import DownstreamError, describe
from aura_telephony.forms import GatherResult, VoiceWebhook
from aura_telephony.model import CallEvent, Claim, Transcript, Turn
from aura_telephony.security import stream_endpoint

if TYPE_CHECKING:
    from aura_telephony.calls import Calls

log = logging.getLogger(__name__)

SUMMARY_EVENT = "transfer_summary"
ACCEPTED_EVENT = "transfer_accepted"
DECLINED_EVENT = "transfer_declined"
# What a transfer summary may hold (the memory service keeps event details this long).
MAX_SUMMARY_CHARS = 600


def spoken_number(number: str) -> str:
    """A phone number as <Say> should read it: digit by digit."""
    return " ".join(ch for ch in number if ch.isdigit()) or "an unknown number"


def latest(record: Transcript | None, kind: str) -> int:
    """The position of the call's latest event of `kind`, or -1."""
    events = record.events if record else ()
    return max((i for i, e in enumerate(events) if e.kind == kind), default=-1)


class Transfers:
    def __init__(self, calls: Calls) -> None:
        self._calls = calls
        self._settings = calls.settings
        self._backends = calls.backends

    async def brief_and_dial(self, form: VoiceWebhook, key: str, number: str, lang: str) -> str:
        """The transfer webhook: the summary, kept with the call, then the dial."""

        async def step(budget: TurnBudget, claim: Claim | None) -> Reply:
            summary = await self._summary(form, lang, budget)
            await self._calls.note(form.CallSid, [CallEvent(SUMMARY_EVENT, summary)])
            return Reply(self._calls.twiml.dial_warm(number, form.CallSid, lang))

        return await self._calls.deliveries.once(form.CallSid, key, step)

    async def _summary(self, form: VoiceWebhook, lang: str, budget: TurnBudget) -> str:
        lines = self._calls.phrasebook(lang)
        outbound = (form.Direction or "").startswith("outbound")
        number = spoken_number((form.To if outbound else form.From) or "")
        turns: tuple[Turn, ...] = ()
        try:
            turns = (await self._backends.memory.conversation(form.CallSid, budget)).turns
            seconds = self._settings.TRANSFER_SUMMARY_SECONDS
            async with asyncio.timeout(seconds):
                written = await self._backends.llm.summarize(
                    form.CallSid, turns, seconds, "handoff", lines.language
                )
        except DownstreamError as error:
            # The transfer is never held up by a model: the number and the last request.
            log.warning("call %s: no transfer summary in time: %s", form.CallSid, describe(error))
            asked = next((t.text for t in reversed(turns) if t.role == "user"), "")
            return lines.whisper_fallback(number, asked or "…")[:MAX_SUMMARY_CHARS]
        written = " ".join(written.split())
        if written.upper().startswith("CALLER"):  # no name given: the number instead
            written = f"{number}{written[6:]}"
        return written[:MAX_SUMMARY_CHARS]

    async def whisper(self, form: VoiceWebhook, key: str, call_sid: str, lang: str) -> str:
        """What the person answering hears (this webhook is their leg's, `call_sid` the
        caller's): the summary kept with the call, then how to take it."""

        async def step(budget: TurnBudget, claim: Claim | None) -> Reply:
            lines = self._calls.phrasebook(lang)
            summary = lines.whisper_fallback("a caller", "…")
            try:
                record = await self._calls.transcript(call_sid)
            except DownstreamError as error:
                log.warning("call %s: no summary to whisper: %s", call_sid, describe(error))
                record = None
            index = latest(record, SUMMARY_EVENT)
            if record is not None and index >= 0:
                summary = record.events[index].detail
            return Reply(self._calls.twiml.whisper(summary, call_sid, lang))

        return await self._calls.deliveries.once(form.CallSid, key, step)

    async def answered(self, form: GatherResult, key: str, call_sid: str) -> str:
        """The person answering pressed a key (1 takes the call), or nothing in time."""

        async def step(budget: TurnBudget, claim: Claim | None) -> Reply:
            if (form.Digits or "").strip() == "1":
                await self._calls.note(call_sid, [CallEvent(ACCEPTED_EVENT)])
                return Reply(self._calls.twiml.empty())  # the whisper ends: they are bridged
            await self._calls.note(call_sid, [CallEvent(DECLINED_EVENT)])
            return Reply(self._calls.twiml.hang_up_silently())

        return await self._calls.deliveries.once(form.CallSid, key, step)

    async def ended(self, form: VoiceWebhook, key: str, relay_url: str, lang: str) -> str:
        """The <Dial> ended: a taken call is over; otherwise the caller is back with the
        assistant, in the call's voice mode, and can leave a message."""

        async def step(budget: TurnBudget, claim: Claim | None) -> Reply:
            try:
                record = await self._calls.transcript(form.CallSid)
            except DownstreamError as error:
                log.warning("call %s: transfer outcome unknown: %s", form.CallSid, describe(error))
                record = None
            if latest(record, ACCEPTED_EVENT) > latest(record, SUMMARY_EVENT):
                return Reply(self._calls.twiml.hang_up_silently())
            line = self._calls.phrasebook(lang).NOBODY_AVAILABLE
            back = [Turn("assistant", line, language=lang)]
            twiml = self._calls.twiml
            mode = self._settings.VOICE_MODE
            if mode == "relay":
                return Reply(twiml.nobody_available(relay_url, lang), back)
            if mode == "realtime":
                return Reply(twiml.stream(*stream_endpoint(relay_url), say=line, lang=lang), back)
            return Reply(twiml.ask(line, lang=lang), back)

        return await self._calls.deliveries.once(form.CallSid, key, step)
