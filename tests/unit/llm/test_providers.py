from __future__ import annotations

import pytest

from aura_llm.config import SAMPLE_KNOWLEDGE_BASE, Settings
from aura_llm.knowledge.library import LiveKnowledge
from aura_llm.providers import ProviderConfigError, build_provider

SAMPLE = LiveKnowledge(SAMPLE_KNOWLEDGE_BASE)


@pytest.mark.parametrize(
    ("provider", "variable"), [("openai", "OPENAI_API_KEY"), ("gemini", "GEMINI_API_KEY")]
)
def test_missing_key_names_the_variable(provider: str, variable: str) -> None:
    settings = Settings.model_validate(
        {"AI_PROVIDER": provider, "OPENAI_API_KEY": "", "GEMINI_API_KEY": ""}
    )
    with pytest.raises(ProviderConfigError, match=variable):
        build_provider(provider, settings, SAMPLE)


def test_unknown_provider_lists_the_choices() -> None:
    with pytest.raises(ProviderConfigError, match="choose local, openai or gemini"):
        build_provider("claude", Settings.model_validate({}), SAMPLE)


def test_local_is_the_default() -> None:
    settings = Settings.model_validate({})
    provider = build_provider(settings.AI_PROVIDER, settings, SAMPLE)
    assert provider.name == "local"
    assert provider.model == "knowledge-base/sample_bakery"
