"""What only the in-memory store has to show: expiry driven by its own clock. The shared
contract is in test_store_contract.py."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from aura_memory.stores import InMemoryStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> InMemoryStore:
    return InMemoryStore(max_turns=4, ttl_seconds=60, keys_per_call=2, clock=clock)


async def test_oldest_idempotency_keys_are_forgotten_beyond_the_bound(store: InMemoryStore) -> None:
    for key in ("k1", "k2", "k3"):
        await store.append("CA1", [("user", key)], key)
    # keys_per_call=2: k1 fell out of the window, k3 is still remembered.
    assert (await store.append("CA1", [("user", "k1")], "k1")).applied
    assert not (await store.append("CA1", [("user", "k3")], "k3")).applied


async def test_idle_calls_expire_after_ttl(store: InMemoryStore, clock: FakeClock) -> None:
    await store.append("CA-idle", [("user", "hi")])
    clock.now += 30
    await store.append("CA-busy", [("user", "hi")])
    clock.now += 31  # CA-idle idle 61 s, CA-busy 31 s
    assert await store.sweep() == 1
    assert await store.live_calls() == 1
    assert await store.history("CA-idle") == []
    assert len(await store.history("CA-busy")) == 1


async def test_expired_call_is_not_served_before_the_sweep(
    store: InMemoryStore, clock: FakeClock
) -> None:
    await store.append("CA1", [("user", "hi")])
    clock.now += 61
    assert await store.history("CA1") == []
    result = await store.append("CA1", [("user", "new call")])
    assert result.turn_count == 1


async def test_writes_refresh_the_ttl(store: InMemoryStore, clock: FakeClock) -> None:
    await store.append("CA1", [("user", "one")])
    clock.now += 50
    await store.append("CA1", [("user", "two")])
    clock.now += 50
    assert await store.sweep() == 0
    assert [t.text for t in await store.history("CA1")] == ["one", "two"]
    assert [t.created_at for t in await store.history("CA1")] == [1_000.0, 1_050.0]


async def test_claims_are_per_call_and_outlive_the_call(store: InMemoryStore) -> None:
    await store.claim("CA1", "tok", ttl=60)
    assert (await store.claim("CA2", "tok", ttl=60)).state == "claimed"
    # A webhook retried after the call's status callback must still be replayed.
    await store.end_call("CA1", "completed", ended_at=0.0)
    assert (await store.claim("CA1", "tok", ttl=60)).state == "in_progress"


async def test_an_abandoned_claim_expires(store: InMemoryStore, clock: FakeClock) -> None:
    await store.claim("CA1", "tok", ttl=10)
    clock.now += 11
    assert (await store.claim("CA1", "tok", ttl=10)).state == "claimed"


async def test_counter_counts_within_its_window(store: InMemoryStore, clock: FakeClock) -> None:
    assert [await store.increment("calls:x", window=3600) for _ in range(3)] == [1, 2, 3]
    assert await store.increment("calls:y", window=3600) == 1
    clock.now += 3601
    assert await store.increment("calls:x", window=3600) == 1


async def test_the_sweep_drops_claims_and_counters(store: InMemoryStore, clock: FakeClock) -> None:
    await store.claim("CA1", "tok", ttl=10)
    await store.increment("calls:x", window=10)
    clock.now += 11
    await store.sweep()
    assert (await store.claim("CA1", "tok", ttl=10)).state == "claimed"
    assert await store.increment("calls:x", window=10) == 1


def evicted() -> float:
    return REGISTRY.get_sample_value("aura_memory_transcripts_evicted_total") or 0.0


async def test_ended_transcripts_are_capped_oldest_first(clock: FakeClock) -> None:
    store = InMemoryStore(max_turns=4, ttl_seconds=60, max_transcripts=2, clock=clock)
    before = evicted()
    for call in ("CA1", "CA2", "CA3"):
        await store.append(call, [("user", f"hi from {call}")])
        assert await store.end_call(call, "completed", ended_at=clock.now)
        clock.now += 1
    assert await store.transcript("CA1") is None  # the oldest made room
    assert [await store.transcript(c) is not None for c in ("CA2", "CA3")] == [True, True]
    assert evicted() == before + 1
    # A call that expires unended is archived too, and counts against the same cap.
    await store.append("CA4", [("user", "hello?")])
    clock.now += 61
    assert await store.sweep() == 1
    assert await store.transcript("CA2") is None
    assert evicted() == before + 2


async def test_memory_stays_bounded_under_many_ended_calls(clock: FakeClock) -> None:
    store = InMemoryStore(max_turns=4, ttl_seconds=60, max_transcripts=100, clock=clock)
    for i in range(1000):
        await store.append(f"CA{i}", [("user", "question"), ("assistant", "answer")])
        await store.end_call(f"CA{i}", "completed", ended_at=clock.now)
    kept = [i for i in range(1000) if await store.transcript(f"CA{i}") is not None]
    assert kept == list(range(900, 1000))
