"""Realtime calls (VOICE_MODE=realtime): Twilio Media Streams carries the caller's audio
to us and ours back, and the llm service's Converse stream carries it to and from a
speech-to-speech model (provider-neutral; failover is the llm service's).

The caller's 20 ms frames go on in batches of REALTIME_BATCH_MS. Each piece of the
assistant's audio goes to Twilio with a `mark` behind it, so that we know how much of
each answer was played. When the model hears the caller start speaking, Twilio's buffer is
cleared at once, the model is told how much of its answer was heard (it truncates its
memory of it there), late audio of the cut answer is dropped, and the stored assistant
turn is what the caller heard, marked interrupted.

The call policy is the one gather and relay use: the caller's words (a person, goodbye)
and keys, silence, and the model's call actions decide the call; a decision that ends the
stream waits for the answer being played. The stream then closes, and Twilio asks the
<Connect> action URL what comes next: the handoff (transfer to which number, goodbye, a
handover to another replica, or gather mode when no realtime provider is left) is kept in
the memory service, so any replica can answer it."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from aura_common.actions import CallAction
from aura_common.tasks import stop
from aura_common.text import heard_part
from aura_telephony import metrics
from aura_telephony.budget import TurnBudget
from aura_telephony.calls import HANDOFF_KEY, count
from aura_telephony.errors import DownstreamError, describe
from aura_telephony.llm_client import Conversing
from aura_telephony.model import (
    CallEvent,
    Conversation,
    LiveAnswerDone,
    LiveAudio,
    LiveReady,
    LiveSpeechStarted,
    LiveSpeechStopped,
    LiveTranscript,
    Turn,
)
from aura_telephony.policy import Decision
from aura_telephony.relay import Reason, Relay, Send, SocketSession
from aura_telephony.security import ticket_call

log = logging.getLogger(__name__)
tracer = trace.get_tracer("aura.telephony.streams")

ULAW_BYTES_PER_MS = 8
# After a decision that ends the stream, the answer being played gets this long beyond
# its remaining audio for Twilio's marks to say it has been heard.
_PLAYOUT_GRACE_SECONDS = 2.0


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)


class StreamStart(_Message):
    account_sid: str = ""
    call_sid: str = Field(min_length=1, max_length=64)
    custom_parameters: dict[str, str] = Field(default_factory=dict)


@dataclass
class _Answer:
    """One answer's audio as sent to Twilio and played to the caller, and its words."""

    item_id: str
    sent_ms: int = 0
    played_ms: int = 0
    text: str = ""
    passage_ids: tuple[str, ...] = ()
    ungrounded: bool = False
    done: bool = False  # all its audio has come
    cut: bool = False  # the caller spoke over it
    stored: bool = False
    marks: list[int] = field(default_factory=list)

    @property
    def playing(self) -> bool:
        return self.played_ms < self.sent_ms and not self.cut

    @property
    def heard(self) -> bool:
        return self.done and not self.playing


