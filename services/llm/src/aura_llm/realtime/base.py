"""What a speech-to-speech provider offers a realtime call, in Aura's own terms: caller
audio in (G.711 mu-law, 8 kHz, as Twilio sends it), and out the assistant's audio (the
same format), the caller starting to speak, final transcripts of both sides, tool calls,
and the end of each answer. Vendors' wire protocols stay in their own modules."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aura_llm.providers.base import ToolCall, ToolSpec

# Twilio's audio: 8,000 one-byte mu-law samples a second.
ULAW_BYTES_PER_MS = 8


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """What a provider's session is opened with."""

    call_id: str
    instructions: str
    tools: tuple[ToolSpec, ...]
    voice: str
    turn_detection: str  # server_vad | semantic_vad
    silence_ms: int
    language: str = ""


@dataclass(frozen=True, slots=True)
class Audio:
    item_id: str
    ulaw: bytes


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The caller started speaking (the vendor's voice activity detection)."""


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The caller stopped speaking: the answer's latency runs from here."""


@dataclass(frozen=True, slots=True)
class CallerSaid:
    text: str


@dataclass(frozen=True, slots=True)
class AssistantSaid:
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ToolAsked:
    call: ToolCall


@dataclass(frozen=True, slots=True)
class AnswerDone:
    item_id: str


Event = Audio | SpeechStarted | SpeechStopped | CallerSaid | AssistantSaid | ToolAsked | AnswerDone


class RealtimeConnection(ABC):
    """One live session with a vendor. Every method raises ProviderError when the vendor
    is gone; `events` ends (or raises ProviderError) when the session does."""

    @abstractmethod
    def events(self) -> AsyncIterator[Event]: ...

    @abstractmethod
    async def send_audio(self, ulaw: bytes) -> None: ...

    @abstractmethod
    async def say(self, text: str) -> None:
        """Speak `text` now, in the assistant's voice."""

    @abstractmethod
    async def tool_result(self, call: ToolCall, content: str, respond: bool) -> None:
        """Give the model a tool's result; with `respond`, let it answer from it."""

    @abstractmethod
    async def truncate(self, item_id: str, audio_ms: int) -> None:
        """The caller heard only `audio_ms` (never more than was received) of the answer
        `item_id`: the model's memory of it is cut there."""

    @abstractmethod
    async def instruct(self, instructions: str) -> None:
        """Replace the session's instructions (new knowledge for the caller's question)."""

    @abstractmethod
    async def close(self) -> None: ...


class RealtimeProvider(ABC):
    name: str
    model: str

    @abstractmethod
    async def connect(self, spec: SessionSpec, seconds: float) -> RealtimeConnection:
        """A session within `seconds`, or ProviderError."""
