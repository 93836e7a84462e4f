"""Base settings: every service reads the environment and an optional `.env` the same way."""

from __future__ import annotations

import sys
from importlib import metadata
from typing import Literal, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class AuraSettings(BaseSettings):
    """Environment variables win over `.env`; unknown variables are ignored because the
    three services share one `.env` and each reads only its own names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    LOG_LEVEL: str = "INFO"
    # json for log collectors, text for people; auto picks text in a terminal.
    LOG_FORMAT: Literal["auto", "json", "text"] = "auto"
    MAX_CONVERSATION_LENGTH: int = 20


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """The settings, or exit 2 with one line per bad variable instead of a traceback."""
    try:
        return cls()
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        print("invalid configuration:\n" + "\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None


def package_version(distribution: str) -> str:
    """The installed version of one of Aura's distributions, e.g. `aura-telephony`."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"
