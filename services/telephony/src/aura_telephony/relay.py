"""ConversationRelay sessions: Twilio does speech recognition, text-to-speech and barge-in
detection, and exchanges text with us over a WebSocket (protocol facts in the README).

Each final prompt goes through the same call policy as gather mode (goodbye, a person,
the keypad), then to `llm.GenerateStream`; every sentence leaves as a `text` token the
moment it arrives. An answer is stored only once we know what the caller heard: all of it
when they speak next, or only `utteranceUntilInterrupt`, marked interrupted, when they cut
it short. An interrupt or a newer prompt cancels the answer end to end (the gRPC stream,
and in the llm service the vendor's HTTP stream). Nothing a session receives can take
down another: every message is parsed defensively and every failure becomes speech."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from aura_common.actions import CallAction
from aura_common.logs import mask_phone
from aura_common.tasks import stop
from aura_common.text import xml_safe
from aura_telephony import metrics
from aura_telephony.budget import TurnBudget
from aura_telephony.calls import Calls, count
from aura_telephony.delivery import COMPLETE_SECONDS
from aura_telephony.errors import DownstreamError, describe, is_late
from aura_telephony.model import CallEvent, Sentence, ToolRunning, Turn
from aura_telephony.phrases import Phrases
from aura_telephony.policy import Decision

log = logging.getLogger(__name__)
tracer = trace.get_tracer("aura.telephony.relay")

Reason = Literal["goodbye", "transfer", "handover", "fallback"]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class SocketSession:
    """What a call's WebSocket session does, relay's or a realtime stream's: send to
    Twilio within RELAY_SEND_SECONDS (a peer that stops reading closes the session), ask
    the route to close the socket (`closing`, with `close_code`), and store the call's
    turns in its language, each append keyed so that a retry is applied once."""

    name = "socket"  # for logs and append keys
    _events: Counter = metrics.RELAY_EVENTS  # where a stalled peer is counted

    def __init__(self, relay: Relay, send: Send) -> None:
        self._settings = relay.settings
        self._backends = relay.backends
        self._session = secrets.token_hex(8)  # keys this session's appends
        self._appends = 0
        self._lang = ""  # the call's language; empty: the first
        self._send_raw = send
        self._send_lock = asyncio.Lock()
        self.call_sid = ""
        self.ended: Reason | None = None
        self.closing = asyncio.Event()
        self.close_code = 1000

    def _close(self, code: int) -> None:
        """Close the socket (the route does, as soon as this is set)."""
        if not self.closing.is_set():
            self.close_code = code
            self.closing.set()

    async def handle(self, raw: str) -> None:
        """One message from Twilio."""
        raise NotImplementedError

    async def _store(self, turns: list[Turn]) -> None:
        if not turns:
            return
        turns = [replace(t, language=t.language or self._lang) for t in turns]
        self._appends += 1
        key = f"{self.name}:{self._session}:{self._appends}"
        try:
            budget = TurnBudget(self._settings.MEMORY_TIMEOUT_SECONDS)
            await self._backends.memory.append(self.call_sid, turns, key, budget)
        except DownstreamError as error:
            log.error(
                "%s call %s: cannot store the turn: %s", self.name, self.call_sid, describe(error)
            )

    async def end(self, reason: Reason) -> None:
        """End the call's session; Twilio then asks the action URL what comes next."""
        raise NotImplementedError

    async def close(self) -> None:
        """The socket is gone."""
        raise NotImplementedError

    async def _send(self, message: dict[str, Any]) -> None:
        if self.closing.is_set():
            return
        try:
            async with self._send_lock, asyncio.timeout(self._settings.RELAY_SEND_SECONDS):
                await self._send_raw(message)
        except TimeoutError:
            # A client that does not read would hold this session (and a drain) forever.
            log.warning(
                "%s call %s: Twilio's side takes no messages; closing", self.name, self.call_sid
            )
            self._events.labels("stalled").inc()
            self._close(1011)
        except Exception:  # noqa: S110 - the socket may already be gone; the route notices
            pass


class _Message(BaseModel):
    """Twilio's camelCase fields; unknown ones are ignored, as Twilio adds new ones."""

    model_config = ConfigDict(extra="ignore", alias_generator=to_camel)


class Setup(_Message):
    call_sid: str = Field(min_length=1, max_length=64)
    account_sid: str = ""
    caller: str = Field(default="", alias="from")
    to: str = ""
    custom_parameters: dict[str, str] = Field(default_factory=dict)


class Prompt(_Message):
    voice_prompt: str
    last: bool = True
    lang: str = ""  # the language the recogniser heard (with detection, it may change)


