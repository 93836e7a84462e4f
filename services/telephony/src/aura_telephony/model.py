"""Telephony's own data model: what a call is made of (turns, messages, events), what the
model answered, and what memory keeps for a delivery. The gRPC clients turn protobuf into
these; nothing else in telephony sees protobuf."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from aura_common.actions import CallAction

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One thing said on a call, by the caller or the assistant."""

    role: Role
    text: str
    at: datetime | None = None
    interrupted: bool = False  # an answer the caller cut short: only what they heard
    passage_ids: tuple[str, ...] = ()  # the knowledge passages an answer was given
    ungrounded: bool = False  # an answer that stated a fact its sources did not hold
    language: str = ""  # a BCP-47 tag; empty: the deployment's first language


@dataclass(frozen=True, slots=True)
class Message:
    """A message the caller left for the business."""

    caller_name: str
    callback_number: str
    text: str
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CallEvent:
    """Something that happened on a call: transferred, voicemail, refused, or a tool."""

    kind: str
    detail: str = ""  # a department transferred to, or a tool's name
    at: datetime | None = None
    outcome: str = ""  # a tool's: ok, error, timeout, invalid_arguments, skipped
    arguments: str = ""  # a tool's: the JSON object it was called with


@dataclass(frozen=True, slots=True)
class ToolUse:
    """One tool the model called for an answer, and how it went."""

    tool: str
    outcome: str
    arguments: str = ""

    def event(self) -> CallEvent:
        return CallEvent("tool", self.tool, outcome=self.outcome, arguments=self.arguments)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A post-call webhook from the outbox."""

    id: str
    payload: str
    attempts: int
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class Outbox:
    """Deliveries leased to this replica, and how the outbox stands."""

    deliveries: tuple[Delivery, ...]
    depth: int
    oldest: datetime | None


@dataclass(frozen=True, slots=True)
class Transcript:
    call_sid: str
    caller: str  # masked
    callee: str
    started_at: datetime | None
    ended_at: datetime | None
    status: str
    turns: tuple[Turn, ...]
    messages: tuple[Message, ...] = ()
    direction: str = ""
    purpose: str = ""
    events: tuple[CallEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence of a streamed answer, and the provider that wrote it."""

    text: str
    provider: str
    passage_ids: tuple[str, ...] = ()  # with the first sentence
    ungrounded: bool = False


@dataclass(frozen=True, slots=True)
class ToolRunning:
    """The model called tools; nothing will be said until they are done."""

    names: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The model's answer, which provider gave it after which failures, and what the call
    should do once it is spoken."""

    text: str
    provider: str
    failover: bool
    failures: tuple[str, ...]  # "provider reason", for logs
    actions: tuple[CallAction, ...] = ()
    tools_used: tuple[ToolUse, ...] = ()
    passage_ids: tuple[str, ...] = ()
    ungrounded: bool = False


@dataclass(frozen=True, slots=True)
class Conversation:
    """What the model needs to know of a call: its newest turns, and what it is about when
    Aura placed it."""

    turns: tuple[Turn, ...] = ()
    purpose: str = ""


@dataclass(frozen=True, slots=True)
class Parties:
    """Who called whom, recorded when the call is welcomed; an outbound call's purpose."""

    caller: str
    callee: str
    direction: Literal["inbound", "outbound"] = "inbound"
    purpose: str = ""


@dataclass(frozen=True, slots=True)
class Counting:
    """A counter a new claim counts one event in: its key and fixed window."""

    key: str
    window_seconds: float


@dataclass(frozen=True, slots=True)
class Claim:
    state: Literal["claimed", "in_progress", "completed"]
    result: str = ""
    conversation: Conversation = Conversation()  # with a new claim
    count: int = 0  # with a new claim that counted: the counter, this event included


# --- a realtime conversation's events (VOICE_MODE=realtime) ------------------------------


@dataclass(frozen=True, slots=True)
class LiveReady:
    """A speech-to-speech provider serves the call (again, after a failover)."""

    provider: str
    model: str
    failover: bool


@dataclass(frozen=True, slots=True)
class LiveAudio:
    """A piece of the assistant's answer `item_id`: mu-law 8 kHz, as Twilio plays it."""

    item_id: str
    ulaw: bytes


@dataclass(frozen=True, slots=True)
class LiveTranscript:
    role: Role
    text: str
    item_id: str = ""
    passage_ids: tuple[str, ...] = ()
    ungrounded: bool = False


@dataclass(frozen=True, slots=True)
class LiveSpeechStarted:
    """The caller started speaking: what is playing must stop."""


@dataclass(frozen=True, slots=True)
class LiveSpeechStopped:
    """The caller stopped speaking: the answer's latency runs from here, and its trace."""

    trace_context: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LiveAnswerDone:
    item_id: str
