"""schemathesis against telephony's own OpenAPI document, over real HTTP to the three
services as processes: no generated request may cause a 5xx, and every response must
match the documented status codes, content types and schemas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from aura_dev.stack import Stack
from aura_telephony.config import Settings
from aura_telephony.main import create_app

# The document comes from the application object itself, so it is the one served.
schema = schemathesis.openapi.from_dict(create_app(Settings.model_validate({})).openapi())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("fuzz")
    # Unsigned mode, so that generated requests reach the call flow instead of stopping at 403.
    stack = Stack(
        env={"TWILIO_AUTH_TOKEN": "", "MAX_CALLS_PER_NUMBER_PER_HOUR": "0"},
        log_dir=workdir,
        cwd=workdir,
    )
    with stack.running():
        yield stack


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_5xx_and_responses_match_the_schema(stack: Stack, case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(base_url=stack.base_url)
