"""The release as Twilio reaches it: AURA_BASE_URL (through the ingress under
`make e2e-kind`), signed for AURA_PUBLIC_BASE_URL with AURA_AUTH_TOKEN, from a caller's
number of the run's own (a rerun against the same release stays under its per-number
limit)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from aura_phone.twilio import new_caller_number
from tests.support.twilio import TwilioPlayer


@pytest.fixture(scope="module")
def twilio() -> Iterator[TwilioPlayer]:
    with httpx.Client(base_url=os.environ["AURA_BASE_URL"], timeout=20) as client:
        yield TwilioPlayer(
            client=client,
            auth_token=os.environ.get("AURA_AUTH_TOKEN", ""),
            public_base_url=os.environ.get("AURA_PUBLIC_BASE_URL", ""),
            caller=new_caller_number(),
        )
