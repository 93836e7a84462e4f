"""`.env.example` documents every setting, and its values are valid for every service."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest
from pydantic_settings import BaseSettings

from aura_dev import settings_reference
from aura_llm.config import Settings as LlmSettings
from aura_memory.config import Settings as MemorySettings
from aura_telephony import phrases
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
        "AURA_EVAL_CALLER_MODEL",
        "EVAL_ARGS",
        "BENCH_ARGS",
        "BASE_IMAGE",
        "CA_BUNDLE",
        "PYTEST_ARGS",
        "K8S_VERSION",
        "NODE_IP",
        "SSL_CERT_FILE",  # the CA file Python's TLS clients trust
        "CONFIG_NFT_QUEUE",  # a kernel option the local cluster's docs name
    }
    # gRPC status codes and health states, which the README names too.
    others |= {code.name for code in grpc.StatusCode} | {"NOT_SERVING", "SERVICE_UNKNOWN"}
    others |= set(phrases.LINES)  # the lines of the phrase catalogues
    drifted = named - everybody - others
    assert not drifted, f"the docs name {sorted(drifted)}: no service has such a setting"


# --- .env.example and docs/settings.md are written from the settings classes -------------


def drifted(committed: str) -> list[str]:
    """The settings whose lines in `committed` are not what their declaration writes."""
    blocks = settings_reference.env_blocks()
    stale = (
        {m[1] for m in re.finditer(r"^(?:# )?([A-Z][A-Z0-9_]+)=", committed, re.M)}
        - set(blocks)
        - {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"}
    )
    return sorted({n for n, block in blocks.items() if block not in committed} | stale)


def test_env_example_is_written_from_the_settings_classes() -> None:
    committed = EXAMPLE.read_text()
    if committed != settings_reference.render_env_example():
        pytest.fail(
            f".env.example drifted at {drifted(committed) or 'its layout'}: run make settings"
        )


def test_a_changed_description_names_its_setting() -> None:
    committed = settings_reference.render_env_example()
    edited = committed.replace("# Where telephony listens.\n", "# Where it listens.\n")
    assert drifted(edited) == ["HOST"]
    assert drifted(committed + "NO_SUCH_SETTING=1\n") == ["NO_SUCH_SETTING"]


def test_the_settings_page_is_written_from_the_settings_classes() -> None:
    page = ROOT / "docs" / "settings.md"
    expected = settings_reference.render_settings_page()
    if page.read_text() != expected:
        lines = set(page.read_text().splitlines())
        names = [
            re.match(r"\| `(\w+)`", line)[1]  # type: ignore[index]
            for line in expected.splitlines()
            if line.startswith("| `") and line not in lines
        ]
        pytest.fail(f"docs/settings.md drifted at {names or 'its layout'}: run make settings")


def readme_defaults() -> list[tuple[str, str]]:
    """(setting, default) pairs the README's settings table states as values."""
    pairs = []
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        values = [v.strip() for v in cells[1].split(",")]
        if len(names) == len(values):
            pairs += [(n, v) for n, v in zip(names, values, strict=True)]
    return pairs


def test_the_readme_states_the_real_defaults() -> None:
    pairs = readme_defaults()
    assert len(pairs) >= 10, "the README's settings table was not found"
    wrong = []
    for name, stated in pairs:
        settings = next(s for s in SERVICES if name in s.model_fields)
        actual = settings_reference.env_value(settings.model_fields[name].default)
        value = re.fullmatch(r"`([^`]*)`", stated)
        if (value and value[1] != actual) or (stated == "empty" and actual):
            wrong.append(f"{name}: README says {stated}, the default is {actual!r}")
    assert not wrong, wrong
