"""The call flow: what the caller hears at each webhook. The caller's words are read here
first (goodbye, a person, the keypad, confidence) and only the rest reaches the model.
Each webhook runs once per delivery through the delivery protocol (delivery.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from aura_common.actions import CallAction
from aura_common.logs import mask_phone
from aura_telephony import metrics, phrases, twiml
from aura_telephony.backends import Backends
from aura_telephony.budget import TurnBudget
from aura_telephony.config import Settings
from aura_telephony.conversation import (
    parse_confidence,
)
from aura_telephony.delivery import COMPLETE_SECONDS, Deliveries, History, Reply
from aura_telephony.errors import DownstreamError, describe, is_late
from aura_telephony.forms import (
    GatherResult,
    RelayEnded,
    StatusCallback,
    StreamEnded,
    VoiceWebhook,
)
from aura_telephony.hangups import Hangups
from aura_telephony.model import Answer, CallEvent, Claim, Counting, Parties, Transcript, Turn
from aura_telephony.policy import CallPolicy, Decision
from aura_telephony.post_call import PostCallSender
from aura_telephony.recordings import Recordings
from aura_telephony.security import stream_endpoint
from aura_telephony.transfers import Transfers
from aura_telephony.twilio_rest import TwilioRest


@dataclass(frozen=True, slots=True)
class Placed:
    """What the answer URL of a call Aura placed says: its purpose and voicemail."""

    purpose: str
    voicemail: str = ""

    def query(self) -> str:
        """The answer URL's query, for the webhooks after it (the recording notice's)."""
        return urlencode(
            {k: v for k, v in (("purpose", self.purpose), ("voicemail", self.voicemail)) if v}
        )


log = logging.getLogger(__name__)

# Where a realtime stream keeps, in memory, what its <Connect> action URL is to do next.
HANDOFF_KEY = "stream-handoff"

# MAX_CALLS_PER_NUMBER_PER_HOUR's window: an hour from a number's first counted call.
CALL_LIMIT_WINDOW_SECONDS = 3600.0

FINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


class Calls:
    def __init__(
        self,
        settings: Settings,
        backends: Backends,
        post_call: PostCallSender | None = None,
        phrasebook: phrases.Phrasebook | None = None,
        rest: TwilioRest | None = None,
    ) -> None:
        self.settings = settings
        self.backends = backends
        self._hangups = Hangups(settings, backends, post_call)
        self.phrasebook = phrasebook or phrases.from_settings(settings)
        self.policy = CallPolicy(settings, self.phrasebook)
        self.twiml = twiml.Twiml(settings, self.phrasebook)
        holding = self.twiml.ask(self.phrasebook().HOLDING)
        self.deliveries = Deliveries(backends, settings.TURN_BUDGET_SECONDS, holding=holding)
        self.transfers = Transfers(self)
        self.recordings = Recordings(settings, backends, rest or TwilioRest(settings), self.note)

    async def incoming(
        self, form: VoiceWebhook, key: str, relay_url: str, outbound: Placed | None = None
    ) -> str:
        """A new call: the welcome (or a refusal past the per-number limit), in a <Gather>
        or, in relay mode, as ConversationRelay's greeting on the WebSocket `relay_url`.
        A call Aura placed (`outbound`, from its answer URL) greets with its purpose, or
        leaves the voicemail message when a machine answered."""
        if outbound is not None and (form.Direction or "").startswith("outbound"):

            async def answered(budget: TurnBudget, claim: Claim | None) -> Reply:
                return await self._answered(form, outbound, relay_url)

            with metrics.TURN_SECONDS.labels("welcome").time():
                return await self.deliveries.once(form.CallSid, key, answered)
        log.info("call %s from %s", form.CallSid, mask_phone(form.From or ""))

        async def welcome(budget: TurnBudget, claim: Claim | None) -> Reply:
            return await self._welcome(form, claim, relay_url)

        with metrics.TURN_SECONDS.labels("welcome").time():
            return await self.deliveries.once(
                form.CallSid, key, welcome, self._calls_from(form.From or "")
            )

    def _calls_from(self, caller: str) -> Counting | None:
        """The per-number limit's counter for a caller, when there is a limit. Counted in
        the memory service, with the welcome's claim, so that every replica sees the same
        number and a retried welcome is counted once."""
        caller = caller.strip()
        if not self.settings.MAX_CALLS_PER_NUMBER_PER_HOUR or not caller:
            return None
        digest = hashlib.sha256(caller.encode()).hexdigest()[:32]
        return Counting(f"calls-per-number:{digest}", CALL_LIMIT_WINDOW_SECONDS)

    async def gathered(self, form: GatherResult, reprompts: int, key: str, lang: str = "") -> str:
        """What the caller said or pressed at a <Gather>: the next thing they hear. `lang`
        is the call's language, from the action URL (one the deployment speaks, or the
        default)."""
        lang = self.phrasebook.find(lang) or ""

        async def answer(budget: TurnBudget, claim: Claim | None) -> Reply:
            history = claim.conversation if claim is not None else None
            return await self._respond(form, reprompts, budget, history, key, lang)

        with metrics.TURN_SECONDS.labels("speech").time():
            return await self.deliveries.once(form.CallSid, key, answer)

    async def status(self, form: StatusCallback) -> str:
        """A status callback; a final status ends the call (its transcript is kept)."""
        status = (form.CallStatus or "").strip().lower()
        log.info("call %s status %s", form.CallSid, status or "(none)")
        if status in FINAL_CALL_STATUSES:
            # Ended and queued for its record now, or as soon as memory can take it.
            await self._hangups.record(form.CallSid, status, form.CallDuration or "")
        return self.twiml.empty()

    def start(self) -> None:
        self._hangups.start()

    async def close(self) -> None:
        await self._hangups.close()

    async def transcript(self, call_sid: str) -> Transcript | None:
        """The call's whole transcript; raises a DownstreamError when memory is out."""
        return await self.backends.memory.transcript(
            call_sid, TurnBudget(self.settings.TURN_BUDGET_SECONDS)
        )

    async def relay_ended(self, form: RelayEnded, key: str, relay_url: str) -> str:
        """A relay session ended: continue the call as its handoff says."""

        async def next_step(budget: TurnBudget, claim: Claim | None) -> Reply:
            return Reply(self._after_relay(form, relay_url))

        return await self.deliveries.once(form.CallSid, key, next_step)

    def _after_relay(self, form: RelayEnded, relay_url: str) -> str:
        reason = form.handoff("reason")
        lang = self.phrasebook.find(form.handoff("lang")) or ""
        if reason == "transfer":
            # (counted and noted by the relay session as it ended) A department's number,
            # from the operator's tools file by way of our own `end` message (Twilio
            # signs this callback), or the deployment's number.
            decision = self.policy.transfer(form.handoff("number"), lang=lang)
            if decision.dials:
                return self.twiml.transfer(decision.number, lang=lang)
            return self.twiml.nobody_available(relay_url, lang)
        if reason == "handover":
            # Another replica picks the caller up; the conversation is in memory.
            return self.twiml.relay(relay_url, lang=lang)
        if reason == "goodbye":
            return self.twiml.hang_up_silently()
        if (form.SessionStatus or "").lower() == "failed":
            # The relay failed (Twilio error, our socket refused): go on turn by turn.
            log.error(
                "call %s: relay session failed (%s %s); continuing with <Gather>",
                form.CallSid,
                form.ErrorCode or "",
                form.ErrorMessage or "",
            )
            return self.twiml.ask(self.phrasebook(lang).RELAY_FAILED, lang=lang)
        return self.twiml.hang_up_silently()

    async def stream_ended(self, form: StreamEnded, key: str, relay_url: str) -> str:
        """A realtime stream ended: continue the call as its handoff says."""

        async def next_step(budget: TurnBudget, claim: Claim | None) -> Reply:
            return Reply(await self._after_stream(form, relay_url, budget))

        return await self.deliveries.once(form.CallSid, key, next_step)

    async def _after_stream(self, form: StreamEnded, relay_url: str, budget: TurnBudget) -> str:
        handoff: dict[str, object] = {}
        try:
            claim = await self.backends.memory.claim(form.CallSid, HANDOFF_KEY, budget)
            if claim.state == "completed" and claim.result:
                kept = json.loads(claim.result)
                handoff = kept if isinstance(kept, dict) else {}
                # Taken: a later stream that ends without one must not find this one.
                await self.backends.memory.complete(
                    form.CallSid, HANDOFF_KEY, "", self.settings.MEMORY_TIMEOUT_SECONDS
                )
        except (*DownstreamError, ValueError) as error:
            log.warning("call %s: no stream handoff: %s", form.CallSid, error)
        reason = str(handoff.get("reason", ""))
        lang = self.phrasebook.find(str(handoff.get("lang", ""))) or ""
        lines = self.phrasebook(lang)
        if reason == "transfer":
            decision = self.policy.transfer(str(handoff.get("number", "")), lang=lang)
            if decision.dials:
                return self.twiml.transfer(decision.number, lang=lang)
            endpoint = stream_endpoint(relay_url)
            return self.twiml.stream(*endpoint, say=lines.NOBODY_AVAILABLE, lang=lang)
        if reason == "goodbye":
            say = str(handoff.get("say", ""))
            return self.twiml.hang_up(say, lang) if say else self.twiml.hang_up_silently()
        if reason == "fallback":
            # No speech-to-speech model is left: the call goes on turn by turn.
            return self.twiml.ask(lines.RELAY_FAILED, lang=lang)
        # A handover (a draining replica), or a stream that dropped: a new stream, which
        # goes on from the conversation in memory.
        return self.twiml.stream(*stream_endpoint(relay_url))

    async def _welcome(self, form: VoiceWebhook, claim: Claim | None, relay_url: str) -> Reply:
        call_sid = form.CallSid
        caller = (form.From or "").strip()
        # Without the memory service nothing was counted, and the caller is let through.
        limit = self.settings.MAX_CALLS_PER_NUMBER_PER_HOUR
        if claim is not None and limit and claim.count > limit:
            log.warning(
                "call %s from %s refused: %d calls this hour",
                call_sid,
                mask_phone(caller),
                claim.count,
            )
            metrics.CALL_EVENTS.labels("refused").inc()
            await self.note(call_sid, [CallEvent("refused")])
            return Reply(self.twiml.hang_up(self.phrasebook().TOO_MANY_CALLS))
        welcome = self.settings.welcome_message
        metrics.CALLS_STARTED.inc()
        metrics.CALL_LANGUAGES.labels(self.phrasebook.languages[0]).inc()
        # The transcript keeps only the masked number; the full one never leaves here.
        parties = Parties(mask_phone(caller), form.To or "")
        return self._greet(welcome, relay_url, parties)

    async def _answered(self, form: VoiceWebhook, outbound: Placed, relay_url: str) -> Reply:
        """Someone or something picked up a call Aura placed."""
        answered_by = (form.AnsweredBy or "unknown").lower()
        log.info(
            "outbound call %s to %s answered by %s",
            form.CallSid,
            mask_phone(form.To or ""),
            answered_by,
        )
        # Our own number, and the masked number of the person we rang.
        parties = Parties(form.From or "", mask_phone(form.To or ""), "outbound", outbound.purpose)
        if answered_by.startswith("machine") or answered_by == "fax":
            metrics.CALL_EVENTS.labels("voicemail").inc()
            await self.note(form.CallSid, [CallEvent("voicemail", answered_by)])
            return Reply(self.twiml.voicemail(outbound.voicemail), parties=parties)
        greeting = self.settings.outbound_greeting(outbound.purpose)
        metrics.CALLS_STARTED.inc()
        return self._greet(greeting, relay_url, parties, outbound.query())

    def _greet(self, greeting: str, relay_url: str, parties: Parties, query: str = "") -> Reply:
        """A call's first words, stored with the call's parties: with recording on, the
        notice (the greeting follows at its webhook); else the greeting."""
        if self.recordings.on:
            notice = self.phrasebook().notice(self.settings.RECORDING_OPT_OUT_KEY)
            return Reply(self.twiml.notice(query), [Turn("assistant", notice)], parties)
        return replace(self._greeting(greeting, relay_url), parties=parties)

    def _greeting(self, greeting: str, relay_url: str, before: str = "") -> Reply:
        """The greeting, after `before` when given, in a <Gather> or as the relay's
        greeting; the model sees it as the first turn."""
        said = f"{before} {greeting}".strip()
        if self.settings.VOICE_MODE == "relay":
            document = self.twiml.relay(relay_url, said)
        elif self.settings.VOICE_MODE == "realtime":
            # The model says the greeting, in its own voice, as the stream opens.
            document = self.twiml.stream(*stream_endpoint(relay_url), say=before)
        else:
            # With several languages, the welcome offers the others by key.
            document = self.twiml.ask(said, offer=len(self.phrasebook.languages) > 1)
        # Two turns: a realtime model says the greeting alone (Twilio said `before`).
        first = [Turn("assistant", before)] if before else []
        return Reply(document, [*first, Turn("assistant", greeting)])

    async def consented(
        self,
        form: GatherResult,
        key: str,
        relay_url: str,
        callback_url: str,
        outbound: Placed | None = None,
    ) -> str:
        """The recording notice was heard: the caller pressed its key (no recording), or
        not (the recording starts, once); then the greeting."""
        greeting = self.settings.welcome_message
        if outbound is not None:
            greeting = self.settings.outbound_greeting(outbound.purpose)

        async def step(budget: TurnBudget, claim: Claim | None) -> Reply:
            digits = (form.Digits or "").strip()
            if digits[:1] == self.settings.RECORDING_OPT_OUT_KEY:
                decision = self.policy.pressed(digits)
                count(decision)
                await self.recordings.refuse(form.CallSid, "keypad")
                return self._greeting(greeting, relay_url, before=decision.say)
            await self.recordings.start(form.CallSid, callback_url)
            return self._greeting(greeting, relay_url)

        with metrics.TURN_SECONDS.labels("welcome").time():
            return await self.deliveries.once(form.CallSid, key, step)

    async def _respond(
        self,
        form: GatherResult,
        reprompts: int,
        budget: TurnBudget,
        history: History,
        key: str,
        lang: str,
    ) -> Reply:
        call_sid = form.CallSid
        digits = (form.Digits or "").strip()
        speech = " ".join((form.SpeechResult or "").split())[: self.settings.MAX_SPEECH_CHARS]
        lines = self.phrasebook(lang)
        if digits:
            decision = self.policy.pressed(digits, lang)
        else:
            confidence = parse_confidence(form.Confidence or "")
            decision = self.policy.heard(speech, confidence, reprompts, lang)
            if "low_confidence" in decision.events:
                log.info("call %s: confidence %.2f too low, asking again", call_sid, confidence)
        if decision.next != "model":
            return await self._render(call_sid, decision, speech, reprompts, lang)
        if history is None:
            # Without the memory service the answer would ignore the conversation so far.
            metrics.CALL_EVENTS.labels("apology").inc()
            return Reply(self.twiml.ask(lines.APOLOGY, lang=lang))
        try:
            # The budget bounds the whole turn, whatever a downstream call does with its own.
            async with asyncio.timeout(max(0.0, budget.remaining() - COMPLETE_SECONDS)):
                answer = await self.backends.llm.generate(
                    call_sid, history, speech, budget, lines.language
                )
        except DownstreamError as error:
            log.error("call %s: no answer this turn: %s", call_sid, describe(error))
            late = is_late(error)
            metrics.CALL_EVENTS.labels("holding" if late else "apology").inc()
            return Reply(self.twiml.ask(lines.HOLDING if late else lines.APOLOGY, lang=lang))
        if answer.failover:
            log.warning(
                "call %s answered by fallback %s after %s",
                call_sid,
                answer.provider,
                ", ".join(answer.failures),
            )
        metrics.CALL_EVENTS.labels("answered").inc()
        await self.note(call_sid, [use.event() for use in answer.tools_used])
        answer = self._in_knowledge_language(answer, lang)
        return await self._carry_out(call_sid, speech, answer, key, budget, lang)

    def _in_knowledge_language(self, answer: Answer, lang: str) -> Answer:
        """The local provider cannot translate: it answers in its knowledge's language
        (the deployment's first), and a caller in another language is told so first."""
        first = self.phrasebook.languages[0]
        if answer.provider != "local" or not lang or lang.split("-")[0] == first.split("-")[0]:
            return answer
        line = self.phrasebook(lang).ONLY_KNOWLEDGE_LANGUAGE
        note = line.replace("{languages}", self.phrasebook(first).name)
        return replace(answer, text=f"{note} {answer.text}".strip())

    async def _render(
        self, call_sid: str, decision: Decision, speech: str, reprompts: int, lang: str = ""
    ) -> Reply:
        """What the caller's words or keys decided (the model not asked), as TwiML."""
        count(decision)
        lang = decision.language or lang
        if decision.language:
            metrics.CALL_LANGUAGES.labels(decision.language).inc()
        heard = lang if not decision.language else ""  # the words came before the switch
        turns = [Turn("user", speech, language=heard)] if decision.keep_caller and speech else []
        if decision.dials:
            await self.note(call_sid, [CallEvent("transferred", decision.department)])
            return Reply(self.twiml.transfer(decision.number, decision.say, lang), turns)
        if decision.next == "end":
            spoken = [Turn("assistant", decision.say, language=lang)] if turns else []
            return Reply(self.twiml.hang_up(decision.say, lang), turns + spoken)
        if decision.stops_recording:
            await self.recordings.refuse(call_sid, decision.refused_by)
        reprompted = reprompts + 1 if decision.reprompt else 0
        said = decision.language or decision.stops_recording
        spoken = [Turn("assistant", decision.say, language=lang)] if said else []
        return Reply(self.twiml.ask(decision.say, reprompted, lang), turns + spoken)

    async def _carry_out(
        self,
        call_sid: str,
        speech: str,
        answer: Answer,
        key: str,
        budget: TurnBudget,
        lang: str = "",
    ) -> Reply:
        """Say the answer, then do what the model's tools decided: keep a message, put the
        caller through, end the call, or go on in another language."""
        text = answer.text
        asked_in = lang
        for index, action in enumerate(answer.actions):
            if action.kind == "take_message":
                saved = await self.save_message(call_sid, action, f"{key}:{index}", budget)
                line = self.policy.message_line(saved, text, lang)
                # Unsaved, the model's own words ("I've passed it on") would be untrue.
                text = (text or line) if saved else line
        decision = self.policy.answered(text, answer.actions, lang)
        if decision.language:
            metrics.CALL_LANGUAGES.labels(decision.language).inc()
            lang = decision.language
        count(decision)
        if decision.next == "ask" and decision.say != text:  # a transfer to nobody
            text = f"{text} {decision.say}".strip()
        turns = [Turn("user", speech, language=asked_in)]
        if text or decision.next == "end":
            said = text or decision.say
            turns.append(
                Turn(
                    "assistant",
                    said,
                    passage_ids=answer.passage_ids,
                    ungrounded=answer.ungrounded,
                    language=asked_in,
                )
            )
        if decision.dials:
            await self.note(call_sid, [CallEvent("transferred", decision.department)])
            return Reply(self.twiml.transfer(decision.number, text, lang), turns)
        if decision.next == "end":
            return Reply(self.twiml.hang_up(decision.say, lang), turns)
        return Reply(self.twiml.ask(text, lang=lang), turns)

    async def note(self, call_sid: str, events: list[CallEvent]) -> None:
        """Keep what happened on the call for its post-call record; a memory outage costs
        the record a line, never the caller a turn."""
        budget = TurnBudget(self.settings.MEMORY_TIMEOUT_SECONDS)
        try:
            for event in events:
                await self.backends.memory.record_event(call_sid, event, budget)
        except DownstreamError as error:
            log.error("call %s: could not note an event: %s", call_sid, describe(error))

    async def save_message(
        self, call_sid: str, action: CallAction, key: str, budget: TurnBudget
    ) -> bool:
        """Keep a message the caller left; False when memory could not take it."""
        try:
            await self.backends.memory.save_message(call_sid, action, key, budget)
        except DownstreamError as error:
            log.error("call %s: could not save a message: %s", call_sid, describe(error))
            return False
        metrics.CALL_EVENTS.labels("message").inc()
        return True


def count(decision: Decision) -> None:
    """Count the call events a decision stands for."""
    for event in decision.events:
        metrics.CALL_EVENTS.labels(event).inc()
