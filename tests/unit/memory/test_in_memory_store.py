"""What only the in-memory store has to show: expiry driven by its own clock. The shared
contract is in test_store_contract.py."""

from __future__ import annotations

import pytest

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
    assert store.expire() == 1
    assert len(store) == 1
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
    assert store.expire() == 0
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


async def test_expire_sweeps_claims_and_counters(store: InMemoryStore, clock: FakeClock) -> None:
    await store.claim("CA1", "tok", ttl=10)
    await store.increment("calls:x", window=10)
    clock.now += 11
    store.expire()
    assert (await store.claim("CA1", "tok", ttl=10)).state == "claimed"
    assert await store.increment("calls:x", window=10) == 1
