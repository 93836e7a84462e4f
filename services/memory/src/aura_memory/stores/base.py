"""The interface every conversation store implements, independent of protobuf."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["user", "assistant"]
# The status a call gets when it expires without a final status callback.
UNKNOWN_STATUS = "unknown"
ClaimState = Literal["claimed", "in_progress", "completed"]


@dataclass(frozen=True, slots=True)
class Sources:
    """What an assistant turn was given from the knowledge, and whether it held to it; and
    any turn's language."""

    passage_ids: tuple[str, ...] = ()
    ungrounded: bool = False  # it stated a fact none of its sources held
    language: str = ""  # a BCP-47 tag; empty: the deployment's default


# A turn to append: who spoke and what, and optionally whether the caller cut it short
# and, for an answer, its sources.
NewTurn = tuple[Role, str] | tuple[Role, str, bool] | tuple[Role, str, bool, Sources]


@dataclass(frozen=True, slots=True)
class StoredTurn:
    role: Role
    text: str
    created_at: float  # seconds since the epoch
    interrupted: bool = False  # only what the caller heard before speaking over it
    sources: Sources = Sources()

    @classmethod
    def new(cls, turn: NewTurn, at: float) -> StoredTurn:
        interrupted = len(turn) > 2 and bool(turn[2])
        sources = turn[3] if len(turn) > 3 else Sources()
        return cls(turn[0], turn[1], at, interrupted, sources)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message a caller left for the business."""

    caller_name: str
    callback_number: str
    text: str
    created_at: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """Something that happened on a call: transferred, voicemail, refused, or a tool."""

    kind: str
    detail: str
    created_at: float
    outcome: str = ""  # a tool's: ok, error, timeout, invalid_arguments, skipped
    arguments: str = ""  # a tool's: the JSON object it was called with


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A post-call webhook waiting to be sent."""

    id: str
    payload: str
    attempts: int = 0
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Leased:
    """Deliveries leased to one sender, and the outbox's state."""

    items: tuple[OutboxItem, ...]
    depth: int
    oldest_created_at: float | None


# How long a delivered (or abandoned) id is remembered, so that enqueueing it again
# (a retried status callback) sends nothing twice.
SENT_MEMORY_SECONDS = 2 * 86400


@dataclass(frozen=True, slots=True)
class Conversation:
    """What a turn needs of a call: its newest turns, and its purpose when Aura placed it."""

    turns: list[StoredTurn]
    purpose: str


@dataclass(frozen=True, slots=True)
class AppendResult:
    applied: bool  # False when the idempotency key had been seen
    turn_count: int


@dataclass(frozen=True, slots=True)
class Claim:
    state: ClaimState
    result: str = ""  # set when completed


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A call's metadata and every turn of it, kept beyond the pruned working history."""

    call_id: str
    caller: str = ""  # masked before it reaches the store
    callee: str = ""
    started_at: float | None = None
    ended_at: float | None = None
    status: str = ""
    direction: str = ""  # inbound or outbound; empty until the call is opened
    purpose: str = ""  # what an outbound call is about
    turns: tuple[StoredTurn, ...] = field(default=())
    messages: tuple[StoredMessage, ...] = field(default=())
    events: tuple[StoredEvent, ...] = field(default=())


class StoreUnavailableError(Exception):
    """The store's backend cannot be reached; the request may succeed later."""


# Messages one call may leave: a model that calls take_message over and over (200 times in
# one answer, in an audit) cannot fill a transcript with them.
MAX_MESSAGES_PER_CALL = 10


class MessageLimitError(Exception):
    """The call has left MAX_MESSAGES_PER_CALL messages already."""


class ConversationStore(ABC):
    """Per-call history pruned to the newest `max_turns`, the full transcript of each call,
    idempotency claims and counters."""

    name: str

    @abstractmethod
    async def append(
        self, call_id: str, turns: Sequence[NewTurn], idempotency_key: str = ""
    ) -> AppendResult: ...

    @abstractmethod
    async def save_message(
        self, call_id: str, message: StoredMessage, idempotency_key: str = ""
    ) -> bool:
        """Keep a message with the call's transcript; False when the key had been seen.
        Raises MessageLimitError when the call has MAX_MESSAGES_PER_CALL already."""

    @abstractmethod
    async def record_event(self, call_id: str, event: StoredEvent) -> None:
        """Note an event with the call's transcript."""

    @abstractmethod
    async def enqueue(self, item: OutboxItem) -> bool:
        """Put a delivery in the outbox; False when its id is queued or was sent lately."""

    @abstractmethod
    async def lease(self, limit: int, seconds: float) -> Leased:
        """Up to `limit` due deliveries, each due again in `seconds` unless settled."""

    @abstractmethod
    async def settle(self, item_id: str, done: bool, retry_after: float, payload: str = "") -> None:
        """Remove a delivery that is done, or count a failed attempt and retry later, with
        `payload` in place of the one it had unless that is empty."""

    @abstractmethod
    async def history(self, call_id: str, limit: int = 0) -> list[StoredTurn]:
        """The newest `limit` turns (all retained turns when 0), oldest first."""

    @abstractmethod
    async def open_call(
        self,
        call_id: str,
        caller: str,
        callee: str,
        started_at: float,
        direction: str = "inbound",
        purpose: str = "",
    ) -> None:
        """Record a call's metadata when it starts."""

    @abstractmethod
    async def purpose(self, call_id: str) -> str:
        """What the call is about, when Aura placed it; empty otherwise."""

    async def conversation(self, call_id: str, limit: int = 0) -> Conversation:
        """`history` and `purpose` together; a store with a network hop reads both at once."""
        return Conversation(await self.history(call_id, limit), await self.purpose(call_id))

    @abstractmethod
    async def end_call(self, call_id: str, status: str, ended_at: float) -> bool:
        """Drop the working history and keep the transcript for the retention period;
        True when the call was known."""

    @abstractmethod
    async def transcript(self, call_id: str) -> CallRecord | None:
        """Metadata and every turn of a call, live or ended within the retention period."""

    @abstractmethod
    async def claim(self, call_id: str, key: str, ttl: float) -> Claim:
        """Claim `key` for `call_id` unless it is already claimed or completed."""

    @abstractmethod
    async def complete(self, call_id: str, key: str, result: str, ttl: float) -> None:
        """Store the result of a claimed key for `ttl` seconds."""

    @abstractmethod
    async def increment(self, key: str, window: float) -> int:
        """Count one event in the window that began with the first event; the new count."""

    async def ping(self) -> bool:
        """True when the backend answers; the in-memory store always does."""
        return True

    @abstractmethod
    async def sweep(self) -> int:
        """Archive every call idle past the TTL that never ended, as ended with the status
        `unknown` (its transcript is kept for the retention period like any other), and
        drop what has expired; returns how many calls were archived."""

    @abstractmethod
    async def live_calls(self) -> int:
        """How many calls are live: opened or written within the TTL, and not ended."""

    async def close(self) -> None:
        """Release connections; the in-memory store has none."""
