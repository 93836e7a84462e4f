"""In-process store: the embedded default, for one memory replica.

asyncio runs one coroutine at a time and no method awaits in the middle of a change, so
appends to the same call never interleave without a lock."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from aura_memory import metrics
from aura_memory.stores.base import (
    MAX_MESSAGES_PER_CALL,
    SENT_MEMORY_SECONDS,
    UNKNOWN_STATUS,
    AppendResult,
    CallRecord,
    Claim,
    ConversationStore,
    Leased,
    MessageLimitError,
    NewTurn,
    OutboxItem,
    StoredEvent,
    StoredMessage,
    StoredTurn,
)

K = TypeVar("K")


def _drop_expired(table: dict[K, tuple[float, Any]], now: float) -> None:
    for key in [k for k, (until, _) in table.items() if until <= now]:
        del table[key]


@dataclass(slots=True)
class _Call:
    turns: deque[StoredTurn]
    transcript: deque[StoredTurn]
    last_write: float
    record: CallRecord
    seen_keys: OrderedDict[str, None] = field(default_factory=OrderedDict)


class InMemoryStore(ConversationStore):
    name = "memory"

    def __init__(
        self,
        *,
        max_turns: int,
        ttl_seconds: float,
        keys_per_call: int = 64,
        max_transcript_turns: int = 500,
        retention_seconds: float = 30 * 86400,
        max_transcripts: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._max_turns = max_turns
        self._ttl = ttl_seconds
        self._keys_per_call = keys_per_call
        self._max_transcript = max_transcript_turns
        self._retention = retention_seconds
        self._max_transcripts = max_transcripts
        self._clock = clock
        self._calls: dict[str, _Call] = {}
        # Ended calls, oldest first: call_id -> (expires_at, record with its turns)
        self._ended: OrderedDict[str, tuple[float, CallRecord]] = OrderedDict()
        # (call_id, key) -> (expires_at, result or None while in progress)
        self._claims: dict[tuple[str, str], tuple[float, str | None]] = {}
        # key -> (expires_at, count)
        self._counters: dict[str, tuple[float, int]] = {}
        # The outbox: id -> (due_at, item); ids sent lately -> (forget_at, None)
        self._outbox: dict[str, tuple[float, OutboxItem]] = {}
        self._sent: dict[str, tuple[float, None]] = {}

    def _live(self, call_id: str, now: float) -> _Call | None:
        call = self._calls.get(call_id)
        if call is not None and now - call.last_write > self._ttl:
            self._expire(call_id, call)
            return None
        return call

    def _expire(self, call_id: str, call: _Call) -> None:
        """A call idle past the TTL that never ended: kept as ended with an unknown status."""
        self._archive(call_id, call, UNKNOWN_STATUS, ended_at=call.last_write)
        metrics.CALLS_EXPIRED.inc()

    def _archive(self, call_id: str, call: _Call, status: str, ended_at: float) -> None:
        del self._calls[call_id]
        record = replace(
            call.record, ended_at=ended_at, status=status, turns=tuple(call.transcript)
        )
        self._ended[call_id] = (self._clock() + self._retention, record)
        self._ended.move_to_end(call_id)
        while len(self._ended) > self._max_transcripts:
            self._ended.popitem(last=False)
            metrics.TRANSCRIPTS_EVICTED.inc()

    def _get_or_open(self, call_id: str, now: float) -> _Call:
        call = self._live(call_id, now)
        if call is None:
            call = _Call(
                turns=deque(maxlen=self._max_turns),
                transcript=deque(maxlen=self._max_transcript),
                last_write=now,
                record=CallRecord(call_id),
            )
            self._calls[call_id] = call
        return call

    async def append(
        self, call_id: str, turns: Sequence[NewTurn], idempotency_key: str = ""
    ) -> AppendResult:
        now = self._clock()
        stored = [StoredTurn.new(turn, now) for turn in turns]
        ended = self._ended.get(call_id) if call_id not in self._calls else None
        if ended is not None and ended[0] > now and ended[1].status != UNKNOWN_STATUS:
            # A relay session stores what the caller heard as its socket closes, which may
            # be just after the status callback ended the call: those turns are the call's,
            # as in the Redis store (its transcript outlives the end). (A call that expired
            # without a status is not reopened this way.) A retry is not told apart here,
            # the call's keys having gone with it.
            expires, record = ended
            kept = (*record.turns, *stored)[-self._max_transcript :]
            self._ended[call_id] = (expires, replace(record, turns=kept))
            return AppendResult(applied=True, turn_count=0)
        call = self._get_or_open(call_id, now)
        if idempotency_key and not self._first_use(call, idempotency_key):
            return AppendResult(applied=False, turn_count=len(call.turns))
        call.turns.extend(stored)
        call.transcript.extend(stored)
        call.last_write = now
        return AppendResult(applied=True, turn_count=len(call.turns))

    async def save_message(
        self, call_id: str, message: StoredMessage, idempotency_key: str = ""
    ) -> bool:
        now = self._clock()
        call = self._get_or_open(call_id, now)
        if len(call.record.messages) >= MAX_MESSAGES_PER_CALL:
            raise MessageLimitError(call_id)
        if idempotency_key and not self._first_use(call, f"message:{idempotency_key}"):
            return False
        stored = replace(message, created_at=now)
        call.record = replace(call.record, messages=(*call.record.messages, stored))
        call.last_write = now
        return True

    async def record_event(self, call_id: str, event: StoredEvent) -> None:
        now = self._clock()
        ended = self._ended.get(call_id) if call_id not in self._calls else None
        if ended is not None and ended[0] > now and ended[1].status != UNKNOWN_STATUS:
            # An ended call's event (a recording's last callback comes after the call)
            # joins its record, as in the Redis store.
            expires, record = ended
            kept = replace(record, events=(*record.events, replace(event, created_at=now)))
            self._ended[call_id] = (expires, kept)
            return
        call = self._get_or_open(call_id, now)
        stored = replace(event, created_at=now)
        call.record = replace(call.record, events=(*call.record.events, stored))
        call.last_write = now

    async def enqueue(self, item: OutboxItem) -> bool:
        now = self._clock()
        sent = self._sent.get(item.id)
        if item.id in self._outbox or (sent is not None and sent[0] > now):
            return False
        self._outbox[item.id] = (now, replace(item, attempts=0, created_at=now))
        return True

    async def lease(self, limit: int, seconds: float) -> Leased:
        now = self._clock()
        due = sorted((at, i.id) for at, i in self._outbox.values() if at <= now)[:limit]
        items = []
        for _, item_id in due:
            item = self._outbox[item_id][1]
            self._outbox[item_id] = (now + seconds, item)
            items.append(item)
        oldest = min((i.created_at for _, i in self._outbox.values()), default=None)
        return Leased(tuple(items), len(self._outbox), oldest)

    async def settle(self, item_id: str, done: bool, retry_after: float, payload: str = "") -> None:
        now = self._clock()
        entry = self._outbox.get(item_id)
        if entry is None:
            return
        if done:
            del self._outbox[item_id]
            self._sent[item_id] = (now + SENT_MEMORY_SECONDS, None)
        else:
            item = replace(entry[1], attempts=entry[1].attempts + 1)
            if payload:
                item = replace(item, payload=payload)
            self._outbox[item_id] = (now + retry_after, item)

    def _first_use(self, call: _Call, key: str) -> bool:
        """Remember `key` for the call; False when it had been seen."""
        if key in call.seen_keys:
            return False
        call.seen_keys[key] = None
        if len(call.seen_keys) > self._keys_per_call:
            call.seen_keys.popitem(last=False)
        return True

    async def history(self, call_id: str, limit: int = 0) -> list[StoredTurn]:
        call = self._live(call_id, self._clock())
        if call is None:
            return []
        turns = list(call.turns)
        return turns[-limit:] if limit else turns

    async def open_call(
        self,
        call_id: str,
        caller: str,
        callee: str,
        started_at: float,
        direction: str = "inbound",
        purpose: str = "",
    ) -> None:
        now = self._clock()
        call = self._get_or_open(call_id, now)
        call.record = replace(
            call.record,
            caller=caller,
            callee=callee,
            started_at=started_at,
            direction=direction,
            purpose=purpose,
        )
        call.last_write = now

    async def purpose(self, call_id: str) -> str:
        call = self._live(call_id, self._clock())
        return call.record.purpose if call is not None else ""

    async def end_call(self, call_id: str, status: str, ended_at: float) -> bool:
        call = self._live(call_id, self._clock())
        if call is None:
            return False
        self._archive(call_id, call, status, ended_at)
        return True

    async def transcript(self, call_id: str) -> CallRecord | None:
        now = self._clock()
        call = self._live(call_id, now)
        if call is not None:
            return replace(call.record, turns=tuple(call.transcript))
        ended = self._ended.get(call_id)
        if ended is None or ended[0] <= now:
            return None
        return ended[1]

    async def claim(self, call_id: str, key: str, ttl: float) -> Claim:
        now = self._clock()
        record = self._claims.get((call_id, key))
        if record is not None and record[0] > now:
            result = record[1]
            return Claim("in_progress") if result is None else Claim("completed", result)
        self._claims[(call_id, key)] = (now + ttl, None)
        return Claim("claimed")

    async def complete(self, call_id: str, key: str, result: str, ttl: float) -> None:
        self._claims[(call_id, key)] = (self._clock() + ttl, result)

    async def increment(self, key: str, window: float) -> int:
        now = self._clock()
        expires_at, count = self._counters.get(key, (0.0, 0))
        if expires_at <= now:
            expires_at, count = now + window, 0
        self._counters[key] = (expires_at, count + 1)
        return count + 1

    async def sweep(self) -> int:
        now = self._clock()
        stale = [cid for cid, call in self._calls.items() if now - call.last_write > self._ttl]
        for cid in stale:
            self._expire(cid, self._calls[cid])
        _drop_expired(self._ended, now)
        _drop_expired(self._claims, now)
        _drop_expired(self._counters, now)
        _drop_expired(self._sent, now)
        return len(stale)

    async def live_calls(self) -> int:
        now = self._clock()
        return sum(1 for call in self._calls.values() if now - call.last_write <= self._ttl)
