"""In-process store: the embedded default, for one memory replica.

asyncio runs one coroutine at a time and no method awaits in the middle of a change, so
appends to the same call never interleave without a lock."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aura_memory.stores.base import AppendResult, ConversationStore, Role, StoredTurn


@dataclass(slots=True)
class _Call:
    turns: deque[StoredTurn]
    last_write: float
    seen_keys: OrderedDict[str, None] = field(default_factory=OrderedDict)


class InMemoryStore(ConversationStore):
    name = "memory"

    def __init__(
        self,
        *,
        max_turns: int,
        ttl_seconds: float,
        keys_per_call: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._max_turns = max_turns
        self._ttl = ttl_seconds
        self._keys_per_call = keys_per_call
        self._clock = clock
        self._calls: dict[str, _Call] = {}

    def _live(self, call_id: str, now: float) -> _Call | None:
        call = self._calls.get(call_id)
        if call is not None and now - call.last_write > self._ttl:
            del self._calls[call_id]
            return None
        return call

    async def append(
        self, call_id: str, turns: list[tuple[Role, str]], idempotency_key: str = ""
    ) -> AppendResult:
        now = self._clock()
        call = self._live(call_id, now)
        if call is None:
            call = _Call(turns=deque(maxlen=self._max_turns), last_write=now)
            self._calls[call_id] = call
        if idempotency_key:
            if idempotency_key in call.seen_keys:
                return AppendResult(applied=False, turn_count=len(call.turns))
            call.seen_keys[idempotency_key] = None
            if len(call.seen_keys) > self._keys_per_call:
                call.seen_keys.popitem(last=False)
        call.turns.extend(StoredTurn(role, text, now) for role, text in turns)
        call.last_write = now
        return AppendResult(applied=True, turn_count=len(call.turns))

    async def history(self, call_id: str, limit: int = 0) -> list[StoredTurn]:
        call = self._live(call_id, self._clock())
        if call is None:
            return []
        turns = list(call.turns)
        return turns[-limit:] if limit else turns

    async def clear(self, call_id: str) -> bool:
        return self._calls.pop(call_id, None) is not None

    def expire(self) -> int:
        """Drop every call idle past the TTL; returns how many were dropped."""
        now = self._clock()
        stale = [cid for cid, call in self._calls.items() if now - call.last_write > self._ttl]
        for cid in stale:
            del self._calls[cid]
        return len(stale)

    def __len__(self) -> int:
        return len(self._calls)
