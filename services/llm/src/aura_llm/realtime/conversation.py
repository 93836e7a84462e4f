"""One realtime call in the llm service: the session with a speech-to-speech provider, and
what Aura adds around it in every mode. The knowledge is in the session's instructions (and
refreshed when retrieval for the caller's latest words finds other passages); the tools run
through the same toolbox (validation, deadlines, signing); what the assistant said is
checked against its sources (GROUNDING flags it: the audio is already spoken).

A provider that fails to connect, errors, or stops answering hands over to the next
realtime provider of the chain, which goes on from the conversation so far (its turns are
in the new session's instructions); a session past REALTIME_MAX_SESSION_SECONDS is renewed
the same way between answers, so a long call outlives a vendor's session cap."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from prometheus_client import Counter, Gauge

from aura_common.actions import CallAction
from aura_common.tasks import stop
from aura_common.text import heard_part
from aura_llm.assistant import TOOL_RESULTS_ARE_DATA, ToolUse
from aura_llm.config import GroundingMode, Settings
from aura_llm.failover import Failure, NoAnswerError
from aura_llm.guard import TurnGuard
from aura_llm.knowledge.library import LiveKnowledge, TurnKnowledge
from aura_llm.providers.base import ChatTurn, Prompt, ProviderError, Step, ToolCall, ToolResult
from aura_llm.realtime.base import (
    ULAW_BYTES_PER_MS,
    AnswerDone,
    AssistantSaid,
    Audio,
    CallerSaid,
    Event,
    RealtimeConnection,
    RealtimeProvider,
    SessionSpec,
    SpeechStarted,
    SpeechStopped,
    ToolAsked,
)
from aura_llm.tools import Toolbox

log = logging.getLogger(__name__)
tracer = trace.get_tracer("aura.llm.realtime")

SESSIONS = Gauge("aura_llm_realtime_sessions", "Realtime conversations open in this process.")
VENDOR_ERRORS = Counter(
    "aura_llm_realtime_errors",
    "Realtime provider sessions that failed to open or failed mid-call, by provider and reason.",
    ["provider", "reason"],
)
RENEWALS = Counter(
    "aura_llm_realtime_renewals",
    "Realtime sessions renewed on the same provider (session cap, vendor go-away).",
    ["provider"],
)

CONTINUE_NOTE = (
    "This phone call is already under way (the transcript so far is below). Continue it "
    "from where it stopped: do not greet the caller again."
)
# How long a tool may run in a realtime call, at most (each tool has its own limit too).
TOOL_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Start:
    call_id: str
    history: tuple[ChatTurn, ...]
    assistant_name: str
    system_prompt: str
    call_context: str = ""
    greeting: str = ""


@dataclass(frozen=True, slots=True)
class Played:
    item_id: str
    audio_ms: int


@dataclass(frozen=True, slots=True)
class Say:
    text: str


Incoming = bytes | Played | Say


@dataclass(frozen=True, slots=True)
class Ready:
    provider: str
    model: str
    failover: bool
    failures: tuple[Failure, ...]


@dataclass(frozen=True, slots=True)
class Exchange:
    """The caller stopped speaking: an exchange begins, its trace context with it."""

    trace_context: dict[str, str]


@dataclass(frozen=True, slots=True)
class Transcript:
    role: str  # user | assistant
    text: str
    item_id: str = ""
    passage_ids: tuple[str, ...] = ()
    ungrounded: bool = False


Outgoing = Ready | Audio | Transcript | SpeechStarted | Exchange | CallAction | ToolUse | AnswerDone


class _RenewError(Exception):
    """The session is old: open a new one on the same provider, between answers."""


@dataclass
class _Answering:
    """Where the current exchange stands."""

    caller_done_at: float | None = None  # the caller finished and nothing answered yet
    answered_since_speech: bool = False
    steps: list[Step] = field(default_factory=list)  # tool results of this exchange


class Conversation:
    def __init__(
        self,
        providers: list[RealtimeProvider],
        toolbox: Toolbox,
        library: LiveKnowledge | None,
        settings: Settings,
        start: Start,
    ) -> None:
        self._providers = providers
        self._toolbox = toolbox
        self._library = library
        self._settings = settings
        self._grounding: GroundingMode = settings.GROUNDING
        self._start = start
        self._turns: list[ChatTurn] = list(start.history)
        self._items: dict[str, int] = {}  # an answer's index in _turns
        self._received_ms: dict[str, int] = {}
        self._knowledge: TurnKnowledge | None = (
            library.index.for_turn(self._last_caller_words()) if library is not None else None
        )
        self._connection: RealtimeConnection | None = None
        self._provider: RealtimeProvider | None = None
        self._out: asyncio.Queue[Outgoing | BaseException | None] = asyncio.Queue()
        self._state = _Answering()
        self._tools: set[asyncio.Task[None]] = set()
        self._greeted = bool(start.history) or not start.greeting
        self._previous_caller_words = ""
        # Each exchange (the caller's end of speech to the answer's first audio) is a trace
        # of its own, not a child of the call-long stream; tools and the guard run in it.
        self._exchange: trace.Span | None = None
        self._exchange_context = otel_context.Context()

    # --- the two directions -------------------------------------------------------------

    async def run(self, incoming: AsyncIterator[Incoming]) -> AsyncIterator[Outgoing]:
        """Telephony's messages in, the conversation's events out, until either side ends.
        Raises NoAnswerError when no realtime provider is left."""
        SESSIONS.inc()
        serving = asyncio.create_task(self._serve())
        reading = asyncio.create_task(self._read(incoming))
        try:
            while True:
                item = await self._out.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            SESSIONS.dec()
            self._end_exchange()
            for task in (reading, serving, *self._tools):
                await stop(task)
            if self._connection is not None:
                await self._connection.close()

    async def _read(self, incoming: AsyncIterator[Incoming]) -> None:
        async for message in incoming:
            connection = self._connection
            if connection is None:
                continue  # between two providers: the caller's words are lost, not queued
            try:
                if isinstance(message, bytes):
                    await connection.send_audio(message)
                elif isinstance(message, Played):
                    await self._played(connection, message)
                else:
                    await connection.say(message.text)
            except ProviderError:
                continue  # the serving loop sees the session fail and hands over
        await self._out.put(None)  # telephony hung up

    async def _played(self, connection: RealtimeConnection, played: Played) -> None:
        total = self._received_ms.get(played.item_id, 0)
        index = self._items.get(played.item_id)
        if index is not None:
            turn = self._turns[index]
            self._turns[index] = ChatTurn(turn.role, heard_part(turn.text, played.audio_ms, total))
        # No more than the provider sent: past it, a truncation is refused.
        await connection.truncate(played.item_id, min(played.audio_ms, total))

    # --- the provider's side ------------------------------------------------------------

    async def _serve(self) -> None:
        failures: list[Failure] = []
        index = 0
        try:
            while index < len(self._providers):
                provider = self._providers[index]
                try:
                    await self._session(provider, failures, index > 0)
                    await self._out.put(None)  # the provider ended the session
                    return
                except _RenewError:
                    RENEWALS.labels(provider.name).inc()
                    log.info("call %s: realtime session renewed", self._start.call_id)
                except ProviderError as error:
                    VENDOR_ERRORS.labels(provider.name, error.reason).inc()
                    log.warning(
                        "call %s: realtime provider %s failed: %s",
                        self._start.call_id,
                        provider.name,
                        error,
                    )
                    failures.append(Failure(provider.name, error.reason, str(error)))
                    index += 1
                finally:
                    connection, self._connection = self._connection, None
                    if connection is not None:
                        await connection.close()
            await self._out.put(NoAnswerError(failures))
        except Exception as error:  # a bug here must end this call, not hang it
            log.exception("call %s: realtime conversation failed", self._start.call_id)
            await self._out.put(error)

    async def _session(
        self, provider: RealtimeProvider, failures: list[Failure], failover: bool
    ) -> None:
        """Serve the call on `provider` until the caller hangs up (return), the session
        is to be renewed (_RenewError) or the provider fails (ProviderError)."""
        connection = await provider.connect(self._spec(), self._settings.REALTIME_CONNECT_SECONDS)
        self._connection, self._provider = connection, provider
        opened = time.monotonic()
        self._state = _Answering()
        await self._out.put(Ready(provider.name, provider.model, failover, tuple(failures)))
        if not self._greeted:
            self._greeted = True
            await connection.say(self._start.greeting)
        events = aiter(connection.events())
        while True:
            try:
                async with asyncio.timeout(self._waiting_seconds()):
                    event = await anext(events)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise ProviderError(
                    "timeout", "the provider stopped answering the caller", retryable=False
                ) from None
            await self._on(event, connection)
            if (
                isinstance(event, AnswerDone)
                and time.monotonic() - opened > self._settings.REALTIME_MAX_SESSION_SECONDS
            ):
                raise _RenewError

    def _waiting_seconds(self) -> float | None:
        """How long the provider may still take to answer the caller, or None when nobody
        is waiting for it."""
        started = self._state.caller_done_at
        if started is None:
            return None
        return max(0.0, started + self._settings.REALTIME_RESPONSE_SECONDS - time.monotonic())

    def _begin_exchange(self) -> Exchange:
        self._end_exchange()
        span = tracer.start_span(
            "realtime.exchange",
            context=otel_context.Context(),
            kind=trace.SpanKind.SERVER,
            attributes={"aura.llm.provider": self._provider.name if self._provider else ""},
        )
        self._exchange = span
        self._exchange_context = trace.set_span_in_context(span)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=self._exchange_context)
        return Exchange(carrier)

    def _end_exchange(self) -> None:
        if self._exchange is not None:
            self._exchange.end()
            self._exchange = None

    async def _on(self, event: Event, connection: RealtimeConnection) -> None:
        token = otel_context.attach(self._exchange_context)
        try:
            await self._handle(event, connection)
        finally:
            otel_context.detach(token)

    async def _handle(self, event: Event, connection: RealtimeConnection) -> None:
        state = self._state
        if isinstance(event, SpeechStopped):
            await self._out.put(self._begin_exchange())
            return
        if isinstance(event, Audio):
            self._end_exchange()  # the answer is under way: the exchange is measured
            state.answered_since_speech, state.caller_done_at = True, None
            self._received_ms[event.item_id] = (
                self._received_ms.get(event.item_id, 0) + len(event.ulaw) // ULAW_BYTES_PER_MS
            )
            await self._out.put(event)
        elif isinstance(event, SpeechStarted):
            self._state = _Answering()
            await self._out.put(event)
        elif isinstance(event, CallerSaid):
            self._turns.append(ChatTurn("user", event.text))
            if not state.answered_since_speech:
                state.caller_done_at = time.monotonic()
            await self._out.put(Transcript("user", event.text))
            await self._refresh_knowledge(event.text, connection)
        elif isinstance(event, AssistantSaid):
            await self._said(event)
        elif isinstance(event, ToolAsked):
            state.caller_done_at = None
            task = asyncio.create_task(self._run_tool(event.call, connection, state))
            self._tools.add(task)
            task.add_done_callback(self._tools.discard)
        else:
            await self._out.put(event)

    async def _said(self, said: AssistantSaid) -> None:
        text = " ".join(said.text.split())
        if not text:
            return
        ungrounded = False
        if self._grounding != "off" and self._provider is not None:
            history = tuple(self._turns)
            prompt = Prompt(
                call_id=self._start.call_id,
                assistant_name=self._start.assistant_name,
                system_prompt=self._start.system_prompt,
                history=history,
                user_text=self._last_caller_words(),
                call_context=self._start.call_context,
            )
            guard = TurnGuard(self._grounding, prompt, self._knowledge)
            ungrounded = not guard.check(text, self._state.steps, self._provider.name)
        self._items[said.item_id] = len(self._turns)
        self._turns.append(ChatTurn("assistant", text))
        ids = self._knowledge.passage_ids if self._knowledge is not None else ()
        await self._out.put(Transcript("assistant", text, said.item_id, ids, ungrounded))

    async def _run_tool(
        self, call: ToolCall, connection: RealtimeConnection, state: _Answering
    ) -> None:
        ran = await self._toolbox.run(
            self._start.call_id, call, time.monotonic() + TOOL_SECONDS, reserve=0.0
        )
        state.steps.append(Step("", (ToolResult(call, ran.result.content),)))
        await self._out.put(ToolUse.of(call, ran.outcome))
        if ran.action is not None:
            await self._out.put(ran.action)
        if connection is not self._connection:
            return  # the provider that asked is gone; its successor never saw the call
        try:
            await connection.tool_result(call, ran.result.content, respond=not ran.ends_turn)
        except ProviderError:
            return  # the serving loop sees the session fail
        if not ran.ends_turn:
            state.caller_done_at = time.monotonic()  # the model now answers from the result

    # --- instructions -------------------------------------------------------------------

    def _last_caller_words(self) -> str:
        return next((t.text for t in reversed(self._turns) if t.role == "user"), "")

    async def _refresh_knowledge(self, said: str, connection: RealtimeConnection) -> None:
        if self._library is None:
            return
        knowledge = self._library.index.for_turn(said, self._previous_caller_words)
        self._previous_caller_words = said
        before = self._knowledge
        self._knowledge = knowledge
        if before is not None and knowledge.block == before.block:
            return
        try:
            await connection.instruct(self._instructions())
        except ProviderError:
            return  # the serving loop sees the session fail

    def _instructions(self) -> str:
        """The operator's prompt, the tools note, the knowledge, the call's purpose, and for
        a call under way its transcript so far (a new provider continues from it)."""
        parts = [self._start.system_prompt]
        if self._toolbox.specs():
            parts.append(TOOL_RESULTS_ARE_DATA)
        if self._knowledge is not None and self._knowledge.block:
            parts.append(self._knowledge.block)
        if self._start.call_context:
            parts.append(
                f"You placed this call yourself. What it is about: {self._start.call_context}"
            )
        if self._turns:
            lines = [
                f"{'Caller' if t.role == 'user' else 'You'}: {t.text}" for t in self._turns[-40:]
            ]
            parts.append(CONTINUE_NOTE + "\n" + "\n".join(lines))
        return "\n\n".join(parts)

    def _spec(self) -> SessionSpec:
        return SessionSpec(
            call_id=self._start.call_id,
            instructions=self._instructions(),
            tools=self._toolbox.specs(),
            voice=self._settings.REALTIME_VOICE,
            turn_detection=self._settings.REALTIME_TURN_DETECTION,
            silence_ms=self._settings.REALTIME_SILENCE_MS,
        )
