"""The MemoryService over real gRPC on loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from aura.memory.v1 import memory_service_pb2 as pb
from aura.memory.v1 import memory_service_pb2_grpc as pb_grpc
from aura_memory.servicer import MAX_TURNS_PER_APPEND
from aura_memory.stores import InMemoryStore
from tests.support.servers import memory_server


@pytest.fixture
async def stub() -> AsyncIterator[pb_grpc.MemoryServiceAsyncStub]:
    store = InMemoryStore(max_turns=6, ttl_seconds=60)
    async with memory_server(store) as address, grpc.aio.insecure_channel(address) as channel:
        yield pb_grpc.MemoryServiceStub(channel)


def user(text: str) -> pb.Turn:
    return pb.Turn(role=pb.ROLE_USER, text=text)


def assistant(text: str) -> pb.Turn:
    return pb.Turn(role=pb.ROLE_ASSISTANT, text=text)


async def test_append_then_read_back(stub: pb_grpc.MemoryServiceAsyncStub) -> None:
    before = time.time()
    reply = await stub.AppendTurns(
        pb.AppendTurnsRequest(call_id="CA1", turns=[user("hi"), assistant("hello")]), timeout=5
    )
    assert reply.applied
    assert reply.turn_count == 2
    history = await stub.GetHistory(pb.GetHistoryRequest(call_id="CA1"), timeout=5)
    assert [(t.role, t.text) for t in history.turns] == [
        (pb.ROLE_USER, "hi"),
        (pb.ROLE_ASSISTANT, "hello"),
    ]
    assert history.turns[0].create_time.ToNanoseconds() >= int(before * 1e9) - 1_000_000


async def test_idempotency_key_over_grpc(stub: pb_grpc.MemoryServiceAsyncStub) -> None:
    request = pb.AppendTurnsRequest(call_id="CA1", turns=[user("hi")], idempotency_key="tok")
    assert (await stub.AppendTurns(request, timeout=5)).applied
    again = await stub.AppendTurns(request, timeout=5)
    assert not again.applied
    assert again.turn_count == 1


async def test_history_limit_and_pruning(stub: pb_grpc.MemoryServiceAsyncStub) -> None:
    turns = [user(f"t{i}") for i in range(8)]
    await stub.AppendTurns(pb.AppendTurnsRequest(call_id="CA1", turns=turns), timeout=5)
    everything = await stub.GetHistory(pb.GetHistoryRequest(call_id="CA1"), timeout=5)
    assert [t.text for t in everything.turns] == [f"t{i}" for i in range(2, 8)]
    newest = await stub.GetHistory(pb.GetHistoryRequest(call_id="CA1", limit=2), timeout=5)
    assert [t.text for t in newest.turns] == ["t6", "t7"]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.AppendTurnsRequest(call_id="", turns=[user("x")]), "call_id is required"),
        (pb.AppendTurnsRequest(call_id="C" * 129, turns=[user("x")]), "longer than 128"),
        (pb.AppendTurnsRequest(call_id="CA1"), "turns must not be empty"),
        (pb.AppendTurnsRequest(call_id="CA1", turns=[pb.Turn(text="x")]), "role"),
        (
            pb.AppendTurnsRequest(call_id="CA1", turns=[user("x")] * (MAX_TURNS_PER_APPEND + 1)),
            "at most",
        ),
        (pb.AppendTurnsRequest(call_id="CA1", turns=[user("x" * 8001)]), "longer than 8000"),
    ],
)
async def test_invalid_appends_are_rejected_and_store_nothing(
    stub: pb_grpc.MemoryServiceAsyncStub, request_: pb.AppendTurnsRequest, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.AppendTurns(request_, timeout=5)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (failure.value.details() or "")
    history = await stub.GetHistory(pb.GetHistoryRequest(call_id="CA1"), timeout=5)
    assert list(history.turns) == []


async def test_reads_need_a_call_id(stub: pb_grpc.MemoryServiceAsyncStub) -> None:
    for call in (
        stub.GetHistory(pb.GetHistoryRequest(), timeout=5),
        stub.GetTranscript(pb.GetTranscriptRequest(), timeout=5),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await call
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def seconds(value: float) -> Duration:
    duration = Duration()
    duration.FromTimedelta(timedelta(seconds=value))
    return duration


async def test_idempotency_claim_and_complete_over_grpc(
    stub: pb_grpc.MemoryServiceAsyncStub,
) -> None:
    claim = pb.ClaimIdempotencyKeyRequest(call_id="CA1", key="tok", ttl=seconds(60))
    first = await stub.ClaimIdempotencyKey(claim, timeout=5)
    second = await stub.ClaimIdempotencyKey(claim, timeout=5)
    assert first.state == pb.IDEMPOTENCY_STATE_CLAIMED
    assert second.state == pb.IDEMPOTENCY_STATE_IN_PROGRESS
    await stub.CompleteIdempotencyKey(
        pb.CompleteIdempotencyKeyRequest(call_id="CA1", key="tok", result="<R/>", ttl=seconds(60)),
        timeout=5,
    )
    third = await stub.ClaimIdempotencyKey(claim, timeout=5)
    assert (third.state, third.result) == (pb.IDEMPOTENCY_STATE_COMPLETED, "<R/>")


async def test_a_new_claim_counts_in_its_counter_and_a_duplicate_does_not(
    stub: pb_grpc.MemoryServiceAsyncStub,
) -> None:
    def claim(key: str) -> pb.ClaimIdempotencyKeyRequest:
        return pb.ClaimIdempotencyKeyRequest(
            call_id="CA1",
            key=key,
            ttl=seconds(60),
            counter_key="calls:abc",
            counter_window=seconds(3600),
        )

    first = await stub.ClaimIdempotencyKey(claim("w1"), timeout=5)
    duplicate = await stub.ClaimIdempotencyKey(claim("w1"), timeout=5)
    other = await stub.ClaimIdempotencyKey(claim("w2"), timeout=5)
    assert (first.state, first.count) == (pb.IDEMPOTENCY_STATE_CLAIMED, 1)
    assert (duplicate.state, duplicate.count) == (pb.IDEMPOTENCY_STATE_IN_PROGRESS, 0)
    assert (other.state, other.count) == (pb.IDEMPOTENCY_STATE_CLAIMED, 2)
    counted = pb.IncrementCounterRequest(key="calls:abc", window=seconds(3600))
    assert (await stub.IncrementCounter(counted, timeout=5)).count == 3


async def test_counter_over_grpc(stub: pb_grpc.MemoryServiceAsyncStub) -> None:
    request = pb.IncrementCounterRequest(key="calls:abc", window=seconds(3600))
    counts = [(await stub.IncrementCounter(request, timeout=5)).count for _ in range(3)]
    assert counts == [1, 2, 3]


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.ClaimIdempotencyKey(pb.ClaimIdempotencyKeyRequest(call_id="CA1", key="k")),
        lambda s: s.ClaimIdempotencyKey(
            pb.ClaimIdempotencyKeyRequest(call_id="CA1", key="", ttl=seconds(5))
        ),
        lambda s: s.CompleteIdempotencyKey(
            pb.CompleteIdempotencyKeyRequest(
                call_id="CA1", key="k", result="x" * 70_000, ttl=seconds(5)
            )
        ),
        lambda s: s.ClaimIdempotencyKey(
            pb.ClaimIdempotencyKeyRequest(
                call_id="CA1", key="k", ttl=seconds(5), counter_key="calls:abc"
            )
        ),
        lambda s: s.IncrementCounter(pb.IncrementCounterRequest(key="k", window=seconds(-1))),
        lambda s: s.IncrementCounter(pb.IncrementCounterRequest(window=seconds(5))),
    ],
)
async def test_invalid_idempotency_and_counter_requests(
    stub: pb_grpc.MemoryServiceAsyncStub, call: Any
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call(stub)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_claim_brings_the_history_and_a_completion_stores_turns_once(
    stub: pb_grpc.MemoryServiceAsyncStub,
) -> None:
    await stub.AppendTurns(
        pb.AppendTurnsRequest(call_id="CA1", turns=[assistant("Hi!")]), timeout=5
    )
    claim = pb.ClaimIdempotencyKeyRequest(call_id="CA1", key="t1", ttl=seconds(60), history_limit=5)
    first = await stub.ClaimIdempotencyKey(claim, timeout=5)
    assert [t.text for t in first.history] == ["Hi!"]
    complete = pb.CompleteIdempotencyKeyRequest(
        call_id="CA1", key="t1", result="<R/>", ttl=seconds(60), turns=[user("q"), assistant("a")]
    )
    assert not (await stub.CompleteIdempotencyKey(complete, timeout=5)).opened
    await stub.CompleteIdempotencyKey(complete, timeout=5)  # a retried completion
    history = await stub.GetHistory(pb.GetHistoryRequest(call_id="CA1"), timeout=5)
    assert [t.text for t in history.turns] == ["Hi!", "q", "a"]
    replay = await stub.ClaimIdempotencyKey(claim, timeout=5)
    assert replay.state == pb.IDEMPOTENCY_STATE_COMPLETED
    assert list(replay.history) == []  # only a new claim comes with the history


async def test_a_completion_can_open_the_call_it_completes(
    stub: pb_grpc.MemoryServiceAsyncStub,
) -> None:
    claim = pb.ClaimIdempotencyKeyRequest(call_id="CA1", key="w", ttl=seconds(60))
    await stub.ClaimIdempotencyKey(claim, timeout=5)
    parties = pb.OpenCallRequest(caller="*******4567", callee="+15559870002", purpose="")
    completed = await stub.CompleteIdempotencyKey(
        pb.CompleteIdempotencyKeyRequest(
            call_id="CA1",
            key="w",
            result="<R/>",
            ttl=seconds(60),
            turns=[assistant("Hello!")],
            open_call=parties,
        ),
        timeout=5,
    )
    assert completed.opened  # so telephony sends no OpenCall of its own
    found = (await stub.GetTranscript(pb.GetTranscriptRequest(call_id="CA1"), timeout=5)).transcript
    assert (found.caller, found.callee) == ("*******4567", "+15559870002")
    assert found.direction == "inbound"
    assert found.start_time.seconds > 0
    assert [t.text for t in found.turns] == ["Hello!"]


@pytest.mark.parametrize(
    ("parties", "problem"),
    [
        (pb.OpenCallRequest(call_id="CA2"), "open_call.call_id must be the completion's"),
        (pb.OpenCallRequest(direction="sideways"), "direction is inbound or outbound"),
        (pb.OpenCallRequest(purpose="p" * 1001), "purpose is longer than 1000"),
    ],
)
async def test_a_completion_with_bad_parties_stores_nothing(
    stub: pb_grpc.MemoryServiceAsyncStub, parties: pb.OpenCallRequest, problem: str
) -> None:
    complete = pb.CompleteIdempotencyKeyRequest(
        call_id="CA1", key="w", result="<R/>", ttl=seconds(60), turns=[assistant("Hello!")]
    )
    complete.open_call.CopyFrom(parties)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CompleteIdempotencyKey(complete, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem in (caught.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError):  # nothing was stored for the call
        await stub.GetTranscript(pb.GetTranscriptRequest(call_id="CA1"), timeout=5)


async def test_a_message_is_saved_once_and_read_with_the_transcript(
    stub: pb_grpc.MemoryServiceAsyncStub,
) -> None:
    message = pb.CallerMessage(caller_name="Jo", callback_number="555 0100", text="Call back.")
    request = pb.SaveMessageRequest(call_id="CA1", message=message, idempotency_key="k")
    assert (await stub.SaveMessage(request, timeout=5)).applied
    assert not (await stub.SaveMessage(request, timeout=5)).applied
    found = await stub.GetTranscript(pb.GetTranscriptRequest(call_id="CA1"), timeout=5)
    [kept] = found.transcript.messages
    assert (kept.caller_name, kept.callback_number, kept.text) == ("Jo", "555 0100", "Call back.")
    assert kept.create_time.seconds > 0


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (pb.CallerMessage(caller_name="Jo", text="  "), "message.text is required"),
        (pb.CallerMessage(text="x" * 4001), "message.text is longer than 4000"),
        (pb.CallerMessage(caller_name="J" * 201, text="hi"), "caller_name is longer"),
    ],
)
async def test_invalid_messages_are_rejected_and_store_nothing(
    stub: pb_grpc.MemoryServiceAsyncStub, message: pb.CallerMessage, problem: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SaveMessage(pb.SaveMessageRequest(call_id="CA1", message=message), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem in (caught.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError):  # nothing was stored for the call
        await stub.GetTranscript(pb.GetTranscriptRequest(call_id="CA1"), timeout=5)


async def test_a_retry_keeps_the_payload_it_settles_with() -> None:
    now = [1_700_000_000.0]
    store = InMemoryStore(max_turns=6, ttl_seconds=60, clock=lambda: now[0])
    async with memory_server(store) as address, grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.MemoryServiceStub(channel)
        delivery = pb.Delivery(id="CA1", payload='{"status": "completed"}')
        await stub.EnqueueDelivery(pb.EnqueueDeliveryRequest(delivery=delivery), timeout=5)
        lease = pb.LeaseDeliveriesRequest(limit=4, lease=seconds(30))
        [leased] = (await stub.LeaseDeliveries(lease, timeout=5)).deliveries
        kept = '{"status": "completed", "summary": "Jo asked about parking."}'
        invalid = [
            pb.SettleDeliveryRequest(id="CA1", done=True, payload=kept),
            pb.SettleDeliveryRequest(id="CA1", retry_after=seconds(1), payload="x" * 2**20 + "x"),
        ]
        for request in invalid:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.SettleDelivery(request, timeout=5)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        retry = pb.SettleDeliveryRequest(id="CA1", retry_after=seconds(1), payload=kept)
        await stub.SettleDelivery(retry, timeout=5)
        now[0] += 2
        [again] = (await stub.LeaseDeliveries(lease, timeout=5)).deliveries
    assert (leased.payload, again.payload, again.attempts) == (delivery.payload, kept, 1)
