from __future__ import annotations

import pytest

from aura_llm.config import Settings
from aura_llm.providers import ProviderConfigError, build_provider


@pytest.mark.parametrize(
    ("provider", "variable"), [("openai", "OPENAI_API_KEY"), ("gemini", "GEMINI_API_KEY")]
)
def test_missing_key_names_the_variable(provider: str, variable: str) -> None:
    settings = Settings.model_validate(
        {"AI_PROVIDER": provider, "OPENAI_API_KEY": "", "GEMINI_API_KEY": ""}
    )
    with pytest.raises(ProviderConfigError, match=variable):
        build_provider(provider, settings)


def test_unknown_provider_lists_the_choices() -> None:
    with pytest.raises(ProviderConfigError, match="choose local, openai or gemini"):
        build_provider("claude", Settings.model_validate({}))


def test_local_is_the_default() -> None:
    settings = Settings.model_validate({})
    provider = build_provider(settings.AI_PROVIDER, settings)
    assert provider.name == "local"
    assert provider.model == "knowledge-base/sample_bakery"
