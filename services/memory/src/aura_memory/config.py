"""Memory service settings, read from the environment (and `.env`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from aura_common.settings import GrpcServiceSettings


class Settings(GrpcServiceSettings):
    MEMORY_HOST: str = Field(default="0.0.0.0", description="Where the memory service listens.")
    MEMORY_PORT: int = Field(default=50052, ge=1, le=65535, description="Its gRPC port.")
    MEMORY_METRICS_PORT: int = Field(
        default=9465, ge=1, le=65535, description="Its Prometheus metrics port."
    )
    MEMORY_STORE: Literal["memory", "redis"] = Field(
        default="memory",
        description="memory (one replica, lost on restart) or redis (several replicas, "
        "survives restarts).",
    )
    REDIS_URL: str = Field(
        default="redis://localhost:6379/0",
        description="With MEMORY_STORE=redis: redis://[:password@]host:port/db, or "
        "rediss:// for TLS.",
    )
    REDIS_TIMEOUT_SECONDS: float = Field(
        default=1.0,
        gt=0,
        description="Per-command timeout; with Redis down, requests fail fast (UNAVAILABLE) "
        "and recover by themselves.",
    )
    REDIS_KEY_PREFIX: str = Field(
        default="aura", description="Prefix of every key, to share one Redis between deployments."
    )
    TRANSCRIPT_RETENTION_DAYS: float = Field(
        default=30.0,
        gt=0,
        description="How long the full transcript of an ended call is kept (the working "
        "history goes at the end).",
    )
    MAX_TRANSCRIPT_TURNS: int = Field(
        default=500, ge=1, description="Turns kept in a call's transcript; the oldest go beyond."
    )
    MAX_TRANSCRIPTS: int = Field(
        default=10_000,
        ge=1,
        description="The in-memory store keeps at most this many ended transcripts, oldest "
        "dropped first (about 8 KiB each); durable transcripts need MEMORY_STORE=redis.",
    )
    CONVERSATION_TTL_SECONDS: float = Field(
        default=3600.0,
        gt=0,
        description="A call idle this long that never sent a final status callback is "
        "archived as ended with status unknown (its transcript kept for "
        "TRANSCRIPT_RETENTION_DAYS).",
    )
    IDEMPOTENCY_KEYS_PER_CALL: int = Field(
        default=64,
        ge=1,
        description="Idempotency keys remembered per call (Twilio retries only its latest "
        "requests).",
    )
