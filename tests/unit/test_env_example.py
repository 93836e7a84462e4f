"""`.env.example` documents every setting, and its values are valid for every service."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from aura_llm.config import Settings as LlmSettings
from aura_memory.config import Settings as MemorySettings
from aura_telephony.config import Settings as TelephonySettings

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
SERVICES: list[type[BaseSettings]] = [TelephonySettings, LlmSettings, MemorySettings]


def documented() -> set[str]:
    names = set()
    for line in EXAMPLE.read_text().splitlines():
        line = line.strip().removeprefix("# ")
        name, sep, _ = line.partition("=")
        if sep and name.isupper() and " " not in name:
            names.add(name)
    return names


@pytest.mark.parametrize("settings", SERVICES)
def test_every_setting_is_documented(settings: type[BaseSettings]) -> None:
    missing = set(settings.model_fields) - documented()
    assert not missing, f"add {sorted(missing)} to .env.example"


@pytest.mark.parametrize("settings", SERVICES)
def test_the_example_is_valid(settings: type[BaseSettings]) -> None:
    settings(_env_file=EXAMPLE)
