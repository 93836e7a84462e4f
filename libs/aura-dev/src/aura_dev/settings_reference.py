"""`.env.example` and docs/settings.md, written from the services' settings classes.

Each setting is declared once, with its description, in its service's settings class;
`make settings` rewrites both files from them, and a unit test fails, naming the setting,
when a committed file no longer matches.
"""

from __future__ import annotations

import argparse
import json
import re
import textwrap
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import annotated_types
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from aura_common.settings import AuraSettings, GrpcServiceSettings
from aura_llm.config import Settings as LlmSettings
from aura_memory.config import Settings as MemorySettings
from aura_telephony.config import Settings as TelephonySettings

ROOT = Path(__file__).resolve().parents[4]
ENV_EXAMPLE = ROOT / ".env.example"
SETTINGS_PAGE = ROOT / "docs" / "settings.md"
WIDTH = 92
# A default longer than this is shown commented out: the service's own default then
# follows the code, not a copy pasted into someone's .env.
LONG_DEFAULT = 100

ENV_HEADER = """\
# Aura configuration. Copy to .env and edit; real environment variables override this file.
# All three services read the same file and each takes only the names it uses.
# Written by `make settings` from the services' settings classes: edit those, not this.
"""
OTEL_BLOCK = """\
# Traces go to an OTLP gRPC endpoint when one is set (the standard OpenTelemetry variables);
# unset, tracing is off and costs nothing.
# OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4317
# OTEL_TRACES_SAMPLER=parentbased_traceidratio
# OTEL_TRACES_SAMPLER_ARG=0.1
"""
PAGE_HEADER = """\
# Settings

Every setting of the three services, from their settings classes (`config.py` in each
service); `.env.example` holds the same. Environment variables win over `.env`. Written by
`make settings`: edit the settings classes, not this page. The Helm chart maps its values
onto these names ([kubernetes.md](kubernetes.md)).
"""


@dataclass(frozen=True)
class Section:
    title: str
    cls: type[BaseSettings]
    base: type[BaseSettings] | None

    def fields(self) -> Iterator[tuple[str, FieldInfo]]:
        inherited = self.base.model_fields if self.base else {}
        for name, info in self.cls.model_fields.items():
            if name not in inherited:
                yield name, info


SECTIONS = (
    Section("Telephony (the service Twilio calls)", TelephonySettings, AuraSettings),
    Section("llm service", LlmSettings, GrpcServiceSettings),
    Section("memory service", MemorySettings, GrpcServiceSettings),
    Section("llm and memory", GrpcServiceSettings, AuraSettings),
    Section("all services", AuraSettings, None),
)


def env_value(value: object) -> str:
    """A default as it is written in a .env file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return json.dumps(value) if value else ""
    return "" if value is None else str(value)


def env_line(name: str, info: FieldInfo) -> str:
    if info.examples:
        return f"# {name}={info.examples[0]}"
    value = env_value(info.get_default(call_default_factory=True))
    # Unset (None) differs from empty: the line stays a comment until it is given a value.
    unset = info.default is None
    commented = unset or isinstance(info.default, Path) or len(value) > LONG_DEFAULT
    return f"{'# ' if commented else ''}{name}={value}"


def env_block(name: str, info: FieldInfo) -> str:
    if not info.description:
        raise ValueError(f"{name} has no description")
    wrapped = textwrap.wrap(info.description, WIDTH - 2)
    return "".join(f"# {line}\n" for line in wrapped) + env_line(name, info) + "\n"


def env_blocks() -> dict[str, str]:
    """Each setting's lines in `.env.example` (its description, then its line)."""
    return {name: env_block(name, info) for s in SECTIONS for name, info in s.fields()}


def render_env_example() -> str:
    blocks = env_blocks()
    parts = [ENV_HEADER]
    for section in SECTIONS:
        rule = f"# --- {section.title} "
        parts.append("\n" + rule + "-" * (WIDTH - len(rule)) + "\n")
        parts += [blocks[name] for name, _ in section.fields()]
        if section.cls is AuraSettings:
            parts.append(OTEL_BLOCK)
    return "".join(parts)


def allowed(info: FieldInfo) -> str:
    """The values a setting takes, from its type and bounds."""
    choices = [a for a in typing.get_args(info.annotation) if isinstance(a, str)]
    if typing.get_origin(info.annotation) is typing.Literal:
        return "one of " + ", ".join(f"`{c}`" if c else "empty" for c in choices)
    bounds = {
        sign: env_value(getattr(rule, attr))
        for rule in info.metadata
        for kind, attr, sign in (
            (annotated_types.Ge, "ge", ">="),
            (annotated_types.Gt, "gt", ">"),
            (annotated_types.Le, "le", "<="),
            (annotated_types.Lt, "lt", "<"),
        )
        if isinstance(rule, kind)
    }
    if ">=" in bounds and "<=" in bounds:
        return f"{bounds['>=']} to {bounds['<=']}"
    return ", ".join(f"{sign} {value}" for sign, value in bounds.items())


# Names, tags and placeholders in a description, set as code on the page.
CODE = re.compile(r"<[A-Za-z]+>|\{[a-z_]+\}|\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b")


def page_default(info: FieldInfo) -> str:
    if isinstance(info.default, Path):
        return f"shipped `{info.default.name}`"
    value = env_value(info.get_default(call_default_factory=True))
    return f"`{value}`" if value else "empty"


def render_settings_page() -> str:
    parts = [PAGE_HEADER]
    for section in SECTIONS:
        parts.append(f"\n## {section.title[0].upper()}{section.title[1:]}\n\n")
        parts.append("| setting | default | values | what it does |\n| --- | --- | --- | --- |\n")
        for name, info in section.fields():
            text = CODE.sub(lambda m: f"`{m[0]}`", info.description or "").replace("|", "\\|")
            parts.append(f"| `{name}` | {page_default(info)} | {allowed(info)} | {text} |\n")
    return "".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    ENV_EXAMPLE.write_text(render_env_example())
    SETTINGS_PAGE.write_text(render_settings_page())
    print(f"wrote {ENV_EXAMPLE.relative_to(ROOT)} and {SETTINGS_PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
