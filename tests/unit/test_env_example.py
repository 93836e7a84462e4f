"""`.env.example` documents every setting, and its values are valid for every service."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
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


# --- one source for each setting: the chart and the README name only real settings ---------

ROOT = EXAMPLE.parent
CHART_TEMPLATES = ROOT / "deploy" / "helm" / "aura" / "templates"
BY_SERVICE: dict[str, type[BaseSettings]] = {
    "telephony": TelephonySettings,
    "llm": LlmSettings,
    "memory": MemorySettings,
}
# Read by libraries, not by a settings class: OpenTelemetry's own variables.
NOT_OURS = ("OTEL_",)


def chart_env(service: str) -> set[str]:
    """The environment variable names the chart's template for `service` sets, and the
    helpers it includes (every service's common and gRPC variables)."""
    text = (CHART_TEMPLATES / f"{service}.yaml").read_text()
    helpers = (CHART_TEMPLATES / "_helpers.tpl").read_text()
    names = set(re.findall(r"- name: ([A-Z][A-Z0-9_]+)", text))
    names |= set(re.findall(r'"key" "([A-Z][A-Z0-9_]+)"', text))
    names |= set(re.findall(r"- name: ([A-Z][A-Z0-9_]+)", helpers))
    return {n for n in names if not n.startswith(NOT_OURS)}


@pytest.mark.parametrize("service", sorted(BY_SERVICE))
def test_the_chart_sets_only_settings_its_service_has(service: str) -> None:
    known = set(BY_SERVICE[service].model_fields)
    unknown = chart_env(service) - known
    # A helper shared by the three may set one service's variable in another: it must at
    # least be somebody's.
    everybody = set().union(*(s.model_fields for s in SERVICES))
    assert not (unknown - everybody), (
        f"the chart sets {sorted(unknown - everybody)}: no such setting"
    )


def test_the_readme_and_docs_name_only_real_settings() -> None:
    everybody = set().union(*(s.model_fields for s in SERVICES))
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    readme = "\n".join(page.read_text() for page in pages)
    # Settings appear in the README's tables and prose as `NAME` or `NAME=value`.
    named = set(re.findall(r"`([A-Z][A-Z0-9]*_[A-Z0-9_]+)(?:=[^`]*)?`", readme))
    others = {n for n in named if n.startswith(NOT_OURS)} | {
        # Variables of the tools around Aura, not of its services.
        "AURA_BASE_URL",
        "AURA_AUTH_TOKEN",
        "BENCH_ARGS",
        "BASE_IMAGE",
        "CA_BUNDLE",
        "PYTEST_ARGS",
        "K8S_VERSION",
        "NODE_IP",
    }
    # gRPC status codes and health states, which the README names too.
    others |= {code.name for code in grpc.StatusCode} | {"NOT_SERVING", "SERVICE_UNKNOWN"}
    drifted = named - everybody - others
    assert not drifted, f"the docs name {sorted(drifted)}: no service has such a setting"
