"""gRPC clients of the memory and llm services. Every call carries a deadline cut from the
turn budget, and fails fast (no wait-for-ready) when a service is down. Protobuf stays in
this module: callers get and give Aura's own dataclasses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from aura.llm.v1 import llm_service_pb2 as llm_pb
from aura.llm.v1 import llm_service_pb2_grpc as llm_grpc
from aura.memory.v1 import memory_service_pb2 as memory_pb
from aura.memory.v1 import memory_service_pb2_grpc as memory_grpc
from aura_common.actions import CallAction
from aura_common.metrics import ClientMetrics
from aura_common.tracing import tracing_enabled
from aura_telephony.budget import TurnBudget
from aura_telephony.config import Settings

Role = Literal["user", "assistant"]

_TO_MEMORY_ROLE: dict[Role, memory_pb.Role.ValueType] = {
    "user": memory_pb.ROLE_USER,
    "assistant": memory_pb.ROLE_ASSISTANT,
}
_FROM_MEMORY_ROLE: dict[int, Role] = {v: k for k, v in _TO_MEMORY_ROLE.items()}
_TO_LLM_ROLE: dict[Role, llm_pb.Role.ValueType] = {
    "user": llm_pb.ROLE_USER,
    "assistant": llm_pb.ROLE_ASSISTANT,
}


@dataclass(frozen=True, slots=True)
class Turn:
    """One thing said on a call, by the caller or the assistant."""

    role: Role
    text: str
    at: datetime | None = None
    interrupted: bool = False  # an answer the caller cut short: only what they heard
    passage_ids: tuple[str, ...] = ()  # the knowledge passages an answer was given
    ungrounded: bool = False  # an answer that stated a fact its sources did not hold


@dataclass(frozen=True, slots=True)
class Message:
    """A message the caller left for the business."""

    caller_name: str
    callback_number: str
    text: str
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CallEvent:
    """Something that happened on a call: transferred, voicemail, refused, or a tool."""

    kind: str
    detail: str = ""
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A post-call webhook from the outbox."""

    id: str
    payload: str
    attempts: int
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class Outbox:
    """Deliveries leased to this replica, and how the outbox stands."""

    deliveries: tuple[Delivery, ...]
    depth: int
    oldest: datetime | None


