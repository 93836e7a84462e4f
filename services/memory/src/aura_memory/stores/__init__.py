"""Conversation stores. `build_store` picks one from the settings."""

from __future__ import annotations

from aura_memory.config import Settings
from aura_memory.stores.base import AppendResult, ConversationStore, StoredTurn
from aura_memory.stores.memory import InMemoryStore

__all__ = ["AppendResult", "ConversationStore", "InMemoryStore", "StoredTurn", "build_store"]


def build_store(settings: Settings) -> ConversationStore:
    return InMemoryStore(
        max_turns=settings.MAX_CONVERSATION_LENGTH,
        ttl_seconds=settings.CONVERSATION_TTL_SECONDS,
        keys_per_call=settings.IDEMPOTENCY_KEYS_PER_CALL,
    )
