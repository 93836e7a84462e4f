"""What only the Redis store has to show: key expiry handled by Redis, atomic appends
under concurrency, and failing fast while Redis is down."""

from __future__ import annotations

import asyncio
import secrets

import pytest
import redis.asyncio as aioredis

from aura_memory.stores import StoreUnavailableError
from aura_memory.stores.redis import RedisStore
from tests.support.redis_server import RedisServer


def store_for(server: RedisServer, **options: float) -> RedisStore:
    settings = {"max_turns": 1000, "ttl_seconds": 600, **options}
    return RedisStore(server.url, prefix=f"t{secrets.token_hex(4)}", **settings)  # type: ignore[arg-type]


async def test_call_keys_expire_and_writes_refresh_the_ttl(redis_server: RedisServer) -> None:
    store = store_for(redis_server, ttl_seconds=600)
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        await store.append("CA1", [("user", "hi")])
        history = store._key("CA1", "history")
        await raw.expire(history, 5)  # as if the call had been idle for a while
        await store.append("CA1", [("user", "again")])
        # Twice the TTL: the sweep archives a call idle past the TTL before Redis drops it.
        assert 1190 <= await raw.ttl(history) <= 1200
        assert 1190 <= await raw.ttl(store._key("CA1", "transcript")) <= 1200
    finally:
        await raw.aclose()
        await store.close()


async def test_ended_calls_keep_their_transcript_for_the_retention(
    redis_server: RedisServer,
) -> None:
    store = store_for(redis_server, retention_seconds=7 * 86400)
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        await store.append("CA1", [("user", "hi")])
        await store.end_call("CA1", "completed", 2.0)
        assert await raw.ttl(store._key("CA1", "transcript")) > 6 * 86400
    finally:
        await raw.aclose()
        await store.close()


async def test_concurrent_appends_lose_nothing_and_keep_each_writers_order(
    redis_server: RedisServer,
) -> None:
    writers = [store_for(redis_server) for _ in range(2)]
    prefix = writers[0]._prefix
    writers[1]._prefix = prefix  # two clients, one conversation

    async def write(store: RedisStore, name: str) -> None:
        for i in range(150):
            await store.append("CA1", [("user", f"{name}-{i}")])

    await asyncio.gather(write(writers[0], "a"), write(writers[1], "b"))
    turns = [t.text for t in await writers[0].history("CA1")]
    assert len(turns) == 300
    for name in ("a", "b"):
        assert [t for t in turns if t.startswith(name)] == [f"{name}-{i}" for i in range(150)]
    for store in writers:
        await store.close()


async def test_redis_down_fails_fast_and_recovers(own_redis: RedisServer) -> None:
    store = store_for(own_redis, timeout=0.5)
    await store.append("CA1", [("user", "before")])
    own_redis.stop()
    with pytest.raises(StoreUnavailableError):
        await store.history("CA1")
    assert not await store.ping()
    own_redis.start()  # an empty Redis on the same port: no persistence in this test
    assert await store.ping()
    await store.append("CA1", [("user", "after")])
    assert [t.text for t in await store.history("CA1")] == ["after"]
    await store.close()
