"""Providers, one module per vendor. `build_provider` picks one by name.

Vendor SDKs are imported only by their own module, so a deployment that uses the local
provider never needs them installed."""

from __future__ import annotations

from aura_llm.config import Settings
from aura_llm.knowledge.library import LiveKnowledge
from aura_llm.providers.base import (
    ChatTurn,
    Completion,
    Prompt,
    Provider,
    ProviderConfigError,
    ProviderError,
)

__all__ = [
    "ChatTurn",
    "Completion",
    "Prompt",
    "Provider",
    "ProviderConfigError",
    "ProviderError",
    "build_provider",
    "build_providers",
]

_REQUIRED_KEY = {"openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}


def build_provider(name: str, settings: Settings, library: LiveKnowledge) -> Provider:
    """Build the named provider, failing with an actionable message on missing settings."""
    key_name = _REQUIRED_KEY.get(name)
    if key_name and not getattr(settings, key_name):
        raise ProviderConfigError(
            f"the {name} provider needs {key_name}: set it in the environment or .env, "
            f"or take {name} out of AI_PROVIDER / AI_FALLBACK_PROVIDERS"
        )
    if name == "local":
        from aura_llm.providers.local import LocalProvider

        return LocalProvider(library, settings.AI_ASSISTANT_NAME)
    if name == "openai":
        from aura_llm.providers.openai import OpenAIProvider

        return OpenAIProvider(
            api_key=settings.OPENAI_API_KEY,
            model=settings.OPENAI_MODEL,
            base_url=settings.OPENAI_BASE_URL,
            max_output_tokens=settings.LLM_MAX_OUTPUT_TOKENS,
        )
    if name == "gemini":
        from aura_llm.providers.gemini import GeminiProvider

        return GeminiProvider(
            api_key=settings.GEMINI_API_KEY,
            model=settings.GEMINI_MODEL,
            base_url=settings.GEMINI_BASE_URL,
            max_output_tokens=settings.LLM_MAX_OUTPUT_TOKENS,
        )
    raise ProviderConfigError(f"unknown AI_PROVIDER {name!r}: choose local, openai or gemini")


def build_providers(settings: Settings, library: LiveKnowledge) -> list[Provider]:
    """AI_PROVIDER and its fallbacks, in order; any one misconfigured stops the start."""
    return [build_provider(name, settings, library) for name in settings.provider_chain]