class StreamSession(SocketSession):
    name = "stream"
    _events = metrics.REALTIME_EVENTS

    def __init__(self, relay: Relay, send: Send) -> None:
        super().__init__(relay, send)
        self._relay = relay
        self._calls = relay.calls
        self.stream_sid = ""
        self._conversing: Conversing | None = None
        self._listening: asyncio.Task[None] | None = None
        self._batch = bytearray()
        self._answers: dict[str, _Answer] = {}
        self._decision: Decision | None = None
        self._decided: asyncio.Task[None] | None = None
        self._idle: asyncio.Task[None] | None = None
        self._reprompts = 0
        self._caller_done_at: float | None = None
        self._provider = ""
        self._exchange: trace.Span | None = None
        self._exchange_context = otel_context.Context()
        self._answered = False  # the model answered since the caller last spoke
        self._greeting = False  # the model's first answer is the welcome, stored already
        self._timer: asyncio.Task[None] | None = asyncio.create_task(self._no_start())

    async def _no_start(self) -> None:
        await asyncio.sleep(self._settings.RELAY_SETUP_SECONDS)
        if not self.call_sid:
            log.warning("stream: no start in time; closed")
            metrics.REALTIME_EVENTS.labels("no_start").inc()
            self._close(1008)

    # --- Twilio's side --------------------------------------------------------------

    async def handle(self, raw: str) -> None:
        """One message from Twilio; malformed or unexpected ones are logged and ignored."""
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            log.warning("stream: a message that is not JSON, ignored")
            return
        if not isinstance(data, dict) or self.ended is not None:
            return
        event = data.get("event")
        try:
            if event == "start":
                await self._start(StreamStart.model_validate(data.get("start")), data)
            elif not self.call_sid:
                if event != "connected":
                    log.warning("stream: %r before start, ignored", event)
            elif event == "media":
                await self._media(data.get("media"))
            elif event == "mark":
                await self._mark(data.get("mark"))
            elif event == "dtmf":
                await self._dtmf(data.get("dtmf"))
            elif event == "stop":
                self._close(1000)
        except ValidationError:
            log.warning("stream: a malformed %r message, ignored", event)

    async def _start(self, start: StreamStart, data: dict[str, Any]) -> None:
        if self.call_sid:
            log.warning("stream call %s: a second start, ignored", self.call_sid)
            return
        account = self._settings.TWILIO_ACCOUNT_SID
        if account and start.account_sid != account:
            metrics.SIGNATURE_REJECTIONS.labels("account_mismatch").inc()
            log.warning("stream: a stream of another account refused")
            self._close(1008)
            return
        # The welcome's TwiML carried a ticket for its own call: a signed stream for one
        # call opens no conversation of another's.
        if ticket_call(start.custom_parameters.get("ticket", ""), self._settings) != start.call_sid:
            metrics.SIGNATURE_REJECTIONS.labels("call_mismatch").inc()
            log.warning("stream: a start without this call's ticket refused")
            self._close(1008)
            return
        refusal = await self._relay.admit(self, start.call_sid)
        if refusal is not None:
            metrics.REALTIME_EVENTS.labels(refusal).inc()
            log.warning("stream call %s: refused (%s)", start.call_sid, refusal)
            self._close(1008)
            return
        self.call_sid = start.call_sid
        self.stream_sid = str(data.get("streamSid") or "")
        metrics.REALTIME_STREAMS.inc()
        try:
            budget = TurnBudget(self._settings.MEMORY_TIMEOUT_SECONDS)
            conversation = await self._backends.memory.conversation(self.call_sid, budget)
        except DownstreamError as error:
            log.warning("stream call %s: no history: %s", self.call_sid, describe(error))
            conversation = Conversation()
        # A new call has only its welcome (after the recording notice, when there is
        # one): the model says it. A call handed over from another replica (or from
        # another mode) goes on from its turns.
        turns: tuple[Turn, ...] = tuple(conversation.turns)
        greeting = ""
        if turns and all(t.role == "assistant" for t in turns):
            greeting = turns[-1].text
            turns = ()  # (the notice was said by Twilio; the model greets afresh)
            self._greeting = True
        self._conversing = await self._backends.llm.converse(
            self.call_sid,
            Conversation(turns, conversation.purpose),
            greeting,
            self._settings.REALTIME_MAX_CALL_SECONDS,
        )
        self._listening = asyncio.create_task(self._listen(self._conversing))
        log.info("stream call %s connected", self.call_sid)

    async def _media(self, media: Any) -> None:
        if not isinstance(media, dict) or self._conversing is None:
            return
        try:
            audio = base64.b64decode(str(media.get("payload", "")), validate=True)
        except (binascii.Error, ValueError):
            return
        self._batch += audio
        if len(self._batch) >= self._settings.REALTIME_BATCH_MS * ULAW_BYTES_PER_MS:
            batch, self._batch = bytes(self._batch), bytearray()
            # A failure here shows in the listener, which falls back.
            with contextlib.suppress(*DownstreamError):
                await self._conversing.audio(batch)

    async def _mark(self, mark: Any) -> None:
        name = str(mark.get("name", "")) if isinstance(mark, dict) else ""
        item_id, _, ms = name.rpartition(":")
        answer = self._answers.get(item_id)
        if answer is None or answer.cut or not ms.isdigit():
            return  # a cut answer's marks come back at the clear: they were not played
        answer.played_ms = max(answer.played_ms, int(ms))
        await self._after_playing()

    async def _dtmf(self, dtmf: Any) -> None:
        digit = str(dtmf.get("digit", "")) if isinstance(dtmf, dict) else ""
        if digit:
            self._stop_waiting()
            await self._decide(self._calls.policy.pressed(digit[:1], self._lang), now=True)

    # --- the conversation's side ----------------------------------------------------

    async def _listen(self, conversing: Conversing) -> None:
        try:
            async for event in conversing.events():
                if isinstance(event, LiveAudio):
                    await self._audio(event)
                elif isinstance(event, LiveSpeechStarted):
                    await self._barge_in()
                elif isinstance(event, LiveSpeechStopped):
                    self._caller_done_at = time.perf_counter()
                    self._begin_exchange(event.trace_context)
                elif isinstance(event, LiveTranscript):
                    await self._transcript(event)
                elif isinstance(event, LiveAnswerDone):
                    answer = self._answers.setdefault(event.item_id, _Answer(event.item_id))
                    answer.done = True
                    await self._after_playing()
                elif isinstance(event, LiveReady):
                    self._ready(event)
                elif isinstance(event, CallAction):
                    await self._action(event)
                elif isinstance(event, CallEvent):
                    await self._calls.note(self.call_sid, [event])
        except DownstreamError as error:
            if self.ended is None:
                log.error("stream call %s: conversation lost: %s", self.call_sid, describe(error))
                metrics.REALTIME_EVENTS.labels("fallback").inc()
                await self.end("fallback")

    def _begin_exchange(self, carrier: dict[str, str]) -> None:
        """The exchange's trace, begun in the llm service: this side's span lasts until
        the answer's first audio leaves for Twilio; the caller's turn is stored in it."""
        self._end_exchange()
        self._exchange = tracer.start_span(
            "realtime.answer", context=propagate.extract(carrier), kind=trace.SpanKind.SERVER
        )
        self._exchange_context = trace.set_span_in_context(self._exchange)

    def _end_exchange(self) -> None:
        if self._exchange is not None:
            self._exchange.end()
            self._exchange = None

    def _ready(self, ready: LiveReady) -> None:
        if ready.failover:
            metrics.REALTIME_EVENTS.labels("failover").inc()
            log.warning("stream call %s: now served by %s", self.call_sid, ready.provider)
        self._provider = ready.provider

    async def _audio(self, audio: LiveAudio) -> None:
        received = time.perf_counter()
        answer = self._answers.setdefault(audio.item_id, _Answer(audio.item_id))
        if answer.cut:
            metrics.REALTIME_EVENTS.labels("late_audio").inc()
            return
        self._stop_waiting()
        self._answered = True
        self._end_exchange()
        if answer.sent_ms == 0 and self._caller_done_at is not None:
            metrics.REALTIME_FIRST_AUDIO.labels(self._provider or "unknown").observe(
                received - self._caller_done_at
            )
            self._caller_done_at = None
        answer.sent_ms += len(audio.ulaw) // ULAW_BYTES_PER_MS
        payload = base64.b64encode(audio.ulaw).decode()
        await self._send(
            {"event": "media", "streamSid": self.stream_sid, "media": {"payload": payload}}
        )
        mark = {"name": f"{audio.item_id}:{answer.sent_ms}"}
        await self._send({"event": "mark", "streamSid": self.stream_sid, "mark": mark})
        metrics.REALTIME_RELAY_SECONDS.observe(time.perf_counter() - received)

    async def _barge_in(self) -> None:
        """The caller started speaking: silence what plays, and keep what they heard."""
        self._stop_waiting()
        self._reprompts = 0
        self._answered = False
        playing = [a for a in self._answers.values() if a.playing]
        if playing:
            await self._send({"event": "clear", "streamSid": self.stream_sid})
            metrics.REALTIME_EVENTS.labels("barge_in").inc()
        for answer in playing:
            answer.cut = True
            if self._conversing is not None:
                with contextlib.suppress(*DownstreamError):
                    await self._conversing.played(answer.item_id, answer.played_ms)
            await self._store_answer(answer)

    async def _transcript(self, transcript: LiveTranscript) -> None:
        if transcript.role == "user":
            said = transcript.text[: self._settings.MAX_SPEECH_CHARS]
            await self._store([Turn("user", said)])
            decision = self._calls.policy.heard(said, lang=self._lang)
            if decision.next in ("transfer", "end") or decision.stops_recording:
                await self._decide(decision)
            elif decision.language:
                # The model answers in the new language by itself; the lines follow it.
                self._lang = decision.language
                metrics.CALL_LANGUAGES.labels(decision.language).inc()
            return
        answer = self._answers.setdefault(transcript.item_id, _Answer(transcript.item_id))
        answer.text = transcript.text
        answer.passage_ids, answer.ungrounded = transcript.passage_ids, transcript.ungrounded
        if answer.cut or answer.heard:
            await self._store_answer(answer)

    async def _action(self, action: CallAction) -> None:
        if action.kind == "take_message":
            key = f"stream:{self._session}:message:{self._appends}"
            budget = TurnBudget(self._settings.MEMORY_TIMEOUT_SECONDS)
            if not await self._calls.save_message(self.call_sid, action, key, budget):
                await self._say(self._calls.policy.message_line(False, "", self._lang))
            return
        await self._decide(self._calls.policy.answered("", (action,), self._lang))

    async def _after_playing(self) -> None:
        """An answer may have been heard to its end: keep it; then carry out a decision
        waiting for it, or wait for the caller."""
        for answer in self._answers.values():
            if answer.heard and answer.text:
                await self._store_answer(answer)
        if any(a.playing or not a.done for a in self._answers.values() if not a.cut):
            return
        if self._decision is not None:
            await self._enact()
        elif self.call_sid:
            self._wait_for_caller()

    # --- decisions ------------------------------------------------------------------

    async def _decide(self, decision: Decision, now: bool = False) -> None:
        """Carry out `decision` once what is playing has been heard (at once with `now`,
        or when nothing plays), within the audio left plus a grace."""
        count(decision)
        if decision.language and decision.language != self._lang:
            # The model speaks the caller's language by itself; the policy's lines follow.
            self._lang = decision.language
            metrics.CALL_LANGUAGES.labels(decision.language).inc()
        if decision.stops_recording:
            await self._calls.recordings.refuse(self.call_sid, decision.refused_by)
        if decision.next in ("ask", "model"):
            if decision.say:
                await self._say(decision.say)
            return
        self._decision = decision
        unheard = [a for a in self._answers.values() if a.playing or not a.done]
        if now or not unheard:
            await self._enact()
            return
        left = sum(a.sent_ms - a.played_ms for a in unheard) / 1000
        if self._decided is None:
            self._decided = asyncio.create_task(self._enact_after(left + _PLAYOUT_GRACE_SECONDS))

    async def _enact_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self._enact()

    async def _enact(self) -> None:
        decision, self._decision = self._decision, None
        if decision is None:
            return
        if decision.dials:
            await self.end("transfer", number=decision.number, department=decision.department)
        else:
            # The model has said its goodbye already, or the policy's line is said.
            await self.end("goodbye", say="" if self._answered else decision.say)

    async def _say(self, text: str) -> None:
        """A line of the call policy, said by the model in its own voice."""
        if self._conversing is not None and text:
            with contextlib.suppress(*DownstreamError):
                await self._conversing.say(text)

    # --- silence --------------------------------------------------------------------

    def _wait_for_caller(self) -> None:
        self._stop_waiting()
        self._idle = asyncio.create_task(self._after_silence())

    def _stop_waiting(self) -> None:
        if self._idle is not None and self._idle is not asyncio.current_task():
            self._idle.cancel()
        self._idle = None

    async def _after_silence(self) -> None:
        await asyncio.sleep(self._settings.RELAY_IDLE_SECONDS)
        decision = self._calls.policy.silent(self._reprompts, self._lang)
        if decision.reprompt:
            self._reprompts += 1
        count(decision)
        if decision.next == "end":
            await self.end("goodbye", say=decision.say)
        else:
            await self._say(decision.say)

    # --- storing and ending ---------------------------------------------------------

    async def _store_answer(self, answer: _Answer) -> None:
        if answer.stored or not answer.text:
            return
        answer.stored = True
        if self._greeting:
            self._greeting = False  # the welcome's webhook stored it as the call opened
            return
        interrupted = answer.cut and answer.played_ms < answer.sent_ms
        text = (
            heard_part(answer.text, answer.played_ms, answer.sent_ms)
            if interrupted
            else answer.text
        )
        if text:
            turn = Turn(
                "assistant",
                text,
                interrupted=interrupted,
                passage_ids=answer.passage_ids,
                ungrounded=answer.ungrounded,
            )
            await self._store([turn])

    async def _store(self, turns: list[Turn]) -> None:
        """In the exchange's trace: the caller's turn is stored as part of its answer."""
        token = otel_context.attach(self._exchange_context)
        try:
            await super()._store(turns)
        finally:
            otel_context.detach(token)

    async def end(
        self, reason: Reason, number: str = "", department: str = "", say: str = ""
    ) -> None:
        """End the stream; Twilio then asks the action URL, which continues the call as the
        handoff kept in memory says."""
        if self.ended is not None:
            return
        self.ended = reason
        self._stop_waiting()
        metrics.REALTIME_ENDINGS.labels(reason).inc()
        if reason == "transfer":
            await self._calls.note(self.call_sid, [CallEvent("transferred", department)])
        handoff = {
            "reason": reason,
            **({"number": number} if number else {}),
            **({"say": say} if say else {}),
            **({"lang": self._lang} if self._lang else {}),
        }
        try:
            await self._backends.memory.complete(
                self.call_sid,
                HANDOFF_KEY,
                json.dumps(handoff),
                self._settings.MEMORY_TIMEOUT_SECONDS,
            )
        except DownstreamError as error:
            # The action URL then reconnects the caller to a new stream.
            log.error("stream call %s: handoff not kept: %s", self.call_sid, describe(error))
        log.info("stream call %s: ends (%s)", self.call_sid, reason)
        self._close(1000)

    async def close(self) -> None:
        """The socket is gone: stop, and keep what the caller heard."""
        for task in (self._idle, self._decided, self._timer):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        if self._listening is not None:
            await stop(self._listening)
        self._end_exchange()
        if self._conversing is not None:
            self._conversing.close()
        for answer in self._answers.values():
            answer.cut = answer.cut or answer.playing  # the caller hung up on it
            await self._store_answer(answer)
        if self.call_sid:
            metrics.REALTIME_STREAMS.dec()
            if self.ended is None:
                metrics.REALTIME_ENDINGS.labels("hangup").inc()
