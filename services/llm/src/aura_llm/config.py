"""llm service settings, read from the environment (and `.env`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from aura_common.settings import GrpcServiceSettings

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
REALTIME_PROVIDER_NAMES: tuple[ProviderName, ...] = ("openai", "gemini")


class Settings(GrpcServiceSettings):
    LLM_HOST: str = Field(default="0.0.0.0", description="Where the llm service listens.")
    LLM_PORT: int = Field(default=50051, ge=1, le=65535, description="Its gRPC port.")
    LLM_METRICS_PORT: int = Field(
        default=9464, ge=1, le=65535, description="Its Prometheus metrics port."
    )
    AI_PROVIDER: ProviderName = Field(
        default="local",
        description="local (offline, answers from the knowledge), openai or gemini.",
    )
    AI_FALLBACK_PROVIDERS: str = Field(
        default="",
        description="Providers tried in order when the one before fails (timeout, 429, "
        "5xx, connection error, empty or malformed answer, rejected key), e.g. "
        "gemini,local. Empty: no failover.",
    )
    AI_SYSTEM_PROMPT: str = Field(
        default=DEFAULT_SYSTEM_PROMPT,
        description="The system prompt of model providers; {assistant_name} is filled in.",
    )
    KNOWLEDGE_BASE_PATH: Path = Field(
        default=SAMPLE_KNOWLEDGE_BASE,
        examples=["/path/to/your_business.yaml"],
        description="The business's knowledge, for every provider: a YAML file of entries, "
        "or a directory of .yaml/.yml, .md, .txt and .pdf files, reloaded when it changes "
        "on disk. Unset: the sample bakery that ships with Aura.",
    )
    KNOWLEDGE_TOP_K: int = Field(
        default=4, ge=1, le=50, description="Passages given to the model per turn."
    )
    KNOWLEDGE_MAX_CHARS: int = Field(
        default=4000,
        ge=200,
        le=100_000,
        description="The most characters of passages per turn; knowledge that fits is sent "
        "whole, the same on every turn (prompt caches hit).",
    )
    GROUNDING: GroundingMode = Field(
        default="flag",
        description="Times, days, dates, prices and numbers in an answer that none of its "
        "sources holds: off, flag (counted in aura_llm_ungrounded_answers_total and marked "
        'on the turn) or strict (the caller hears "I\'m not sure" instead).',
    )
    OPENAI_API_KEY: str = Field(default="", description="Required when openai is used.")
    OPENAI_MODEL: str = Field(default="gpt-4o-mini", description="The OpenAI text model.")
    OPENAI_BASE_URL: str = Field(
        default="",
        description="Any OpenAI-compatible server (vLLM, Ollama, LM Studio, llama.cpp "
        "server), e.g. http://localhost:11434/v1. Empty: OpenAI's.",
    )
    GEMINI_API_KEY: str = Field(default="", description="Required when gemini is used.")
    GEMINI_MODEL: str = Field(default="gemini-2.5-flash", description="The Gemini text model.")
    GEMINI_BASE_URL: str = Field(default="", description="Another Gemini API endpoint.")
    LLM_DEFAULT_TIMEOUT_SECONDS: float = Field(
        default=10.0,
        gt=0,
        description="The deadline used only when a caller sets none (telephony always sets one).",
    )
    LLM_ATTEMPT_TIMEOUT_SECONDS: float = Field(
        default=6.0,
        gt=0,
        description="The most one provider attempt may take, however much of the caller's "
        "deadline is left.",
    )
    LLM_MAX_RETRIES: int = Field(
        default=1,
        ge=0,
        le=5,
        description="Retries on the same provider after a retryable failure, while the "
        "deadline allows.",
    )
    LLM_RETRY_BACKOFF_SECONDS: float = Field(
        default=0.2, ge=0, description="The base of the retries' jittered exponential backoff."
    )
    LLM_MAX_OUTPUT_TOKENS: int = Field(
        default=300, ge=16, description="Cap on an answer's length; phone answers are short."
    )
    TOOLS_PATH: Path | None = Field(
        default=SAMPLE_TOOLS,
        examples=["/path/to/your_tools.yaml"],
        description="The tools the assistant may call (YAML: departments, built-in call "
        "actions, HTTP tools, MCP servers). Unset: the sample bakery's; empty: no tools.",
    )
    TOOLS_SIGNING_SECRET: str = Field(
        default="",
        description="Signs every HTTP tool request (X-Aura-Signature); required when the "
        "tools file has one.",
    )
    MAX_TOOL_ROUNDS: int = Field(
        default=3,
        ge=1,
        le=8,
        description="Model <-> tool rounds in one turn; the answer after the last may only speak.",
    )

    REALTIME_OPENAI_MODEL: str = Field(
        default="gpt-realtime", description="The OpenAI Realtime model of VOICE_MODE=realtime."
    )
    REALTIME_GEMINI_MODEL: str = Field(
        default="gemini-2.5-flash-native-audio-preview-12-2025",
        description="The Gemini Live (native audio) model of VOICE_MODE=realtime.",
    )
    REALTIME_VOICE: str = Field(
        default="",
        description="The realtime model's voice (OpenAI: marin, cedar, alloy, ...; Gemini: "
        "Kore, Puck, ...). Empty: marin on OpenAI, the model's own on Gemini.",
    )
    REALTIME_TURN_DETECTION: Literal["server_vad", "semantic_vad"] = Field(
        default="server_vad",
        description="How the model decides the caller finished: server_vad (a pause of "
        "REALTIME_SILENCE_MS) or semantic_vad (OpenAI judges from the words; Gemini uses "
        "its own detection either way).",
    )
    REALTIME_SILENCE_MS: int = Field(
        default=500,
        ge=100,
        le=5000,
        description="With server_vad, the pause that ends the caller's turn.",
    )
    REALTIME_TRANSCRIPTION_MODEL: str = Field(
        default="gpt-4o-mini-transcribe",
        description="The model OpenAI writes the caller's words down with, for the "
        "transcript and the knowledge's retrieval.",
    )
    REALTIME_CONNECT_SECONDS: float = Field(
        default=5.0,
        gt=0,
        le=30,
        description="A realtime session must open within this, or the next realtime "
        "provider is tried.",
    )
    REALTIME_RESPONSE_SECONDS: float = Field(
        default=8.0,
        gt=0,
        le=60,
        description="A provider that has not begun to answer this long after the caller "
        "finished (or a tool's result) is failed over.",
    )
    REALTIME_MAX_SESSION_SECONDS: float = Field(
        default=1200.0,
        gt=0,
        description="A vendor session older than this is renewed between two answers (OpenAI "
        "caps sessions at 60 minutes; Gemini's connections are renewed on its go_away).",
    )

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
    def languages(self) -> list[str]:
        """LANGUAGES as a list (empty: one language, whatever telephony speaks)."""
        return self.LANGUAGES.split(",") if self.LANGUAGES else []

    @property
    def realtime_chain(self) -> list[str]:
        """The providers of the chain that have a speech-to-speech model, in order."""
        return [name for name in self.provider_chain if name in REALTIME_PROVIDER_NAMES]

    @property
    def provider_chain(self) -> list[str]:
        """AI_PROVIDER then each fallback, each once."""
        chain = [self.AI_PROVIDER, *self.AI_FALLBACK_PROVIDERS.split(",")]
        return list(dict.fromkeys(n for n in chain if n))
