"""gRPC MemoryService: validates requests and maps them onto the configured store."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Iterable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from aura.memory.v1 import memory_service_pb2 as pb
from aura.memory.v1 import memory_service_pb2_grpc as pb_grpc
from aura_memory import metrics
from aura_memory.stores.base import (
    MAX_MESSAGES_PER_CALL,
    CallRecord,
    ClaimState,
    ConversationStore,
    MessageLimitError,
    NewTurn,
    OutboxItem,
    Role,
    Sources,
    StoredEvent,
    StoredMessage,
    StoredTurn,
    StoreUnavailableError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_CALL_ID_CHARS = 128
MAX_TURN_CHARS = 8000
MAX_TURNS_PER_APPEND = 16
MAX_KEY_CHARS = 256
MAX_LANGUAGE_CHARS = 35  # the longest BCP-47 tags in use are far shorter
MAX_PASSAGE_IDS = 50
MAX_RESULT_CHARS = 64 * 1024
MAX_TTL_SECONDS = 24 * 3600
MAX_PURPOSE_CHARS = 1000
MAX_EVENT_CHARS = 200
# A detail may be a warm transfer's summary: two spoken sentences.
MAX_EVENT_DETAIL_CHARS = 1000
MAX_PAYLOAD_CHARS = 1024 * 1024
MAX_LEASE = 100
MAX_MESSAGE_FIELD_CHARS = {"caller_name": 200, "callback_number": 64, "text": 4000}

_ROLES: dict[int, Role] = {pb.ROLE_USER: "user", pb.ROLE_ASSISTANT: "assistant"}
_PB_ROLES: dict[Role, pb.Role.ValueType] = {"user": pb.ROLE_USER, "assistant": pb.ROLE_ASSISTANT}
_PB_CLAIM: dict[ClaimState, pb.IdempotencyState.ValueType] = {
    "claimed": pb.IDEMPOTENCY_STATE_CLAIMED,
    "in_progress": pb.IDEMPOTENCY_STATE_IN_PROGRESS,
    "completed": pb.IDEMPOTENCY_STATE_COMPLETED,
}


async def _reject(context: grpc.aio.ServicerContext[Any, Any], message: str) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)


async def _check_call_id(call_id: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    if not call_id:
        await _reject(context, "call_id is required")
    if len(call_id) > MAX_CALL_ID_CHARS:
        await _reject(context, f"call_id is longer than {MAX_CALL_ID_CHARS} characters")


async def _check_key(key: str, what: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    if not key:
        await _reject(context, f"{what} is required")
    if len(key) > MAX_KEY_CHARS:
        await _reject(context, f"{what} is longer than {MAX_KEY_CHARS} characters")


async def _seconds(
    duration: Duration, what: str, context: grpc.aio.ServicerContext[Any, Any]
) -> float:
    seconds = duration.ToTimedelta().total_seconds()
    if not 0 < seconds <= MAX_TTL_SECONDS:
        await _reject(context, f"{what} must be between 0 and {MAX_TTL_SECONDS} seconds")
    return seconds


async def _turns(
    given: Iterable[pb.Turn], context: grpc.aio.ServicerContext[Any, Any]
) -> list[NewTurn]:
    turns: list[NewTurn] = []
    for turn in given:
        role = _ROLES.get(turn.role)
        if role is None:
            await _reject(context, "every turn needs role USER or ASSISTANT")
        if len(turn.text) > MAX_TURN_CHARS:
            await _reject(context, f"turn text is longer than {MAX_TURN_CHARS} characters")
        if len(turn.passage_ids) > MAX_PASSAGE_IDS or any(
            len(p) > MAX_KEY_CHARS for p in turn.passage_ids
        ):
            await _reject(
                context,
                f"a turn names at most {MAX_PASSAGE_IDS} passages of at most "
                f"{MAX_KEY_CHARS} characters",
            )
        if len(turn.language) > MAX_LANGUAGE_CHARS:
            await _reject(context, f"a turn's language is at most {MAX_LANGUAGE_CHARS} characters")
        sources = Sources(tuple(turn.passage_ids), turn.ungrounded, turn.language)
        turns.append((role, turn.text, turn.interrupted, sources))
    if len(turns) > MAX_TURNS_PER_APPEND:
        await _reject(context, f"at most {MAX_TURNS_PER_APPEND} turns per append")
    return turns


async def _check_parties(
    parties: pb.OpenCallRequest, context: grpc.aio.ServicerContext[Any, Any]
) -> None:
    if len(parties.caller) > MAX_KEY_CHARS or len(parties.callee) > MAX_KEY_CHARS:
        await _reject(context, f"caller and callee are at most {MAX_KEY_CHARS} characters")
    if parties.direction not in ("", "inbound", "outbound"):
        await _reject(context, "direction is inbound or outbound")
    if len(parties.purpose) > MAX_PURPOSE_CHARS:
        await _reject(context, f"purpose is longer than {MAX_PURPOSE_CHARS} characters")


def _stamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _to_pb(turn: StoredTurn) -> pb.Turn:
    return pb.Turn(
        role=_PB_ROLES[turn.role],
        text=turn.text,
        create_time=_stamp(turn.created_at),
        interrupted=turn.interrupted,
        passage_ids=turn.sources.passage_ids,
        ungrounded=turn.sources.ungrounded,
        language=turn.sources.language,
    )


def _transcript_to_pb(record: CallRecord) -> pb.Transcript:
    transcript = pb.Transcript(
        call_id=record.call_id,
        caller=record.caller,
        callee=record.callee,
        status=record.status,
        direction=record.direction,
        purpose=record.purpose,
        turns=[_to_pb(t) for t in record.turns],
        messages=[
            pb.CallerMessage(
                caller_name=m.caller_name,
                callback_number=m.callback_number,
                text=m.text,
                create_time=_stamp(m.created_at),
            )
            for m in record.messages
        ],
        events=[
            pb.CallEvent(
                kind=e.kind,
                detail=e.detail,
                create_time=_stamp(e.created_at),
                outcome=e.outcome,
                arguments=e.arguments,
            )
            for e in record.events
        ],
    )
    if record.started_at is not None:
        transcript.start_time.CopyFrom(_stamp(record.started_at))
    if record.ended_at is not None:
        transcript.end_time.CopyFrom(_stamp(record.ended_at))
    return transcript


def _seconds_of(stamp: Timestamp, default: float) -> float:
    return stamp.ToNanoseconds() / 1e9 if stamp.seconds or stamp.nanos else default


class MemoryServicer(pb_grpc.MemoryServiceServicer):
    def __init__(self, store: ConversationStore) -> None:
        self._store = store

    async def _stored(
        self, context: grpc.aio.ServicerContext[Any, Any], name: str, operation: Awaitable[T]
    ) -> T:
        """The store's answer, measured; UNAVAILABLE (which clients may retry) when its
        backend is down, instead of the UNKNOWN an unhandled exception would give."""
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await operation
            outcome = "ok"
            return result
        except StoreUnavailableError as error:
            outcome = "unavailable"
            log.warning("store unavailable: %s", error)
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
        finally:
            metrics.STORE_OPERATIONS.labels(self._store.name, name, outcome).inc()
            metrics.STORE_SECONDS.labels(self._store.name, name).observe(
                time.perf_counter() - started
            )

    async def AppendTurns(
        self,
        request: pb.AppendTurnsRequest,
        context: grpc.aio.ServicerContext[pb.AppendTurnsRequest, pb.AppendTurnsResponse],
    ) -> pb.AppendTurnsResponse:
        await _check_call_id(request.call_id, context)
        if not request.turns:
            await _reject(context, "turns must not be empty")
        turns = await _turns(request.turns, context)
        result = await self._stored(
            context=context,
            name="append",
            operation=self._store.append(request.call_id, turns, request.idempotency_key),
        )
        return pb.AppendTurnsResponse(applied=result.applied, turn_count=result.turn_count)

    async def SaveMessage(
        self,
        request: pb.SaveMessageRequest,
        context: grpc.aio.ServicerContext[pb.SaveMessageRequest, pb.SaveMessageResponse],
    ) -> pb.SaveMessageResponse:
        await _check_call_id(request.call_id, context)
        message = request.message
        if not message.text.strip():
            await _reject(context, "message.text is required")
        for name, limit in MAX_MESSAGE_FIELD_CHARS.items():
            if len(getattr(message, name)) > limit:
                await _reject(context, f"message.{name} is longer than {limit} characters")
        if len(request.idempotency_key) > MAX_KEY_CHARS:
            await _reject(context, f"idempotency_key is longer than {MAX_KEY_CHARS} characters")
        stored = StoredMessage(message.caller_name, message.callback_number, message.text, 0.0)
        try:
            applied = await self._stored(
                context=context,
                name="save_message",
                operation=self._store.save_message(
                    request.call_id, stored, request.idempotency_key
                ),
            )
        except MessageLimitError:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"a call keeps at most {MAX_MESSAGES_PER_CALL} messages",
            )
        return pb.SaveMessageResponse(applied=applied)

    async def GetHistory(
        self,
        request: pb.GetHistoryRequest,
        context: grpc.aio.ServicerContext[pb.GetHistoryRequest, pb.GetHistoryResponse],
    ) -> pb.GetHistoryResponse:
        await _check_call_id(request.call_id, context)
        found = await self._stored(
            context=context,
            name="history",
            operation=self._store.conversation(request.call_id, request.limit),
        )
        return pb.GetHistoryResponse(turns=[_to_pb(t) for t in found.turns], purpose=found.purpose)

    async def ClaimIdempotencyKey(
        self,
        request: pb.ClaimIdempotencyKeyRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ClaimIdempotencyKeyResponse:
        await _check_call_id(request.call_id, context)
        await _check_key(request.key, "key", context)
        ttl = await _seconds(request.ttl, "ttl", context)
        window = 0.0
        if request.counter_key:
            await _check_key(request.counter_key, "counter_key", context)
            window = await _seconds(request.counter_window, "counter_window", context)
        claim = await self._stored(
            context=context,
            name="claim",
            operation=self._store.claim(request.call_id, request.key, ttl),
        )
        response = pb.ClaimIdempotencyKeyResponse(state=_PB_CLAIM[claim.state], result=claim.result)
        if claim.state == "claimed" and request.counter_key:
            # Only the delivery that does the work counts: a retried webhook counts once.
            response.count = await self._stored(
                context=context,
                name="increment",
                operation=self._store.increment(request.counter_key, window),
            )
        if claim.state == "claimed" and request.history_limit:
            found = await self._stored(
                context=context,
                name="history",
                operation=self._store.conversation(request.call_id, request.history_limit),
            )
            response.history.extend(_to_pb(t) for t in found.turns)
            response.purpose = found.purpose
        return response

    async def CompleteIdempotencyKey(
        self,
        request: pb.CompleteIdempotencyKeyRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.CompleteIdempotencyKeyResponse:
        await _check_call_id(request.call_id, context)
        await _check_key(request.key, "key", context)
        if len(request.result) > MAX_RESULT_CHARS:
            await _reject(context, f"result is longer than {MAX_RESULT_CHARS} characters")
        ttl = await _seconds(request.ttl, "ttl", context)
        turns = await _turns(request.turns, context)
        opened = request.open_call if request.HasField("open_call") else None
        if opened is not None:
            if opened.call_id not in ("", request.call_id):
                await _reject(context, "open_call.call_id must be the completion's call_id")
            await _check_parties(opened, context)
            # Recorded before the turns, as a separate OpenCall would have been.
            await self._open(request.call_id, opened, context)
        if turns:
            # The key makes the append happen once, even if this completion is retried.
            await self._stored(
                context=context,
                name="append",
                operation=self._store.append(request.call_id, turns, request.key),
            )
        await self._stored(
            context=context,
            name="complete",
            operation=self._store.complete(request.call_id, request.key, request.result, ttl),
        )
        return pb.CompleteIdempotencyKeyResponse(opened=opened is not None)

    async def IncrementCounter(
        self,
        request: pb.IncrementCounterRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.IncrementCounterResponse:
        await _check_key(request.key, "key", context)
        window = await _seconds(request.window, "window", context)
        return pb.IncrementCounterResponse(
            count=await self._stored(
                context=context,
                name="increment",
                operation=self._store.increment(request.key, window),
            )
        )

    async def OpenCall(
        self, request: pb.OpenCallRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.OpenCallResponse:
        await _check_call_id(request.call_id, context)
        await _check_parties(request, context)
        await self._open(request.call_id, request, context)
        return pb.OpenCallResponse()

    async def _open(
        self, call_id: str, parties: pb.OpenCallRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        """Record who called whom, for OpenCall and for a completion that carries it."""
        await self._stored(
            context=context,
            name="open_call",
            operation=self._store.open_call(
                call_id,
                parties.caller,
                parties.callee,
                _seconds_of(parties.start_time, time.time()),
                parties.direction or "inbound",
                parties.purpose,
            ),
        )

    async def EndCall(
        self, request: pb.EndCallRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.EndCallResponse:
        await _check_call_id(request.call_id, context)
        if len(request.status) > 32:
            await _reject(context, "status is longer than 32 characters")
        ended = _seconds_of(request.end_time, time.time())
        existed = await self._stored(
            context=context,
            name="end_call",
            operation=self._store.end_call(request.call_id, request.status, ended),
        )
        return pb.EndCallResponse(existed=existed)

    async def GetTranscript(
        self, request: pb.GetTranscriptRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetTranscriptResponse:
        await _check_call_id(request.call_id, context)
        record = await self._stored(
            context=context, name="transcript", operation=self._store.transcript(request.call_id)
        )
        if record is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no transcript for this call")
        return pb.GetTranscriptResponse(transcript=_transcript_to_pb(record))

    async def RecordEvent(
        self, request: pb.RecordEventRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RecordEventResponse:
        await _check_call_id(request.call_id, context)
        event = request.event
        if not event.kind or len(event.kind) > MAX_EVENT_CHARS:
            await _reject(context, f"event.kind is required, at most {MAX_EVENT_CHARS} characters")
        if len(event.detail) > MAX_EVENT_DETAIL_CHARS:
            await _reject(
                context, f"event.detail is longer than {MAX_EVENT_DETAIL_CHARS} characters"
            )
        if len(event.outcome) > MAX_EVENT_CHARS:
            await _reject(context, f"event.outcome is longer than {MAX_EVENT_CHARS} characters")
        if len(event.arguments) > MAX_EVENT_DETAIL_CHARS:
            await _reject(
                context, f"event.arguments is longer than {MAX_EVENT_DETAIL_CHARS} characters"
            )
        stored = StoredEvent(event.kind, event.detail, 0.0, event.outcome, event.arguments)
        await self._stored(
            context=context,
            name="record_event",
            operation=self._store.record_event(request.call_id, stored),
        )
        return pb.RecordEventResponse()

    async def EnqueueDelivery(
        self, request: pb.EnqueueDeliveryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.EnqueueDeliveryResponse:
        delivery = request.delivery
        await _check_key(delivery.id, "delivery.id", context)
        if not delivery.payload or len(delivery.payload) > MAX_PAYLOAD_CHARS:
            await _reject(context, f"delivery.payload is required, at most {MAX_PAYLOAD_CHARS}")
        applied = await self._stored(
            context=context,
            name="enqueue",
            operation=self._store.enqueue(OutboxItem(delivery.id, delivery.payload)),
        )
        return pb.EnqueueDeliveryResponse(applied=applied)

    async def LeaseDeliveries(
        self, request: pb.LeaseDeliveriesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.LeaseDeliveriesResponse:
        if not 0 < request.limit <= MAX_LEASE:
            await _reject(context, f"limit must be between 1 and {MAX_LEASE}")
        seconds = await _seconds(request.lease, "lease", context)
        leased = await self._stored(
            context=context, name="lease", operation=self._store.lease(request.limit, seconds)
        )
        response = pb.LeaseDeliveriesResponse(
            deliveries=[
                pb.Delivery(
                    id=i.id,
                    payload=i.payload,
                    attempts=i.attempts,
                    create_time=_stamp(i.created_at),
                )
                for i in leased.items
            ],
            depth=leased.depth,
        )
        if leased.oldest_created_at is not None:
            response.oldest_create_time.CopyFrom(_stamp(leased.oldest_created_at))
        return response

    async def SettleDelivery(
        self, request: pb.SettleDeliveryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SettleDeliveryResponse:
        await _check_key(request.id, "id", context)
        retry = 0.0 if request.done else await _seconds(request.retry_after, "retry_after", context)
        if request.payload and request.done:
            await _reject(context, "payload replaces a retried delivery's, not a done one's")
        if len(request.payload) > MAX_PAYLOAD_CHARS:
            await _reject(context, f"payload must be at most {MAX_PAYLOAD_CHARS} characters")
        await self._stored(
            context=context,
            name="settle",
            operation=self._store.settle(request.id, request.done, retry, request.payload),
        )
        return pb.SettleDeliveryResponse()
