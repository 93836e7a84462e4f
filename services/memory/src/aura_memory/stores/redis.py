"""Redis store: for several memory replicas, and for history that outlives a restart.

Every change to a call is one Lua script, so concurrent replicas never lose a turn or
interleave one append with another. A call's keys share a hash tag ({call_id}) so that the
scripts also run on Redis Cluster. A sorted set of live calls, scored by their last write,
tells which calls exist: a call idle past CONVERSATION_TTL_SECONDS that never ended is
archived by the sweep as ended with status unknown (its keys live twice the TTL so that
the sweep finds them). Idempotency claims are SET NX with a short TTL."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from aura_memory import metrics
from aura_memory.stores.base import (
    MAX_MESSAGES_PER_CALL,
    SENT_MEMORY_SECONDS,
    UNKNOWN_STATUS,
    AppendResult,
    CallRecord,
    Claim,
    Conversation,
    ConversationStore,
    Leased,
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

T = TypeVar("T")

# KEYS: history, transcript, append marker, meta, messages.
# ARGV: max_turns, ttl, max_transcript, use_marker, turn json...
_APPEND = """
if ARGV[4] == '1' and not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2]) then
  return {0, redis.call('LLEN', KEYS[1])}
end
for i = 5, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
for i = 1, 5 do
  if i ~= 3 then redis.call('EXPIRE', KEYS[i], ARGV[2]) end
end
return {1, redis.call('LLEN', KEYS[1])}
"""

# KEYS: messages, save marker. ARGV: ttl, use_marker, message json.
_SAVE_MESSAGE = """
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[4]) then return -1 end
if ARGV[2] == '1' and not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
redis.call('RPUSH', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

# The outbox. KEYS: items (hash id -> json), due (zset by due time), created (zset by
# enqueue time), sent marker. ARGV: id, item json, now, sent-memory seconds.
_ENQUEUE = """
if redis.call('EXISTS', KEYS[4]) == 1 or redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1
"""

# KEYS: items, due, created. ARGV: now, lease seconds, limit.
# Returns {depth, oldest created_at or '', item json...}.
_LEASE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local result = {redis.call('ZCARD', KEYS[2]), ''}
local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if #oldest > 0 then result[2] = oldest[2] end
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[2], ARGV[1] + ARGV[2], id)
  local item = redis.call('HGET', KEYS[1], id)
  if item then table.insert(result, item) end
end
return result
"""

# KEYS: items, due, created, sent marker. ARGV: id, done, now, retry seconds, sent memory,
# new payload ('' keeps the old one).
_SETTLE = """
local item = redis.call('HGET', KEYS[1], ARGV[1])
if not item then return 0 end
if ARGV[2] == '1' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('SET', KEYS[4], '1', 'EX', ARGV[5])
else
  local decoded = cjson.decode(item)
  decoded['attempts'] = (decoded['attempts'] or 0) + 1
  if ARGV[6] ~= '' then decoded['payload'] = ARGV[6] end
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(decoded))
  redis.call('ZADD', KEYS[2], ARGV[3] + ARGV[4], ARGV[1])
end
return 1
"""

# KEYS: history, transcript, meta, messages, events. ARGV: status, ended_at, retention.
# Ends a call once: a retried status callback, or two replicas sweeping the same expired
# call, find it already ended.
_END = """
local known = redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
if known == 0 or redis.call('HEXISTS', KEYS[3], 'ended_at') == 1 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[3], 'status', ARGV[1], 'ended_at', ARGV[2])
for i = 2, 5 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return 1
"""

# KEYS: events, meta. ARGV: event, keys' TTL. An ended call's event (a recording's last
# callback comes after the call) joins its record, and keeps the record's retention.
# Returns 1 when the call is live.
_EVENT = """
redis.call('RPUSH', KEYS[1], ARGV[1])
if redis.call('HEXISTS', KEYS[2], 'ended_at') == 1 then
  local ttl = redis.call('TTL', KEYS[2])
  if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
  return 0
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: counter. ARGV: window.
_INCREMENT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""

