"""The interface every conversation store implements, independent of protobuf."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class StoredTurn:
    role: Role
    text: str
    created_at: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class AppendResult:
    applied: bool  # False when the idempotency key had been seen
    turn_count: int


class ConversationStore(ABC):
    """Per-call history, pruned to the newest `max_turns` turns."""

    name: str

    @abstractmethod
    async def append(
        self, call_id: str, turns: list[tuple[Role, str]], idempotency_key: str = ""
    ) -> AppendResult: ...

    @abstractmethod
    async def history(self, call_id: str, limit: int = 0) -> list[StoredTurn]:
        """The newest `limit` turns (all retained turns when 0), oldest first."""

    @abstractmethod
    async def clear(self, call_id: str) -> bool:
        """Forget a call; True when there was something to forget."""

    def expire(self) -> int:
        """Drop calls idle past the TTL, for stores that do not expire keys themselves."""
        return 0

    async def close(self) -> None:
        """Release connections; the in-memory store has none."""