class Dtmf(_Message):
    digit: str


class Interrupt(_Message):
    utterance_until_interrupt: str = ""


@dataclass
class _Answer:
    """The answer to one prompt, while we do not yet know what the caller heard of it."""

    user: str
    spoken: list[str] = field(default_factory=list)
    done: bool = False  # every sentence was sent
    filled: bool = False  # the filler line was said
    actions: list[CallAction] = field(default_factory=list)
    passage_ids: tuple[str, ...] = ()
    ungrounded: bool = False


# After our `end`, Twilio closes the socket; one that is still open this much later is
# closed by us, so that it neither holds the pod nor counts as a live session.
_END_GRACE_SECONDS = 2.0


class RelaySession(SocketSession):
    name = "relay"

    def __init__(self, relay: Relay, send: Send, issued_for: str) -> None:
        super().__init__(relay, send)
        self._relay = relay
        self.issued_for = issued_for  # the call whose welcome issued this socket's URL
        self._answer: _Answer | None = None
        self._answering: asyncio.Task[None] | None = None
        self._idle: asyncio.Task[None] | None = None
        self._reprompts = 0
        self._book = relay.calls.phrasebook
        self._timer: asyncio.Task[None] | None = asyncio.create_task(
            self._close_after(self._settings.RELAY_SETUP_SECONDS, 1008, "no_setup")
        )

    async def _close_after(self, seconds: float, code: int, event: str) -> None:
        await asyncio.sleep(seconds)
        if event == "no_setup" and self.call_sid:
            return
        if event == "ended":
            log.info("relay call %s: socket still open after the end; closed", self.call_sid)
        else:
            log.warning("relay call %s: socket closed (%s)", self.call_sid or "-", event)
            metrics.RELAY_EVENTS.labels(event).inc()
        self._close(code)

    # --- the message loop -----------------------------------------------------------

    async def handle(self, raw: str) -> None:
        """One message from Twilio. Malformed or unexpected ones are logged and ignored."""
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):  # deeply nested arrays exhaust the parser
            log.warning("relay: a message that is not JSON, ignored")
            return
        if not isinstance(data, dict):
            log.warning("relay: a message that is not a JSON object, ignored")
            return
        kind = data.get("type")
        if self.ended is not None:
            return
        try:
            if kind == "setup":
                await self._setup(Setup.model_validate(data))
            elif not self.call_sid:
                log.warning("relay: %r before setup, ignored", kind)
            elif kind == "prompt":
                await self._prompt(Prompt.model_validate(data))
            elif kind == "dtmf":
                await self._dtmf(Dtmf.model_validate(data))
            elif kind == "interrupt":
                await self._interrupted(Interrupt.model_validate(data))
            elif kind == "error":
                description = data.get("description")
                log.warning("relay call %s: Twilio reports: %s", self.call_sid, description)
            elif kind != "info":
                log.info("relay call %s: unknown message type %r ignored", self.call_sid, kind)
        except ValidationError as error:
            fields = ", ".join(".".join(map(str, e["loc"])) for e in error.errors())
            log.warning("relay: malformed %r message (%s), ignored", kind, fields)

    async def close(self) -> None:
        """The socket is gone: stop working, and keep what the caller heard."""
        for task in (self._idle, self._answering, self._timer):
            if task is not None:
                task.cancel()
        await self._settle()
        if self.ended is None and self.call_sid:
            metrics.RELAY_ENDINGS.labels("hangup").inc()

    # --- what Twilio tells us -------------------------------------------------------

    async def _setup(self, setup: Setup) -> None:
        if self.call_sid:
            log.warning("relay call %s: a second setup, ignored", self.call_sid)
            return
        account = self._settings.TWILIO_ACCOUNT_SID
        if account and setup.account_sid != account:
            # The upgrade was signed, but for a call of another account: not ours to serve.
            metrics.SIGNATURE_REJECTIONS.labels("account_mismatch").inc()
            log.warning("relay: a session of another account refused")
            self._close(1008)
            return
        if setup.call_sid != self.issued_for:
            # A URL issued for one call serves that call only.
            metrics.SIGNATURE_REJECTIONS.labels("call_mismatch").inc()
            log.warning("relay: a setup for another call than the URL's refused")
            self._close(1008)
            return
        refusal = await self._relay.admit(self, setup.call_sid)
        if refusal is not None:
            metrics.RELAY_EVENTS.labels(refusal).inc()
            log.warning("relay call %s: session refused (%s)", setup.call_sid, refusal)
            self._close(1008)
            return
        self.call_sid = setup.call_sid
        # A call handed over in another language than the first goes on in it.
        self._lang = self._book.find(setup.custom_parameters.get("lang", "")) or ""
        log.info("relay call %s from %s connected", self.call_sid, mask_phone(setup.caller))
        self._wait_for_caller()  # the welcome greeting is playing

    async def _prompt(self, prompt: Prompt) -> None:
        self._stop_waiting()
        if not prompt.last:
            return  # a partial: the caller is still speaking
        said = " ".join(prompt.voice_prompt.split())[: self._settings.MAX_SPEECH_CHARS]
        if not said:
            return
        self._reprompts = 0
        if self._answering is not None and not self._answering.done():
            metrics.RELAY_EVENTS.labels("preemption").inc()
        await self._settle()
        heard_in = self._book.find(prompt.lang) if prompt.lang else None
        if heard_in and heard_in != self._language:
            # The recogniser detected another of the call's languages: answer in it.
            await self._switch(heard_in)
        decision = self._relay.calls.policy.heard(said, lang=self._lang)
        if decision.next == "model":
            self._answering = asyncio.create_task(self._respond(said))
        else:
            await self._enact(decision, said)

    async def _dtmf(self, dtmf: Dtmf) -> None:
        self._stop_waiting()
        await self._settle()
        await self._enact(self._relay.calls.policy.pressed(dtmf.digit, self._lang))

    async def _enact(self, decision: Decision, said: str = "") -> None:
        """What the caller's words or keys decided (the model not asked), as messages."""
        count(decision)
        caller = [Turn("user", said)] if decision.keep_caller and said else []
        if decision.dials:
            await self._store(caller)
            await self.end("transfer", number=decision.number, department=decision.department)
        elif decision.next == "end":
            # The line and the end leave together; the turns are stored after.
            await self._say(decision.say)
            await self.end("goodbye")
            await self._store([*caller, Turn("assistant", decision.say)] if caller else [])
        else:
            if decision.stops_recording:
                await self._relay.calls.recordings.refuse(self.call_sid, decision.refused_by)
                caller.append(Turn("assistant", decision.say))
            await self._store(caller)
            if decision.language:
                await self._switch(decision.language)
            await self._say(decision.say)
            self._wait_for_caller()

    async def _interrupted(self, interrupt: Interrupt) -> None:
        if self._answer is None:
            return  # the welcome greeting, cut short: nothing of ours to correct
        metrics.RELAY_EVENTS.labels("interruption").inc()
        await self._settle(heard=interrupt.utterance_until_interrupt)

    # --- answering ------------------------------------------------------------------

    async def _respond(self, said: str) -> None:
        # Each prompt is a trace of its own (not a child of the long-lived WebSocket), the
        # gRPC calls to memory and llm beneath it.
        with tracer.start_as_current_span(
            "relay.prompt", context=otel_context.Context(), kind=trace.SpanKind.SERVER
        ):
            await self._answer_with_the_model(said)

    async def _answer_with_the_model(self, said: str) -> None:
        budget = TurnBudget(self._settings.TURN_BUDGET_SECONDS)
        asked = time.perf_counter()
        answer = self._answer = _Answer(said)
        filler = asyncio.create_task(self._filler(answer))
        try:
            await self._stream(said, answer, budget, asked, filler)
        finally:
            filler.cancel()  # also when the answer is cancelled (barge-in, preemption)

    async def _stream(
        self,
        said: str,
        answer: _Answer,
        budget: TurnBudget,
        asked: float,
        filler: asyncio.Task[None],
    ) -> None:
        try:
            conversation = await self._backends.memory.conversation(self.call_sid, budget)
            async with asyncio.timeout(max(0.0, budget.remaining() - COMPLETE_SECONDS)):
                async for event in self._backends.llm.generate_stream(
                    self.call_sid,
                    conversation,
                    said,
                    budget.remaining() - COMPLETE_SECONDS,
                    self._language,
                ):
                    if isinstance(event, CallAction):
                        answer.actions.append(event)
                    elif isinstance(event, CallEvent):
                        await self._relay.calls.note(self.call_sid, [event])
                    elif isinstance(event, ToolRunning):
                        # The caller hears that we are on it while a tool works.
                        filler.cancel()
                        await self._fill(answer, after_words=True)
                    else:
                        await self._speak(answer, event, asked, filler)
        except DownstreamError as error:
            filler.cancel()
            log.error("relay call %s: no answer this turn: %s", self.call_sid, describe(error))
            if answer.spoken or answer.actions:  # part of it was said or done: end it there
                await self._finish(answer)
                return
            late = is_late(error)
            metrics.CALL_EVENTS.labels("holding" if late else "apology").inc()
            self._answer = None  # nothing of it was heard; like gather mode, nothing stored
            await self._say(self._lines.HOLDING if late else self._lines.APOLOGY)
            self._wait_for_caller()
            return
        filler.cancel()
        metrics.CALL_EVENTS.labels("answered").inc()
        await self._finish(answer)

    async def _speak(
        self, answer: _Answer, sentence: Sentence, asked: float, filler: asyncio.Task[None]
    ) -> None:
        if not answer.spoken:
            filler.cancel()
            metrics.RELAY_FIRST_TOKEN.labels(sentence.provider).observe(time.perf_counter() - asked)
        answer.spoken.append(sentence.text)
        answer.passage_ids = answer.passage_ids or sentence.passage_ids
        answer.ungrounded = answer.ungrounded or sentence.ungrounded
        token = xml_safe(sentence.text) + " "
        await self._send({"type": "text", "token": token, "last": False})

    async def _finish(self, answer: _Answer) -> None:
        """The answer is all out: carry out what the tools decided, or wait for the caller."""
        policy = self._relay.calls.policy
        for index, action in enumerate(answer.actions):
            if action.kind == "take_message":
                key = f"relay:{self._session}:message:{self._appends}:{index}"
                budget = TurnBudget(self._settings.MEMORY_TIMEOUT_SECONDS)
                saved = await self._relay.calls.save_message(self.call_sid, action, key, budget)
                line = policy.message_line(saved, " ".join(answer.spoken), self._lang)
                if line:
                    await self._say_in(answer, line)
        decision = policy.answered(" ".join(answer.spoken), tuple(answer.actions), self._lang)
        if decision.language:
            await self._switch(decision.language)
        count(decision)
        if decision.next == "end" and not answer.spoken:
            await self._say_in(answer, decision.say)
        elif decision.next == "ask" and decision.say != " ".join(answer.spoken):
            await self._say_in(answer, decision.say)  # a transfer with nobody to take it
        await self._send({"type": "text", "token": "", "last": True})
        answer.done = True
        if decision.next in ("transfer", "end") and self._answering is asyncio.current_task():
            # Ending from inside the answer: it is complete, so nothing is left to cancel.
            self._answering = None
        if decision.dials:
            await self.end("transfer", number=decision.number, department=decision.department)
        elif decision.next == "end":
            await self.end("goodbye")
        else:
            self._wait_for_caller()

    async def _say_in(self, answer: _Answer, text: str) -> None:
        """A line of ours within the answer, stored with it."""
        answer.spoken.append(text)
        await self._send({"type": "text", "token": text + " ", "last": False})

    async def _filler(self, answer: _Answer) -> None:
        await asyncio.sleep(self._settings.RELAY_FILLER_SECONDS)
        await self._fill(answer)

    async def _fill(self, answer: _Answer, after_words: bool = False) -> None:
        """Say the filler line once per answer: while the model is slow to begin, or
        (`after_words`) while a tool runs, even after the model's first words."""
        if answer.filled or (answer.spoken and not after_words):
            return
        answer.filled = True
        metrics.RELAY_EVENTS.labels("filler").inc()
        await self._send({"type": "text", "token": self._lines.FILLER + " ", "last": False})

    async def _settle(self, heard: str | None = None) -> None:
        """Stop the answer in progress, and store the turn as the caller heard it: all of
        what was sent, or `heard` (marked interrupted) when they cut it short."""
        task, self._answering = self._answering, None
        if task is not None and not task.done():
            await stop(task)
        answer, self._answer = self._answer, None
        if answer is None:
            return
        interrupted = heard is not None or not answer.done
        text = " ".join(heard.split()) if heard is not None else " ".join(answer.spoken)
        turns = [Turn("user", answer.user)]
        if text:
            turns.append(
                Turn(
                    "assistant",
                    text,
                    interrupted=interrupted,
                    passage_ids=answer.passage_ids,
                    ungrounded=answer.ungrounded,
                )
            )
        await self._store(turns)

    # --- silence --------------------------------------------------------------------

    def _wait_for_caller(self) -> None:
        self._stop_waiting()
        self._idle = asyncio.create_task(self._after_silence())

    def _stop_waiting(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    async def _after_silence(self) -> None:
        await asyncio.sleep(self._settings.RELAY_IDLE_SECONDS)
        self._idle = None
        await self._settle()
        decision = self._relay.calls.policy.silent(self._reprompts, self._lang)
        if decision.reprompt:
            self._reprompts += 1
        await self._enact(decision)

    # --- speaking and ending --------------------------------------------------------

    @property
    def _lines(self) -> Phrases:
        return self._book(self._lang)

    @property
    def _language(self) -> str:
        """The call's language as a tag (the default's when none was chosen)."""
        return self._lines.language

    async def _switch(self, language: str) -> None:
        """Go on in `language` (configured): Twilio speaks and listens in it from here."""
        if language == self._language:
            return
        self._lang = language
        metrics.CALL_LANGUAGES.labels(language).inc()
        log.info("relay call %s: now in %s", self.call_sid, language)
        message = {"type": "language", "ttsLanguage": language, "transcriptionLanguage": language}
        await self._send(message)

    async def _say(self, text: str) -> None:
        await self._send({"type": "text", "token": text, "last": True})

    async def end(self, reason: Reason, number: str = "", department: str = "") -> None:
        """End the session; the action URL then continues the call by `reason` (a transfer
        goes to `number`, a department's from the tools file, or TRANSFER_NUMBER)."""
        if self.ended is not None:
            return
        self._stop_waiting()
        await self._settle()
        self.ended = reason
        metrics.RELAY_ENDINGS.labels(reason).inc()
        if reason == "transfer":
            await self._relay.calls.note(self.call_sid, [CallEvent("transferred", department)])
        log.info("relay call %s: session ends (%s)", self.call_sid, reason)
        handoff = {
            "reason": reason,
            **({"number": number} if number else {}),
            **({"lang": self._lang} if self._lang else {}),
        }
        await self._send({"type": "end", "handoffData": json.dumps(handoff)})
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.create_task(self._close_after(_END_GRACE_SECONDS, 1000, "ended"))


class Relay:
    """Every live session of this process, and the drain that hands them over on SIGTERM."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls  # the call policy gather mode uses too
        self.settings = calls.settings
        self.backends = calls.backends
        self.sessions: set[SocketSession] = set()
        self._serving: dict[str, SocketSession] = {}  # by CallSid, once set up
        self.draining = False
        self._empty = asyncio.Event()
        self._empty.set()

    @property
    def full(self) -> bool:
        if len(self.sessions) < self.settings.RELAY_MAX_SESSIONS:
            return False
        metrics.RELAY_EVENTS.labels("full").inc()
        log.warning("relay: %d sessions open, a new one refused", len(self.sessions))
        return True

    def track(self, session: SocketSession) -> None:
        """Count `session` among the live ones until `closed`."""
        self.sessions.add(session)
        self._empty.clear()
        metrics.RELAY_SESSIONS.set(len(self.sessions))

    async def admit(self, session: SocketSession, call_sid: str) -> str | None:
        """Why a session may not serve `call_sid` (it has a live one here, or it has
        ended), or None when it may; it is then the call's session."""
        serving = self._serving.get(call_sid)
        if serving is not None and serving.ended is None and not serving.closing.is_set():
            return "duplicate"
        try:
            budget = TurnBudget(self.settings.MEMORY_TIMEOUT_SECONDS)
            conversation = await self.backends.memory.conversation(call_sid, budget)
        except DownstreamError as error:
            # Without memory we cannot tell; the call's own turns will apologise.
            log.warning("relay call %s: not checked against memory: %s", call_sid, describe(error))
        else:
            # A welcomed call has its greeting as a turn until it ends.
            if not conversation.turns:
                return "call_ended"
        self._serving[call_sid] = session
        return None

    async def closed(self, session: SocketSession) -> None:
        await session.close()
        self.sessions.discard(session)
        if self._serving.get(session.call_sid) is session:
            del self._serving[session.call_sid]
        metrics.RELAY_SESSIONS.set(len(self.sessions))
        if not self.sessions:
            self._empty.set()

    async def drain(self, seconds: float) -> None:
        """Stop taking sessions; let the live ones go on for up to `seconds`, then hand
        each caller over to another replica (Twilio reconnects them through the action
        URL; the conversation continues from the memory service)."""
        self.draining = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._empty.wait(), seconds)
        remaining = [s for s in self.sessions if s.ended is None]
        if remaining:
            log.info("handing %d live sessions over to other replicas", len(remaining))
        # Each `end` is bounded by its send's deadline; the whole hand-over by this.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.RELAY_SEND_SECONDS + _END_GRACE_SECONDS):
                await asyncio.gather(*(session.end("handover") for session in remaining))
        # Twilio closes each socket once it has the `end`, or we do a little after.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._empty.wait(), _END_GRACE_SECONDS + 3.0)
