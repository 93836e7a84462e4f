"""Conversation stores. `build_store` picks one from the settings."""

from __future__ import annotations

from aura_memory.config import Settings
from aura_memory.stores.base import (
    AppendResult,
    CallRecord,
    ConversationStore,
    StoredTurn,
    StoreUnavailableError,
)
from aura_memory.stores.memory import InMemoryStore

__all__ = [
    "AppendResult",
    "CallRecord",
    "ConversationStore",
    "InMemoryStore",
    "StoreUnavailableError",
    "StoredTurn",
    "build_store",
]


def build_store(settings: Settings) -> ConversationStore:
    retention = settings.TRANSCRIPT_RETENTION_DAYS * 86400
    if settings.MEMORY_STORE == "redis":
        from aura_memory.stores.redis import RedisStore

        return RedisStore(
            settings.REDIS_URL,
            max_turns=settings.MAX_CONVERSATION_LENGTH,
            ttl_seconds=settings.CONVERSATION_TTL_SECONDS,
            max_transcript_turns=settings.MAX_TRANSCRIPT_TURNS,
            retention_seconds=retention,
            timeout=settings.REDIS_TIMEOUT_SECONDS,
            prefix=settings.REDIS_KEY_PREFIX,
        )
    return InMemoryStore(
        max_turns=settings.MAX_CONVERSATION_LENGTH,
        ttl_seconds=settings.CONVERSATION_TTL_SECONDS,
        keys_per_call=settings.IDEMPOTENCY_KEYS_PER_CALL,
        max_transcript_turns=settings.MAX_TRANSCRIPT_TURNS,
        retention_seconds=retention,
        max_transcripts=settings.MAX_TRANSCRIPTS,
    )
