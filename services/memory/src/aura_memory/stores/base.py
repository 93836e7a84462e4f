"""The interface every conversation store implements, independent of protobuf."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

Role = Literal["user", "assistant"]
ClaimState = Literal["claimed", "in_progress", "completed"]


@dataclass(frozen=True, slots=True)
class StoredTurn:
    role: Role
    text: str
    created_at: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class AppendResult:
    applied: bool  # False when the idempotency key had been seen
    turn_count: int


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    result: str = ""  # set when completed


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

    @abstractmethod
    async def claim(self, call_id: str, key: str, ttl: float) -> Claim:
        """Claim `key` for `call_id` unless it is already claimed or completed."""

    @abstractmethod
    async def complete(self, call_id: str, key: str, result: str, ttl: float) -> None:
        """Store the result of a claimed key for `ttl` seconds."""

    @abstractmethod
    async def increment(self, key: str, window: float) -> int:
        """Count one event in the window that began with the first event; the new count."""

    def expire(self) -> int:
        """Drop calls idle past the TTL, for stores that do not expire keys themselves."""
        return 0

    async def close(self) -> None:
        """Release connections; the in-memory store has none."""
