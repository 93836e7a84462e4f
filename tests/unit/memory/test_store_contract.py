"""The contract every conversation store keeps, run against each store: the in-memory
one and Redis (a real redis-server on loopback)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from aura_memory.stores import ConversationStore, InMemoryStore
from aura_memory.stores.base import (
    MAX_MESSAGES_PER_CALL,
    MessageLimitError,
    OutboxItem,
    Sources,
    StoredEvent,
    StoredMessage,
)
from aura_memory.stores.redis import RedisStore
from tests.support.redis_server import RedisServer


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[ConversationStore]:
    options = {"max_turns": 4, "ttl_seconds": 600, "max_transcript_turns": 6, "clock": clock}
    if request.param == "memory":
        store: ConversationStore = InMemoryStore(**options)  # type: ignore[arg-type]
    else:
        # Asked for only here, so the in-memory cases run without a redis-server.
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        prefix = f"test-{secrets.token_hex(4)}"  # keeps tests apart on the shared server
        store = RedisStore(redis_server.url, prefix=prefix, **options)  # type: ignore[arg-type]
    yield store
    await store.close()


async def texts(store: ConversationStore, call_id: str, limit: int = 0) -> list[str]:
    return [t.text for t in await store.history(call_id, limit)]


async def test_history_keeps_order_and_prunes_to_newest(store: ConversationStore) -> None:
    for i in range(3):
        result = await store.append("CA1", [("user", f"q{i}"), ("assistant", f"a{i}")])
        assert result.applied
    turns = await store.history("CA1")
    assert [t.text for t in turns] == ["q1", "a1", "q2", "a2"]
    assert [t.role for t in turns] == ["user", "assistant", "user", "assistant"]
    assert all(t.created_at > 1_600_000_000 for t in turns)


async def test_limit_returns_the_newest(store: ConversationStore) -> None:
    await store.append("CA1", [("user", "q0"), ("assistant", "a0"), ("user", "q1")])
    assert await texts(store, "CA1", limit=2) == ["a0", "q1"]
    assert await texts(store, "unknown") == []


async def test_an_idempotency_key_appends_once(store: ConversationStore) -> None:
    first = await store.append("CA1", [("user", "hi")], "key-1")
    again = await store.append("CA1", [("user", "hi")], "key-1")
    assert first.applied
    assert not again.applied
    assert again.turn_count == 1
    assert (await store.append("CA2", [("user", "hi")], "key-1")).applied


async def test_calls_never_see_each_other(store: ConversationStore) -> None:
    await asyncio.gather(*(store.append(f"CA{i % 2}", [("user", f"{i}")]) for i in range(8)))
    assert sorted(await texts(store, "CA0")) == ["0", "2", "4", "6"]
    assert sorted(await texts(store, "CA1")) == ["1", "3", "5", "7"]


async def test_claims(store: ConversationStore) -> None:
    assert (await store.claim("CA1", "tok", ttl=60)).state == "claimed"
    assert (await store.claim("CA1", "tok", ttl=60)).state == "in_progress"
    assert (await store.claim("CA2", "tok", ttl=60)).state == "claimed"
    await store.complete("CA1", "tok", "<Response/>", ttl=60)
    replay = await store.claim("CA1", "tok", ttl=60)
    assert (replay.state, replay.result) == ("completed", "<Response/>")


async def test_counters(store: ConversationStore) -> None:
    assert [await store.increment("calls:x", 3600) for _ in range(3)] == [1, 2, 3]
    assert await store.increment("calls:y", 3600) == 1


async def test_transcript_keeps_every_turn_and_the_metadata(store: ConversationStore) -> None:
    await store.open_call("CA1", caller="*******4567", callee="+15559870002", started_at=1000.0)
    for i in range(4):  # 8 turns: history keeps 4, the transcript its cap of 6
        await store.append("CA1", [("user", f"q{i}"), ("assistant", f"a{i}")])
    live = await store.transcript("CA1")
    assert live is not None
    assert live.status == ""
    assert live.ended_at is None
    assert [t.text for t in live.turns] == ["q1", "a1", "q2", "a2", "q3", "a3"]

    assert await store.end_call("CA1", "completed", ended_at=1060.0)
    assert await texts(store, "CA1") == []  # the working history is gone
    ended = await store.transcript("CA1")
    assert ended is not None
    assert (ended.caller, ended.callee, ended.status) == (
        "*******4567",
        "+15559870002",
        "completed",
    )
    assert (ended.started_at, ended.ended_at) == (1000.0, 1060.0)
    assert [t.text for t in ended.turns] == ["q1", "a1", "q2", "a2", "q3", "a3"]


async def test_unknown_calls_have_no_transcript(store: ConversationStore) -> None:
    assert await store.transcript("nobody") is None
    assert not await store.end_call("nobody", "completed", ended_at=1.0)


async def test_ping(store: ConversationStore) -> None:
    assert await store.ping()


async def test_a_call_that_never_ends_is_archived_when_it_expires(
    store: ConversationStore, clock: Clock
) -> None:
    """A status callback lost in an outage must not cut the transcript short: the call is
    kept as ended, with an unknown status, for the retention period."""
    await store.open_call("CA1", caller="*******4567", callee="+15559870002", started_at=1.0)
    await store.append("CA1", [("user", "q"), ("assistant", "a")])
    last_write = clock.now
    await store.open_call("CA2", caller="", callee="", started_at=2.0)
    assert await store.live_calls() == 2
    clock.now += 300
    await store.append("CA2", [("user", "still here")])
    assert await store.sweep() == 0  # neither is idle past the TTL yet
    clock.now += 301
    assert await store.sweep() == 1
    assert await store.sweep() == 0  # archived once
    archived = await store.transcript("CA1")
    assert archived is not None
    assert (archived.status, archived.ended_at) == ("unknown", last_write)
    assert [t.text for t in archived.turns] == ["q", "a"]
    assert await store.live_calls() == 1
    # A status callback that arrives after all does not end it a second time.
    assert not await store.end_call("CA1", "completed", ended_at=clock.now)


async def test_live_calls_and_ending_once(store: ConversationStore) -> None:
    assert await store.live_calls() == 0
    await store.open_call("CA1", caller="", callee="", started_at=1.0)
    await store.append("CA2", [("user", "hi")])
    assert await store.live_calls() == 2
    assert await store.end_call("CA1", "completed", ended_at=2.0)
    assert not await store.end_call("CA1", "completed", ended_at=3.0)  # a retried callback
    assert await store.live_calls() == 1


async def test_a_call_keeps_a_bounded_number_of_messages(store: ConversationStore) -> None:
    message = StoredMessage("Jo Baker", "555 0100", "Please call me back.", 0.0)
    for n in range(MAX_MESSAGES_PER_CALL):
        assert await store.save_message("CA1", message, f"key-{n}")
    with pytest.raises(MessageLimitError):
        await store.save_message("CA1", message, "one-too-many")
    record = await store.transcript("CA1")
    assert record is not None
    assert len(record.messages) == MAX_MESSAGES_PER_CALL
    assert await store.save_message("CA2", message, "key-0")  # other calls are not affected


async def test_messages_are_kept_once_with_the_transcript_beyond_the_end(
    store: ConversationStore, clock: Clock
) -> None:
    message = StoredMessage("Jo Baker", "555 0100", "Please call me back.", 0.0)
    await store.append("CA1", [("user", "can I leave a message")])
    assert await store.save_message("CA1", message, "key-1")
    assert not await store.save_message("CA1", message, "key-1")  # a retried turn
    assert await store.save_message("CA1", replace(message, text="And one more."), "key-2")
    assert await store.end_call("CA1", "completed", ended_at=clock.now)
    clock.now += 3600  # well past the conversation TTL: the transcript is kept
    record = await store.transcript("CA1")
    assert record is not None
    assert [(m.caller_name, m.callback_number, m.text) for m in record.messages] == [
        ("Jo Baker", "555 0100", "Please call me back."),
        ("Jo Baker", "555 0100", "And one more."),
    ]
    assert record.messages[0].created_at == clock.now - 3600
    assert (await store.transcript("CA2")) is None  # other calls hold none of it


async def test_an_outbound_calls_purpose_is_kept_with_it(store: ConversationStore) -> None:
    purpose = "Remind Jo of the cake tasting on Friday at 3 pm."
    await store.open_call("CA1", "*******0100", "+15559870000", 1.0, "outbound", purpose)
    await store.open_call("CA2", "*******0101", "+15559870000", 1.0)
    assert await store.purpose("CA1") == purpose
    assert await store.purpose("CA2") == ""
    assert await store.purpose("CA3") == ""
    await store.append("CA1", [("user", "q0"), ("assistant", "a0"), ("user", "q1")])
    both = await store.conversation("CA1", limit=2)
    assert ([t.text for t in both.turns], both.purpose) == (["a0", "q1"], purpose)
    assert (await store.conversation("CA3")).turns == []
    record = await store.transcript("CA1")
    assert record is not None
    assert (record.direction, record.purpose) == ("outbound", purpose)
    inbound = await store.transcript("CA2")
    assert inbound is not None
    assert inbound.direction == "inbound"


async def test_events_are_kept_with_the_transcript(store: ConversationStore) -> None:
    await store.append("CA1", [("user", "the manager please")])
    called = '{"department":"manager"}'
    await store.record_event("CA1", StoredEvent("tool", "transfer_call", 0.0, "ok", called))
    await store.record_event("CA1", StoredEvent("transferred", "", 0.0))
    assert await store.end_call("CA1", "completed", ended_at=1.0)
    record = await store.transcript("CA1")
    assert record is not None
    assert [(e.kind, e.detail, e.arguments) for e in record.events] == [
        ("tool", "transfer_call", called),
        ("transferred", "", ""),
    ]


async def test_an_event_after_the_end_joins_the_ended_record(store: ConversationStore) -> None:
    # A recording's last callback comes after the call's status callback ended it.
    await store.append("CA1", [("user", "hello")])
    await store.record_event("CA1", StoredEvent("recording", "started", 0.0))
    assert await store.end_call("CA1", "completed", ended_at=1.0)
    await store.record_event("CA1", StoredEvent("recording", "completed", 0.0))
    record = await store.transcript("CA1")
    assert record is not None
    assert (record.status, [t.text for t in record.turns]) == ("completed", ["hello"])
    assert [e.detail for e in record.events] == ["started", "completed"]
    assert await store.live_calls() == 0  # not reopened


async def test_the_outbox_leases_retries_and_forgets_what_was_sent(
    store: ConversationStore, clock: Clock
) -> None:
    assert await store.enqueue(OutboxItem("CA1", '{"call_id": "CA1"}'))
    assert not await store.enqueue(OutboxItem("CA1", "{}"))  # a retried status callback
    enqueued_at = clock.now
    clock.now += 1
    assert await store.enqueue(OutboxItem("CA2", '{"call_id": "CA2"}'))
    leased = await store.lease(limit=10, seconds=30)
    assert [(i.id, i.payload, i.attempts) for i in leased.items] == [
        ("CA1", '{"call_id": "CA1"}', 0),
        ("CA2", '{"call_id": "CA2"}', 0),
    ]
    assert (leased.depth, leased.oldest_created_at) == (2, enqueued_at)
    assert (await store.lease(limit=10, seconds=30)).items == ()  # leased to someone
    await store.settle("CA1", done=False, retry_after=5)
    await store.settle("CA2", done=True, retry_after=0)
    clock.now += 4
    assert (await store.lease(limit=10, seconds=30)).items == ()  # not due yet
    clock.now += 2
    again = await store.lease(limit=10, seconds=30)
    assert [(i.id, i.attempts) for i in again.items] == [("CA1", 1)]
    assert again.depth == 1
    clock.now += 31  # the lease lapsed unsettled (the sender died): due again
    assert [i.id for i in (await store.lease(limit=1, seconds=30)).items] == ["CA1"]
    await store.settle("CA1", done=True, retry_after=0)
    empty = await store.lease(limit=10, seconds=30)
    assert (empty.items, empty.depth, empty.oldest_created_at) == ((), 0, None)
    assert not await store.enqueue(OutboxItem("CA2", "{}"))  # sent: not twice


async def test_a_retry_can_carry_a_new_payload(store: ConversationStore, clock: Clock) -> None:
    assert await store.enqueue(OutboxItem("CA1", '{"status": "completed"}'))
    await store.lease(limit=10, seconds=30)
    kept = '{"status": "completed", "summary": "Jo asked about caf\u00e9s \u2615."}'
    await store.settle("CA1", done=False, retry_after=1, payload=kept)
    clock.now += 2
    [item] = (await store.lease(limit=10, seconds=30)).items
    assert (item.payload, item.attempts) == (kept, 1)
    await store.settle("CA1", done=False, retry_after=1)  # no payload: the last one stays
    clock.now += 2
    [item] = (await store.lease(limit=10, seconds=30)).items
    assert (item.payload, item.attempts) == (kept, 2)


async def test_turns_stored_just_after_the_end_join_the_transcript(
    store: ConversationStore, clock: Clock
) -> None:
    """A relay session settles (stores what the caller heard) as its socket closes, which
    may be just after the status callback ended the call: those turns are the call's."""
    await store.open_call("CA1", "*******0000", "+15550100", started_at=clock.now)
    await store.append("CA1", [("assistant", "Hello!")])
    assert await store.end_call("CA1", "completed", ended_at=clock.now)
    await store.append("CA1", [("user", "when are you open"), ("assistant", "From 8.")], "k1")
    record = await store.transcript("CA1")
    assert record is not None
    assert [t.text for t in record.turns] == ["Hello!", "when are you open", "From 8."]
    assert (record.status, record.caller) == ("completed", "*******0000")
    assert record.ended_at is not None


async def test_a_turn_keeps_its_language_and_sources(store: ConversationStore) -> None:
    spanish = Sources(("faq.md#hours",), ungrounded=True, language="es-ES")
    await store.append(
        "CA1",
        [
            ("user", "¿a qué hora abren?", False, Sources(language="es-ES")),
            ("assistant", "A las ocho.", False, spanish),
        ],
    )
    turns = await store.history("CA1")
    assert [t.sources.language for t in turns] == ["es-ES", "es-ES"]
    assert turns[1].sources == spanish
