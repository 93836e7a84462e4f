"""Telephony's two clients, on the channels this process keeps to llm and memory."""

from __future__ import annotations

from aura_telephony.channels import open_channel
from aura_telephony.config import Settings
from aura_telephony.llm_client import LlmClient
from aura_telephony.memory_client import MAX_STORED_TURN_CHARS, MemoryClient

__all__ = ["MAX_STORED_TURN_CHARS", "Backends"]


class Backends:
    def __init__(self, settings: Settings) -> None:
        self._memory_channel = open_channel(settings, settings.MEMORY_SERVICE_ADDRESS)
        self._llm_channel = open_channel(settings, settings.LLM_SERVICE_ADDRESS)
        self.memory = MemoryClient(self._memory_channel, settings)
        self.llm = LlmClient(self._llm_channel, settings)

    async def close(self) -> None:
        await self._memory_channel.close()
        await self._llm_channel.close()
