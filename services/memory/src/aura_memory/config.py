"""Memory service settings, read from the environment (and `.env`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from aura_common.settings import AuraSettings


class Settings(AuraSettings):
    MEMORY_HOST: str = "0.0.0.0"
    MEMORY_PORT: int = Field(default=50052, ge=1, le=65535)
    # Prometheus metrics at http://METRICS_HOST:MEMORY_METRICS_PORT/metrics
    METRICS_HOST: str = "0.0.0.0"
    MEMORY_METRICS_PORT: int = Field(default=9465, ge=1, le=65535)
    MEMORY_STORE: Literal["memory", "redis"] = "memory"
    # redis://[:password@]host:port/db, or rediss:// for TLS.
    REDIS_URL: str = "redis://localhost:6379/0"
    # Per-command timeout: with Redis down, requests fail fast with UNAVAILABLE.
    REDIS_TIMEOUT_SECONDS: float = Field(default=1.0, gt=0)
    REDIS_KEY_PREFIX: str = "aura"
    # Full transcripts of ended calls are kept this long (working history goes at the end).
    TRANSCRIPT_RETENTION_DAYS: float = Field(default=30.0, gt=0)
    MAX_TRANSCRIPT_TURNS: int = Field(default=500, ge=1)
    # The in-memory store keeps at most this many ended transcripts, dropping the oldest
    # first (about 8 KiB each); durable transcripts need Redis.
    MAX_TRANSCRIPTS: int = Field(default=10_000, ge=1)
    # A call idle this long that never sent a final status callback is archived as ended
    # with status unknown (its transcript kept for the retention period).
    CONVERSATION_TTL_SECONDS: float = Field(default=3600.0, gt=0)
    # Idempotency keys remembered per call; Twilio retries only the last few requests.
    IDEMPOTENCY_KEYS_PER_CALL: int = Field(default=64, ge=1)
    GRACEFUL_SHUTDOWN_SECONDS: float = Field(default=5.0, ge=0)