@dataclass(frozen=True, slots=True)
class Transcript:
    call_sid: str
    caller: str  # masked
    callee: str
    started_at: datetime | None
    ended_at: datetime | None
    status: str
    turns: tuple[Turn, ...]
    messages: tuple[Message, ...] = ()
    direction: str = ""
    purpose: str = ""
    events: tuple[CallEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence of a streamed answer, and the provider that wrote it."""

    text: str
    provider: str
    passage_ids: tuple[str, ...] = ()  # with the first sentence
    ungrounded: bool = False


@dataclass(frozen=True, slots=True)
class ToolRunning:
    """The model called tools; nothing will be said until they are done."""

    names: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The model's answer, which provider gave it after which failures, and what the call
    should do once it is spoken."""

    text: str
    provider: str
    failover: bool
    failures: tuple[str, ...]  # "provider reason", for logs
    actions: tuple[CallAction, ...] = ()
    tools_used: tuple[str, ...] = ()  # "tool outcome", for the call's record
    passage_ids: tuple[str, ...] = ()
    ungrounded: bool = False


def _uses(uses: Sequence[llm_pb.ToolUse]) -> tuple[str, ...]:
    return tuple(f"{u.tool} {u.outcome}" for u in uses)


def _actions(actions: Sequence[llm_pb.CallAction]) -> tuple[CallAction, ...]:
    found: list[CallAction] = []
    for action in actions:
        kind = action.WhichOneof("action")
        if kind == "transfer_call":
            transfer = action.transfer_call
            found.append(CallAction(kind, transfer.department, transfer.number))
        elif kind == "end_call":
            found.append(CallAction(kind))
        elif kind == "take_message":
            message = action.take_message
            found.append(
                CallAction(
                    kind,
                    caller_name=message.caller_name,
                    callback_number=message.callback_number,
                    message=message.message,
                )
            )
    return tuple(found)


# The memory service refuses a longer turn; a long streamed answer is kept cut, not lost.
MAX_STORED_TURN_CHARS = 8000


def _to_memory(turns: Sequence[Turn]) -> list[memory_pb.Turn]:
    return [
        memory_pb.Turn(
            role=_TO_MEMORY_ROLE[t.role],
            text=t.text[:MAX_STORED_TURN_CHARS],
            interrupted=t.interrupted,
            passage_ids=t.passage_ids,
            ungrounded=t.ungrounded,
        )
        for t in turns
    ]


def _time(stamp: Timestamp) -> datetime | None:
    if not stamp.seconds and not stamp.nanos:
        return None
    return stamp.ToDatetime(tzinfo=UTC)


def _turns(turns: Sequence[memory_pb.Turn]) -> tuple[Turn, ...]:
    return tuple(
        Turn(
            _FROM_MEMORY_ROLE[t.role],
            t.text,
            _time(t.create_time),
            t.interrupted,
            tuple(t.passage_ids),
            t.ungrounded,
        )
        for t in turns
        if t.role in _FROM_MEMORY_ROLE
    )


# A restarted pod must be usable again within a second or two, not after gRPC's default
# reconnect backoff of up to two minutes; calls that meet a channel still reconnecting are
# retried (UNAVAILABLE only, inside the call's deadline). Every RPC retried is safe to
# repeat: reads, Generate, and writes carrying an idempotency key.
_RETRY_POLICY = {
    "methodConfig": [
        {
            "name": [
                {"service": "aura.llm.v1.LlmService"},
                {"service": "aura.memory.v1.MemoryService"},
            ],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.1s",
                "maxBackoff": "0.5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


# Beyond the turn budget, for the completion to land before the claim lapses.
_LEASE_MARGIN_SECONDS = 1.0


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromTimedelta(timedelta(seconds=seconds))
    return duration


@dataclass(frozen=True, slots=True)
class Conversation:
    """What the model needs to know of a call: its newest turns, and what it is about when
    Aura placed it."""

    turns: tuple[Turn, ...] = ()
    purpose: str = ""


@dataclass(frozen=True, slots=True)
class Parties:
    """Who called whom, recorded when the call is welcomed; an outbound call's purpose."""

    caller: str
    callee: str
    direction: Literal["inbound", "outbound"] = "inbound"
    purpose: str = ""


@dataclass(frozen=True, slots=True)
class Counting:
    """A counter a new claim counts one event in: its key and fixed window."""

    key: str
    window_seconds: float


@dataclass(frozen=True, slots=True)
class Claim:
    state: Literal["claimed", "in_progress", "completed"]
    result: str = ""
    conversation: Conversation = Conversation()  # with a new claim
    count: int = 0  # with a new claim that counted: the counter, this event included


_CLAIM_STATES: dict[int, Literal["claimed", "in_progress", "completed"]] = {
    memory_pb.IDEMPOTENCY_STATE_CLAIMED: "claimed",
    memory_pb.IDEMPOTENCY_STATE_IN_PROGRESS: "in_progress",
    memory_pb.IDEMPOTENCY_STATE_COMPLETED: "completed",
}

_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps(_RETRY_POLICY)),
]


class Backends:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        interceptors: list[grpc.aio.ClientInterceptor] = [ClientMetrics()]
        if tracing_enabled():
            from opentelemetry.instrumentation.grpc import aio_client_interceptors

            # W3C trace context crosses to llm and memory in the call's metadata.
            interceptors = [*aio_client_interceptors(), *interceptors]
        security = settings.grpc_security
        self._memory_channel = security.channel(
            settings.MEMORY_SERVICE_ADDRESS, _CHANNEL_OPTIONS, interceptors
        )
        self._llm_channel = security.channel(
            settings.LLM_SERVICE_ADDRESS, _CHANNEL_OPTIONS, interceptors
        )
        self.memory = memory_grpc.MemoryServiceStub(self._memory_channel)
        self.llm = llm_grpc.LlmServiceStub(self._llm_channel)
        # Built once: every claim and completion carries the same two durations.
        self._lease = _duration(settings.TURN_BUDGET_SECONDS + _LEASE_MARGIN_SECONDS)
        self._replay_ttl = _duration(settings.IDEMPOTENCY_TTL_SECONDS)

    def _memory_timeout(self, budget: TurnBudget) -> float:
        return budget.timeout(self._settings.MEMORY_TIMEOUT_SECONDS)

    async def end_call(self, call_sid: str, status: str, budget: TurnBudget) -> bool:
        response = await self.memory.EndCall(
            memory_pb.EndCallRequest(call_id=call_sid, status=status),
            timeout=self._memory_timeout(budget),
        )
        return response.existed

    async def transcript(self, call_sid: str, budget: TurnBudget) -> Transcript | None:
        try:
            response = await self.memory.GetTranscript(
                memory_pb.GetTranscriptRequest(call_id=call_sid),
                timeout=self._memory_timeout(budget),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        found = response.transcript
        return Transcript(
            call_sid=found.call_id,
            caller=found.caller,
            callee=found.callee,
            started_at=_time(found.start_time),
            ended_at=_time(found.end_time),
            status=found.status,
            turns=_turns(found.turns),
            messages=tuple(
                Message(m.caller_name, m.callback_number, m.text, _time(m.create_time))
                for m in found.messages
            ),
            direction=found.direction,
            purpose=found.purpose,
            events=tuple(CallEvent(e.kind, e.detail, _time(e.create_time)) for e in found.events),
        )

    async def claim(
        self, call_sid: str, key: str, budget: TurnBudget, counting: Counting | None = None
    ) -> Claim:
        """Claim a delivery; a new claim comes with the call's recent history and, with
        `counting`, counts in that counter."""
        request = memory_pb.ClaimIdempotencyKeyRequest(
            call_id=call_sid,
            key=key,
            # A lease, not the replay window: a crashed replica's claim must lapse
            # before Twilio's retries give up, so that a retry can do the work.
            ttl=self._lease,
            history_limit=self._settings.MAX_CONVERSATION_LENGTH,
        )
        if counting is not None:
            request.counter_key = counting.key
            request.counter_window.CopyFrom(_duration(counting.window_seconds))
        response = await self.memory.ClaimIdempotencyKey(
            request, timeout=self._memory_timeout(budget)
        )
        state = _CLAIM_STATES.get(response.state, "claimed")
        conversation = Conversation(_turns(response.history), response.purpose)
        count = response.count
        if counting is not None and state == "claimed" and not count:
            # An older memory service (a rolling upgrade) ignores counter_key.
            count = await self.count(counting.key, counting.window_seconds, budget)
        return Claim(state, response.result, conversation, count)

    async def complete(
        self,
        call_sid: str,
        key: str,
        result: str,
        seconds: float,
        turns: Sequence[Turn] = (),
        parties: Parties | None = None,
    ) -> None:
        """Store a delivery's TwiML for retries, the turns it added and, for a welcome,
        the call's parties, in one call."""
        request = memory_pb.CompleteIdempotencyKeyRequest(
            call_id=call_sid,
            key=key,
            result=result,
            ttl=self._replay_ttl,
            turns=_to_memory(turns),
        )
        if parties is not None:
            request.open_call.caller = parties.caller
            request.open_call.callee = parties.callee
            request.open_call.direction = parties.direction
            request.open_call.purpose = parties.purpose
        deadline = TurnBudget(seconds)
        response = await self.memory.CompleteIdempotencyKey(request, timeout=seconds)
        if parties is not None and not response.opened:
            # An older memory service (a rolling upgrade) ignores open_call. What is left
            # of the completion's deadline, so that the welcome is no later for it.
            opening = memory_pb.OpenCallRequest(call_id=call_sid)
            opening.MergeFrom(request.open_call)
            await self.memory.OpenCall(opening, timeout=deadline.remaining())

    async def count(self, key: str, window_seconds: float, budget: TurnBudget) -> int:
        response = await self.memory.IncrementCounter(
            memory_pb.IncrementCounterRequest(key=key, window=_duration(window_seconds)),
            timeout=self._memory_timeout(budget),
        )
        return response.count

    def _prompt(self, call_sid: str, conversation: Conversation, user_text: str) -> dict[str, Any]:
        """The fields Generate and GenerateStream requests share."""
        return {
            "call_id": call_sid,
            "history": [
                llm_pb.Message(role=_TO_LLM_ROLE[t.role], text=t.text) for t in conversation.turns
            ],
            "user_text": user_text,
            "persona": llm_pb.Persona(
                assistant_name=self._settings.AI_ASSISTANT_NAME,
                call_context=conversation.purpose,
            ),
        }

    async def generate(
        self,
        call_sid: str,
        conversation: Conversation,
        user_text: str,
        budget: TurnBudget,
    ) -> Answer:
        # Keep back enough of the budget to store the turn once the answer is in.
        timeout = budget.timeout(
            self._settings.TURN_BUDGET_SECONDS, reserve=self._settings.MEMORY_TIMEOUT_SECONDS / 2
        )
        response = await self.llm.Generate(
            llm_pb.GenerateRequest(**self._prompt(call_sid, conversation, user_text)),
            timeout=timeout,
        )
        return Answer(
            text=response.text,
            provider=response.provider,
            failover=response.failover,
            failures=tuple(f"{f.provider} {f.reason}" for f in response.failures),
            actions=_actions(response.actions),
            tools_used=_uses(response.tools_used),
            passage_ids=tuple(response.passage_ids),
            ungrounded=response.ungrounded,
        )

    async def record_event(self, call_sid: str, event: CallEvent, budget: TurnBudget) -> None:
        await self.memory.RecordEvent(
            memory_pb.RecordEventRequest(
                call_id=call_sid, event=memory_pb.CallEvent(kind=event.kind, detail=event.detail)
            ),
            timeout=self._memory_timeout(budget),
        )

    async def enqueue_delivery(self, delivery_id: str, payload: str, seconds: float) -> bool:
        """Put a post-call webhook in the outbox, once per id."""
        response = await self.memory.EnqueueDelivery(
            memory_pb.EnqueueDeliveryRequest(
                delivery=memory_pb.Delivery(id=delivery_id, payload=payload)
            ),
            timeout=seconds,
        )
        return response.applied

    async def lease_deliveries(self, limit: int, lease: float, seconds: float) -> Outbox:
        response = await self.memory.LeaseDeliveries(
            memory_pb.LeaseDeliveriesRequest(limit=limit, lease=_duration(lease)),
            timeout=seconds,
        )
        return Outbox(
            deliveries=tuple(
                Delivery(d.id, d.payload, d.attempts, _time(d.create_time))
                for d in response.deliveries
            ),
            depth=response.depth,
            oldest=_time(response.oldest_create_time),
        )

    async def settle_delivery(
        self, delivery_id: str, done: bool, retry_after: float, seconds: float, payload: str = ""
    ) -> None:
        """Settle a leased delivery; a retry's `payload`, when given, replaces its own."""
        await self.memory.SettleDelivery(
            memory_pb.SettleDeliveryRequest(
                id=delivery_id,
                done=done,
                retry_after=_duration(max(retry_after, 0.001)),
                payload=payload,
            ),
            timeout=seconds,
        )

    async def summarize(self, call_sid: str, turns: Sequence[Turn], seconds: float) -> str:
        response = await self.llm.Summarize(
            llm_pb.SummarizeRequest(
                call_id=call_sid,
                transcript=[llm_pb.Message(role=_TO_LLM_ROLE[t.role], text=t.text) for t in turns],
            ),
            timeout=seconds,
        )
        return response.summary

    async def save_message(
        self, call_sid: str, action: CallAction, key: str, budget: TurnBudget
    ) -> None:
        """Keep a message the caller left with the call's transcript, once per key."""
        message = memory_pb.CallerMessage(
            caller_name=action.caller_name,
            callback_number=action.callback_number,
            text=action.message,
        )
        await self.memory.SaveMessage(
            memory_pb.SaveMessageRequest(call_id=call_sid, message=message, idempotency_key=key),
            timeout=self._memory_timeout(budget),
        )

    async def conversation(self, call_sid: str, budget: TurnBudget) -> Conversation:
        response = await self.memory.GetHistory(
            memory_pb.GetHistoryRequest(
                call_id=call_sid, limit=self._settings.MAX_CONVERSATION_LENGTH
            ),
            timeout=self._memory_timeout(budget),
        )
        return Conversation(_turns(response.turns), response.purpose)

    async def append(
        self, call_sid: str, turns: Sequence[Turn], key: str, budget: TurnBudget
    ) -> None:
        """Store turns once: a repeated key (a retried append) is not applied twice."""
        await self.memory.AppendTurns(
            memory_pb.AppendTurnsRequest(
                call_id=call_sid, turns=_to_memory(turns), idempotency_key=key
            ),
            timeout=self._memory_timeout(budget),
        )

    async def generate_stream(
        self, call_sid: str, conversation: Conversation, user_text: str, seconds: float
    ) -> AsyncIterator[Sentence | ToolRunning | CallAction | CallEvent]:
        """The answer sentence by sentence as the model writes it, a ToolRunning when it
        calls tools, and each call action as soon as a tool decides it. Leaving the loop
        early (or being cancelled) cancels the gRPC stream, and the llm service then closes
        the vendor's stream: nobody pays for tokens nobody hears."""
        call = self.llm.GenerateStream(
            llm_pb.GenerateStreamRequest(**self._prompt(call_sid, conversation, user_text)),
            timeout=seconds,
        )
        try:
            async for response in call:
                if response.tool_running:
                    yield ToolRunning(response.tool_running)
                for use in _uses(response.tools_used):
                    yield CallEvent("tool", use)
                for action in _actions(response.actions):
                    yield action
                if response.text:
                    yield Sentence(
                        response.text,
                        response.provider,
                        tuple(response.passage_ids),
                        response.ungrounded,
                    )
        finally:
            call.cancel()

    async def close(self) -> None:
        await self._memory_channel.close()
        await self._llm_channel.close()
