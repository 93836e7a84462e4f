"""Black-box target: AURA_BASE_URL (with AURA_AUTH_TOKEN and, behind an ingress,
AURA_PUBLIC_BASE_URL) when set, rung from a number of the run's own (a rerun against the
same deployment stays under its per-number limit); otherwise the three services started
here as processes."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from aura_dev.stack import Stack
from aura_phone.twilio import new_caller_number
from tests.support.twilio import TwilioPlayer

LOCAL_TOKEN = "e2e-auth-token"


@pytest.fixture(scope="session")
def twilio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwilioPlayer]:
    base_url = os.environ.get("AURA_BASE_URL", "")
    if base_url:
        token = os.environ.get("AURA_AUTH_TOKEN", "")
        public = os.environ.get("AURA_PUBLIC_BASE_URL", "")
        with httpx.Client(base_url=base_url, timeout=20) as client:
            yield TwilioPlayer(
                client=client, auth_token=token, public_base_url=public, caller=new_caller_number()
            )
        return
    workdir = tmp_path_factory.mktemp("e2e-stack")
    stack = Stack(env={"TWILIO_AUTH_TOKEN": LOCAL_TOKEN}, log_dir=workdir, cwd=workdir)
    with stack.running(), httpx.Client(base_url=stack.base_url, timeout=20) as client:
        yield TwilioPlayer(client=client, auth_token=LOCAL_TOKEN)
