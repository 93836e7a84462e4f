"""VOICE_MODE=realtime: speech-to-speech providers behind the llm service's Converse RPC."""

from __future__ import annotations

from aura_llm.config import Settings
from aura_llm.providers.base import ProviderConfigError
from aura_llm.realtime.base import RealtimeProvider
from aura_llm.realtime.conversation import Conversation, Played, Ready, Say, Start, Transcript

__all__ = [
    "Conversation",
    "Played",
    "Ready",
    "RealtimeProvider",
    "Say",
    "Start",
    "Transcript",
    "build_realtime_providers",
]


def build_realtime_providers(settings: Settings) -> list[RealtimeProvider]:
    """The realtime providers of the chain, in order. In realtime mode a chain without one
    (the local provider has no audio model) is a configuration error."""
    names = settings.realtime_chain
    if settings.VOICE_MODE == "realtime" and not names:
        raise ProviderConfigError(
            "VOICE_MODE=realtime needs a speech-to-speech provider: set AI_PROVIDER (or "
            "AI_FALLBACK_PROVIDERS) to openai or gemini; local has no audio model"
        )
    providers: list[RealtimeProvider] = []
    for name in names:
        if name == "openai" and settings.OPENAI_API_KEY:
            from aura_llm.realtime.openai import OpenAIRealtime

            providers.append(
                OpenAIRealtime(
                    api_key=settings.OPENAI_API_KEY,
                    model=settings.REALTIME_OPENAI_MODEL,
                    base_url=settings.OPENAI_BASE_URL,
                    transcription_model=settings.REALTIME_TRANSCRIPTION_MODEL,
                )
            )
        elif name == "gemini" and settings.GEMINI_API_KEY:
            from aura_llm.realtime.gemini import GeminiRealtime

            providers.append(
                GeminiRealtime(
                    api_key=settings.GEMINI_API_KEY,
                    model=settings.REALTIME_GEMINI_MODEL,
                    base_url=settings.GEMINI_BASE_URL,
                )
            )
    return providers
