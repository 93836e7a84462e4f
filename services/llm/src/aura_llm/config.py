"""llm service settings, read from the environment (and `.env`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from aura_common.settings import AuraSettings

SAMPLE_KNOWLEDGE_BASE = Path(__file__).parent / "knowledge" / "sample_bakery.yaml"
SAMPLE_TOOLS = Path(__file__).parent / "knowledge" / "sample_tools.yaml"

DEFAULT_SYSTEM_PROMPT = (
    "You are {assistant_name}, a friendly voice assistant answering the phone. "
    "Everything you write is read aloud to a caller, so answer in one to three short "
    "sentences of plain speech: no markdown, no lists, no emojis, no links. "
    "If you do not know something, say so and offer what you can help with."
)

ProviderName = Literal["local", "openai", "gemini"]
GroundingMode = Literal["off", "flag", "strict"]
PROVIDER_NAMES: tuple[ProviderName, ...] = ("local", "openai", "gemini")


class Settings(AuraSettings):
    LLM_HOST: str = "0.0.0.0"
    LLM_PORT: int = Field(default=50051, ge=1, le=65535)
    # Prometheus metrics at http://METRICS_HOST:LLM_METRICS_PORT/metrics
    METRICS_HOST: str = "0.0.0.0"
    LLM_METRICS_PORT: int = Field(default=9464, ge=1, le=65535)
    AI_PROVIDER: ProviderName = "local"
    # Tried in order when the provider before fails, e.g. "openai,local".
    AI_FALLBACK_PROVIDERS: str = ""
    AI_ASSISTANT_NAME: str = "Aura"
    AI_SYSTEM_PROMPT: str = DEFAULT_SYSTEM_PROMPT
    # A YAML file of entries, or a directory of .yaml/.yml, .md, .txt and .pdf files; the
    # same knowledge for every provider, reloaded when it changes on disk.
    KNOWLEDGE_BASE_PATH: Path = SAMPLE_KNOWLEDGE_BASE
    # Passages given to the model per turn, and the most characters of them; knowledge
    # that fits in KNOWLEDGE_MAX_CHARS is given whole, the same on every turn.
    KNOWLEDGE_TOP_K: int = Field(default=4, ge=1, le=50)
    KNOWLEDGE_MAX_CHARS: int = Field(default=4000, ge=200, le=100_000)
    # Facts in answers (times, days, dates, prices, numbers) missing from the passages,
    # the conversation and tool results: off, flag (count and mark), strict (not said).
    GROUNDING: GroundingMode = "flag"
    OPENAI_API_KEY: str = ""
    OPENAI_MODEL: str = "gpt-4o-mini"
    OPENAI_BASE_URL: str = ""
    GEMINI_API_KEY: str = ""
    GEMINI_MODEL: str = "gemini-2.5-flash"
    GEMINI_BASE_URL: str = ""
    # Used when a caller sets no gRPC deadline; telephony always sets one.
    LLM_DEFAULT_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    # The most one provider attempt may take, however much of the deadline remains.
    LLM_ATTEMPT_TIMEOUT_SECONDS: float = Field(default=6.0, gt=0)
    # Retries on the same provider after a retryable failure, when time allows.
    LLM_MAX_RETRIES: int = Field(default=1, ge=0, le=5)
    LLM_RETRY_BACKOFF_SECONDS: float = Field(default=0.2, ge=0)
    LLM_MAX_OUTPUT_TOKENS: int = Field(default=300, ge=16)
    # The tools the assistant may call (YAML; see the README). Empty: no tools at all.
    TOOLS_PATH: Path | None = SAMPLE_TOOLS
    # Signs every HTTP tool request (X-Aura-Signature); required when the file has one.
    TOOLS_SIGNING_SECRET: str = ""
    # Model <-> tool rounds in one turn; the round after the last may only speak.
    MAX_TOOL_ROUNDS: int = Field(default=3, ge=1, le=8)

    @field_validator("TOOLS_PATH", mode="before")
    @classmethod
    def _no_tools(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("AI_FALLBACK_PROVIDERS")
    @classmethod
    def _fallbacks(cls, value: str) -> str:
        names = [n.strip().lower() for n in value.split(",") if n.strip()]
        unknown = [n for n in names if n not in PROVIDER_NAMES]
        if unknown:
            raise ValueError(f"unknown providers {unknown}: choose from local, openai, gemini")
        return ",".join(names)

    @property
    def provider_chain(self) -> list[str]:
        """AI_PROVIDER then each fallback, each once."""
        chain = [self.AI_PROVIDER, *self.AI_FALLBACK_PROVIDERS.split(",")]
        return list(dict.fromkeys(n for n in chain if n))

    GRACEFUL_SHUTDOWN_SECONDS: float = Field(default=5.0, ge=0)