_PENDING = ""  # a claim's value until its result is stored (a result is never empty TwiML)


def _ttl(seconds: float) -> int:
    return max(1, round(seconds))


def _encode(turn: StoredTurn) -> str:
    item: dict[str, Any] = {"r": turn.role, "t": turn.text, "at": turn.created_at}
    if turn.interrupted:
        item["i"] = 1
    if turn.sources.passage_ids:
        item["p"] = turn.sources.passage_ids
    if turn.sources.ungrounded:
        item["u"] = 1
    if turn.sources.language:
        item["l"] = turn.sources.language
    return json.dumps(item, separators=(",", ":"))


def _decode(raw: bytes | str) -> StoredTurn:
    item = json.loads(raw)
    role: Role = "assistant" if item["r"] == "assistant" else "user"
    sources = Sources(
        tuple(str(p) for p in item.get("p", ())), bool(item.get("u")), str(item.get("l", ""))
    )
    return StoredTurn(role, item["t"], float(item["at"]), bool(item.get("i")), sources)


def _encode_message(message: StoredMessage) -> str:
    item = {
        "n": message.caller_name,
        "c": message.callback_number,
        "t": message.text,
        "at": message.created_at,
    }
    return json.dumps(item, separators=(",", ":"))


def _decode_message(raw: bytes | str) -> StoredMessage:
    item = json.loads(raw)
    return StoredMessage(item["n"], item["c"], item["t"], float(item["at"]))


