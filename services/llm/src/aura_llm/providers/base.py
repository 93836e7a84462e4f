"""What every provider implements, and the errors they raise."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from aura_llm.knowledge.retrieval import Retrieval

Role = Literal["user", "assistant"]

FailureReason = Literal[
    "timeout", "rate_limited", "server_error", "connection", "auth", "bad_request", "bad_response"
]


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: Role
    text: str


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it: a name, what it is for, and its arguments' JSON Schema."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for a tool. `arguments` is JSON text as the model wrote it: it is
    validated against the tool's schema before anything runs."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolResult:
    call: ToolCall
    content: str  # JSON text handed back to the model: data, never instructions


@dataclass(frozen=True, slots=True)
class Step:
    """One earlier model round of this turn: what it said, the tools it called and what
    they returned. Any provider can carry on from it, so failover never runs a tool twice."""

    text: str
    results: tuple[ToolResult, ...]


@dataclass(frozen=True, slots=True)
class Prompt:
    call_id: str
    assistant_name: str
    system_prompt: str  # already filled in with the assistant's name
    history: tuple[ChatTurn, ...]
    user_text: str
    tools: tuple[ToolSpec, ...] = ()
    steps: tuple[Step, ...] = ()
    # False on the last round a turn allows: the model must answer in words.
    may_call_tools: bool = True
    # "summary": write a summary of the call in `history` for the business, not an answer;
    # "judge": score a call against criteria (evaluations), answering in JSON.
    task: Literal["answer", "summary", "judge"] = "answer"
    # What this call is about, when Aura placed it: the last part of the system prompt.
    call_context: str = ""
    # The knowledge passages chosen for this turn (the local provider answers from them;
    # the others read them in `system_prompt`).
    retrieval: Retrieval | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: tuple[ToolCall, ...] = ()


class ProviderError(Exception):
    """A provider could not produce an answer this time.

    `retryable` says whether asking the same provider again may help (rate limits, server
    errors, dropped connections); auth and request errors will fail the same way again.
    `retry_after` is the wait the vendor asked for, when it said."""

    def __init__(
        self,
        reason: FailureReason,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason: FailureReason = reason
        self.retryable = retryable
        self.retry_after = retry_after


def status_error(status: int, message: str, retry_after: float | None = None) -> ProviderError:
    """The ProviderError for an HTTP error status from a vendor API."""
    if status in (401, 403):
        return ProviderError("auth", f"{status} {message}", retryable=False)
    if status == 429:
        return ProviderError("rate_limited", message, retryable=True, retry_after=retry_after)
    if status >= 500:
        return ProviderError("server_error", f"{status} {message}", retryable=True)
    if status == 408:
        return ProviderError("timeout", f"{status} {message}", retryable=True)
    return ProviderError("bad_request", f"{status} {message}", retryable=False)


def unexpected_error(error: Exception) -> ProviderError:
    """The ProviderError for what an SDK let through unwrapped: a body that does not parse,
    or its HTTP client's transport error (a connection refused or cut mid-stream)."""
    if isinstance(error, (ValueError, KeyError, TypeError, AttributeError, IndexError)):
        return ProviderError("bad_response", f"unreadable answer: {error!r}", retryable=True)
    return ProviderError("connection", f"transport failed: {error!r}", retryable=True)


class ProviderConfigError(Exception):
    """A provider cannot start with the given settings; the message says what to set."""


# What a provider's stream yields: text deltas, then any tool calls once each is whole.
Delta = str | ToolCall


class Provider(ABC):
    """One language model behind `generate` (whole answer) and `stream` (text deltas and
    tool calls)."""

    name: str
    model: str
    # What an attempt needs at the least to have a chance; failover keeps this much back
    # for every provider still to try.
    min_attempt_seconds: float = 1.0

    @abstractmethod
    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        """The answer to `prompt.user_text`; raises ProviderError on failure."""

    async def stream(self, prompt: Prompt, budget: float) -> AsyncGenerator[Delta, None]:
        """The answer as text deltas, then its tool calls. Providers without streaming
        yield it whole."""
        completion = await self.generate(prompt, budget)
        if completion.text:
            yield completion.text
        for call in completion.tool_calls:
            yield call

    async def close(self) -> None:
        """Release HTTP clients; providers without any need not override it."""
