"""Providers, one module per vendor. `build_provider` picks one by name.

Vendor SDKs are imported only by their own module, so a deployment that uses the local
provider never needs them installed."""

from __future__ import annotations

from aura_llm.config import Settings
from aura_llm.providers.base import (
    ChatTurn,
    Prompt,
    Provider,
    ProviderConfigError,
    ProviderError,
)

__all__ = [
    "ChatTurn",
    "Prompt",
    "Provider",
    "ProviderConfigError",
    "ProviderError",
    "build_provider",
]

_REQUIRED_KEY = {"openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}


def build_provider(name: str, settings: Settings) -> Provider:
    """Build the named provider, failing with an actionable message on missing settings."""
    key_name = _REQUIRED_KEY.get(name)
    if key_name and not getattr(settings, key_name):
        raise ProviderConfigError(
            f"AI_PROVIDER={name} needs {key_name}: set it in the environment or .env, "
            "or use AI_PROVIDER=local"
        )
    if name == "local":
        from aura_llm.providers.local import LocalProvider

        return LocalProvider.from_file(settings.KNOWLEDGE_BASE_PATH, settings.AI_ASSISTANT_NAME)
    if name in _REQUIRED_KEY:
        raise ProviderConfigError(
            f"AI_PROVIDER={name} is not available in this version; use AI_PROVIDER=local"
        )
    raise ProviderConfigError(f"unknown AI_PROVIDER {name!r}: choose local, openai or gemini")