class RedisStore(ConversationStore):
    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        max_turns: int,
        ttl_seconds: float,
        max_transcript_turns: int = 500,
        retention_seconds: float = 30 * 86400,
        timeout: float = 1.0,
        prefix: str = "aura",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._max_turns = max_turns
        self._ttl = _ttl(ttl_seconds)
        self._keys_ttl = 2 * self._ttl  # until the sweep has archived an abandoned call
        self._max_transcript = max_transcript_turns
        self._retention = _ttl(retention_seconds)
        self._prefix = prefix
        self._clock = clock
        # Fail fast: the caller's gRPC deadline, not a client-side retry loop, decides.
        self._redis: Redis = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=30,
        )
        self._append = self._redis.register_script(_APPEND)
        self._end = self._redis.register_script(_END)
        self._event = self._redis.register_script(_EVENT)
        self._save_message = self._redis.register_script(_SAVE_MESSAGE)
        self._enqueue = self._redis.register_script(_ENQUEUE)
        self._lease = self._redis.register_script(_LEASE)
        self._settle = self._redis.register_script(_SETTLE)
        self._increment = self._redis.register_script(_INCREMENT)

    def _key(self, call_id: str, part: str) -> str:
        return f"{self._prefix}:call:{{{call_id}}}:{part}"

    @property
    def _live_key(self) -> str:
        return f"{self._prefix}:live-calls"

    async def _run(self, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as error:
            raise StoreUnavailableError(f"redis unavailable: {error}") from error

    async def append(
        self, call_id: str, turns: Sequence[NewTurn], idempotency_key: str = ""
    ) -> AppendResult:
        now = self._clock()
        keys = [
            self._key(call_id, "history"),
            self._key(call_id, "transcript"),
            self._key(call_id, f"append:{idempotency_key}"),
            self._key(call_id, "meta"),
            self._key(call_id, "messages"),
        ]
        args: list[Any] = [
            self._max_turns,
            self._keys_ttl,
            self._max_transcript,
            "1" if idempotency_key else "0",
            *(_encode(StoredTurn.new(turn, now)) for turn in turns),
        ]
        # One round trip; not a transaction, as the live set lives in another slot.
        async with self._redis.pipeline(transaction=False) as pipe:
            await self._append(keys=keys, args=args, client=pipe)
            pipe.zadd(self._live_key, {call_id: now})
            results = await self._run(pipe.execute())
        applied, count = results[0]
        return AppendResult(applied=bool(applied), turn_count=int(count))

    async def save_message(
        self, call_id: str, message: StoredMessage, idempotency_key: str = ""
    ) -> bool:
        now = self._clock()
        keys = [self._key(call_id, "messages"), self._key(call_id, f"message:{idempotency_key}")]
        args: list[Any] = [
            self._keys_ttl,
            "1" if idempotency_key else "0",
            _encode_message(replace(message, created_at=now)),
            MAX_MESSAGES_PER_CALL,
        ]
        async with self._redis.pipeline(transaction=False) as pipe:
            await self._save_message(keys=keys, args=args, client=pipe)
            pipe.zadd(self._live_key, {call_id: now})
            results = await self._run(pipe.execute())
        if results[0] == -1:
            raise MessageLimitError(call_id)
        return bool(results[0])

    async def record_event(self, call_id: str, event: StoredEvent) -> None:
        now = self._clock()
        key = self._key(call_id, "events")
        item = {"k": event.kind, "d": event.detail, "at": now}
        if event.outcome:
            item["o"] = event.outcome
        if event.arguments:
            item["a"] = event.arguments
        encoded = json.dumps(item, separators=(",", ":"))
        keys = [key, self._key(call_id, "meta")]
        if await self._run(self._event(keys=keys, args=[encoded, self._keys_ttl])):
            # (another hash slot than the call's keys: not in the script, for Redis Cluster)
            await self._run(self._redis.zadd(self._live_key, {call_id: now}))

    def _outbox_keys(self, item_id: str = "") -> list[str]:
        # One hash tag, so that the scripts run on Redis Cluster too.
        base = f"{self._prefix}:{{outbox}}"
        return [f"{base}:items", f"{base}:due", f"{base}:created", f"{base}:sent:{item_id}"]

    async def enqueue(self, item: OutboxItem) -> bool:
        now = self._clock()
        encoded = json.dumps({"id": item.id, "payload": item.payload, "attempts": 0, "at": now})
        args: list[str | float] = [item.id, encoded, now, SENT_MEMORY_SECONDS]
        return bool(await self._run(self._enqueue(keys=self._outbox_keys(item.id), args=args)))

    async def lease(self, limit: int, seconds: float) -> Leased:
        keys = self._outbox_keys()[:3]
        result: list[Any] = await self._run(
            self._lease(keys=keys, args=[self._clock(), seconds, limit])
        )
        depth, oldest, *raw = result
        items = []
        for entry in raw:
            item = json.loads(entry)
            items.append(OutboxItem(item["id"], item["payload"], int(item["attempts"]), item["at"]))
        oldest_at = float(oldest) if oldest not in (b"", "", None) else None
        return Leased(tuple(items), int(depth), oldest_at)

    async def settle(self, item_id: str, done: bool, retry_after: float, payload: str = "") -> None:
        args: list[str | float] = [item_id, "1" if done else "0", self._clock(), retry_after]
        args += [SENT_MEMORY_SECONDS, payload]
        await self._run(self._settle(keys=self._outbox_keys(item_id), args=args))

    async def history(self, call_id: str, limit: int = 0) -> list[StoredTurn]:
        start = -limit if limit else 0
        raw = await self._run(self._redis.lrange(self._key(call_id, "history"), start, -1))
        return [_decode(item) for item in raw]

    async def conversation(self, call_id: str, limit: int = 0) -> Conversation:
        # Every turn reads both: one round trip, not two.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.lrange(self._key(call_id, "history"), -limit if limit else 0, -1)
            pipe.hget(self._key(call_id, "meta"), "purpose")
            raw, purpose = await self._run(pipe.execute())
        text = purpose.decode() if isinstance(purpose, bytes) else (purpose or "")
        return Conversation([_decode(item) for item in raw], text)

    async def open_call(
        self,
        call_id: str,
        caller: str,
        callee: str,
        started_at: float,
        direction: str = "inbound",
        purpose: str = "",
    ) -> None:
        meta = self._key(call_id, "meta")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                meta,
                mapping={
                    "caller": caller,
                    "callee": callee,
                    "started_at": started_at,
                    "direction": direction,
                    "purpose": purpose,
                },
            )
            pipe.expire(meta, self._keys_ttl)
            await self._run(pipe.execute())
        await self._run(self._redis.zadd(self._live_key, {call_id: self._clock()}))

    async def purpose(self, call_id: str) -> str:
        value = await self._run(self._redis.hget(self._key(call_id, "meta"), "purpose"))
        return value.decode() if isinstance(value, bytes) else (value or "")

    async def end_call(self, call_id: str, status: str, ended_at: float) -> bool:
        keys = [
            self._key(call_id, "history"),
            self._key(call_id, "transcript"),
            self._key(call_id, "meta"),
            self._key(call_id, "messages"),
            self._key(call_id, "events"),
        ]
        ended = await self._run(self._end(keys=keys, args=[status, ended_at, self._retention]))
        await self._run(self._redis.zrem(self._live_key, call_id))
        return bool(ended)

    async def sweep(self) -> int:
        cutoff = self._clock() - self._ttl
        stale: list[Any] = await self._run(
            self._redis.zrangebyscore(
                self._live_key, "-inf", cutoff, start=0, num=1000, withscores=True
            )
        )
        archived = 0
        for member, last_write in stale:
            call_id = member.decode() if isinstance(member, bytes) else str(member)
            # Counted by whichever replica ends it: END ends a call once.
            if await self.end_call(call_id, UNKNOWN_STATUS, float(last_write)):
                metrics.CALLS_EXPIRED.inc()
                archived += 1
        return archived

    async def live_calls(self) -> int:
        since = self._clock() - self._ttl
        return int(await self._run(self._redis.zcount(self._live_key, f"({since}", "+inf")))

    async def transcript(self, call_id: str) -> CallRecord | None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self._key(call_id, "meta"))
            pipe.lrange(self._key(call_id, "transcript"), 0, -1)
            pipe.lrange(self._key(call_id, "messages"), 0, -1)
            pipe.lrange(self._key(call_id, "events"), 0, -1)
            meta, raw, messages, events = await self._run(pipe.execute())
        if not meta and not raw and not messages and not events:
            return None
        fields = {k.decode(): v.decode() for k, v in meta.items()}
        return CallRecord(
            call_id=call_id,
            caller=fields.get("caller", ""),
            callee=fields.get("callee", ""),
            started_at=float(fields["started_at"]) if "started_at" in fields else None,
            ended_at=float(fields["ended_at"]) if "ended_at" in fields else None,
            status=fields.get("status", ""),
            direction=fields.get("direction", ""),
            purpose=fields.get("purpose", ""),
            turns=tuple(_decode(item) for item in raw),
            messages=tuple(_decode_message(item) for item in messages),
            events=tuple(
                StoredEvent(e["k"], e["d"], float(e["at"]), e.get("o", ""), e.get("a", ""))
                for e in map(json.loads, events)
            ),
        )

    def _claim_key(self, call_id: str, key: str) -> str:
        return self._key(call_id, f"idem:{key}")

    async def claim(self, call_id: str, key: str, ttl: float) -> Claim:
        name = self._claim_key(call_id, key)
        if await self._run(self._redis.set(name, _PENDING, nx=True, ex=_ttl(ttl))):
            return Claim("claimed")
        value = await self._run(self._redis.get(name))
        if value is None:  # expired between the two commands: claim it again
            return await self.claim(call_id, key, ttl)
        result = value.decode() if isinstance(value, bytes) else value
        return Claim("completed", result) if result != _PENDING else Claim("in_progress")

    async def complete(self, call_id: str, key: str, result: str, ttl: float) -> None:
        await self._run(self._redis.set(self._claim_key(call_id, key), result, ex=_ttl(ttl)))

    async def increment(self, key: str, window: float) -> int:
        name = f"{self._prefix}:counter:{key}"
        return int(await self._run(self._increment(keys=[name], args=[_ttl(window)])))

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (redis_errors.RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()
