"""The memory service's client: protobuf in, telephony's model out. Every call carries a
deadline cut from the turn budget, and fails fast (no wait-for-ready) when memory is down;
failures are ServiceError."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from aura.memory.v1 import memory_service_pb2 as memory_pb
from aura.memory.v1 import memory_service_pb2_grpc as memory_grpc
from aura_common.actions import CallAction
from aura_telephony.budget import TurnBudget
from aura_telephony.channels import duration, failing_as
from aura_telephony.config import Settings
from aura_telephony.model import (
    CallEvent,
    Claim,
    Conversation,
    Counting,
    Delivery,
    Message,
    Outbox,
    Parties,
    Role,
    Transcript,
    Turn,
)

_TO_MEMORY_ROLE: dict[Role, memory_pb.Role.ValueType] = {
    "user": memory_pb.ROLE_USER,
    "assistant": memory_pb.ROLE_ASSISTANT,
}
_FROM_MEMORY_ROLE: dict[int, Role] = {v: k for k, v in _TO_MEMORY_ROLE.items()}

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
            language=t.language,
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
            t.language,
        )
        for t in turns
        if t.role in _FROM_MEMORY_ROLE
    )


# Beyond the turn budget, for the completion to land before the claim lapses.
_LEASE_MARGIN_SECONDS = 1.0


_CLAIM_STATES: dict[int, Literal["claimed", "in_progress", "completed"]] = {
    memory_pb.IDEMPOTENCY_STATE_CLAIMED: "claimed",
    memory_pb.IDEMPOTENCY_STATE_IN_PROGRESS: "in_progress",
    memory_pb.IDEMPOTENCY_STATE_COMPLETED: "completed",
}


class MemoryClient:
    def __init__(self, channel: grpc.aio.Channel, settings: Settings) -> None:
        self._settings = settings
        self._stub = memory_grpc.MemoryServiceStub(channel)
        # Built once: every claim and completion carries the same two durations.
        self._lease = duration(settings.TURN_BUDGET_SECONDS + _LEASE_MARGIN_SECONDS)
        self._replay_ttl = duration(settings.IDEMPOTENCY_TTL_SECONDS)

    def _memory_timeout(self, budget: TurnBudget) -> float:
        return budget.timeout(self._settings.MEMORY_TIMEOUT_SECONDS)

    @failing_as("memory")
    async def end_call(self, call_sid: str, status: str, budget: TurnBudget) -> bool:
        response = await self._stub.EndCall(
            memory_pb.EndCallRequest(call_id=call_sid, status=status),
            timeout=self._memory_timeout(budget),
        )
        return response.existed

    @failing_as("memory")
    async def transcript(self, call_sid: str, budget: TurnBudget) -> Transcript | None:
        try:
            response = await self._stub.GetTranscript(
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
            events=tuple(
                CallEvent(e.kind, e.detail, _time(e.create_time), e.outcome, e.arguments)
                for e in found.events
            ),
        )

    @failing_as("memory")
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
            request.counter_window.CopyFrom(duration(counting.window_seconds))
        response = await self._stub.ClaimIdempotencyKey(
            request, timeout=self._memory_timeout(budget)
        )
        state = _CLAIM_STATES.get(response.state, "claimed")
        conversation = Conversation(_turns(response.history), response.purpose)
        count = response.count
        if counting is not None and state == "claimed" and not count:
            # An older memory service (a rolling upgrade) ignores counter_key.
            count = await self.count(counting.key, counting.window_seconds, budget)
        return Claim(state, response.result, conversation, count)

    @failing_as("memory")
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
        response = await self._stub.CompleteIdempotencyKey(request, timeout=seconds)
        if parties is not None and not response.opened:
            # An older memory service (a rolling upgrade) ignores open_call. What is left
            # of the completion's deadline, so that the welcome is no later for it.
            opening = memory_pb.OpenCallRequest(call_id=call_sid)
            opening.MergeFrom(request.open_call)
            await self._stub.OpenCall(opening, timeout=deadline.remaining())

    @failing_as("memory")
    async def count(self, key: str, window_seconds: float, budget: TurnBudget) -> int:
        response = await self._stub.IncrementCounter(
            memory_pb.IncrementCounterRequest(key=key, window=duration(window_seconds)),
            timeout=self._memory_timeout(budget),
        )
        return response.count

    @failing_as("memory")
    async def record_event(self, call_sid: str, event: CallEvent, budget: TurnBudget) -> None:
        await self._stub.RecordEvent(
            memory_pb.RecordEventRequest(
                call_id=call_sid,
                event=memory_pb.CallEvent(
                    kind=event.kind,
                    detail=event.detail,
                    outcome=event.outcome,
                    arguments=event.arguments,
                ),
            ),
            timeout=self._memory_timeout(budget),
        )

    @failing_as("memory")
    async def enqueue_delivery(self, delivery_id: str, payload: str, seconds: float) -> bool:
        """Put a post-call webhook in the outbox, once per id."""
        response = await self._stub.EnqueueDelivery(
            memory_pb.EnqueueDeliveryRequest(
                delivery=memory_pb.Delivery(id=delivery_id, payload=payload)
            ),
            timeout=seconds,
        )
        return response.applied

    @failing_as("memory")
    async def lease_deliveries(self, limit: int, lease: float, seconds: float) -> Outbox:
        response = await self._stub.LeaseDeliveries(
            memory_pb.LeaseDeliveriesRequest(limit=limit, lease=duration(lease)),
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

    @failing_as("memory")
    async def settle_delivery(
        self, delivery_id: str, done: bool, retry_after: float, seconds: float, payload: str = ""
    ) -> None:
        """Settle a leased delivery; a retry's `payload`, when given, replaces its own."""
        await self._stub.SettleDelivery(
            memory_pb.SettleDeliveryRequest(
                id=delivery_id,
                done=done,
                retry_after=duration(max(retry_after, 0.001)),
                payload=payload,
            ),
            timeout=seconds,
        )

    @failing_as("memory")
    async def save_message(
        self, call_sid: str, action: CallAction, key: str, budget: TurnBudget
    ) -> None:
        """Keep a message the caller left with the call's transcript, once per key."""
        message = memory_pb.CallerMessage(
            caller_name=action.caller_name,
            callback_number=action.callback_number,
            text=action.message,
        )
        await self._stub.SaveMessage(
            memory_pb.SaveMessageRequest(call_id=call_sid, message=message, idempotency_key=key),
            timeout=self._memory_timeout(budget),
        )

    @failing_as("memory")
    async def conversation(self, call_sid: str, budget: TurnBudget) -> Conversation:
        response = await self._stub.GetHistory(
            memory_pb.GetHistoryRequest(
                call_id=call_sid, limit=self._settings.MAX_CONVERSATION_LENGTH
            ),
            timeout=self._memory_timeout(budget),
        )
        return Conversation(_turns(response.turns), response.purpose)

    @failing_as("memory")
    async def append(
        self, call_sid: str, turns: Sequence[Turn], key: str, budget: TurnBudget
    ) -> None:
        """Store turns once: a repeated key (a retried append) is not applied twice."""
        await self._stub.AppendTurns(
            memory_pb.AppendTurnsRequest(
                call_id=call_sid, turns=_to_memory(turns), idempotency_key=key
            ),
            timeout=self._memory_timeout(budget),
        )
