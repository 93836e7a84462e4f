"""What every provider implements, and the errors they raise."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: Role
    text: str


@dataclass(frozen=True, slots=True)
class Prompt:
    call_id: str
    assistant_name: str
    system_prompt: str  # already filled in with the assistant's name
    history: tuple[ChatTurn, ...]
    user_text: str


class ProviderError(Exception):
    """A provider could not produce an answer this time (timeout, outage, bad answer)."""


class ProviderConfigError(Exception):
    """A provider cannot start with the given settings; the message says what to set."""


class Provider(ABC):
    """One language model behind a single `generate` call."""

    name: str
    model: str

    @abstractmethod
    async def generate(self, prompt: Prompt) -> str:
        """The answer to `prompt.user_text`; raises ProviderError on failure."""

    async def close(self) -> None:
        """Release HTTP clients; providers without any need not override it."""
