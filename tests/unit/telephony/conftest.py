"""The telephony app in-process (httpx over ASGI), with the real llm and memory gRPC
servers (their production wiring) on loopback, so that every webhook goes through real gRPC
calls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest

from aura_llm.config import Settings as LlmSettings
from aura_llm.failover import FailoverRouter
from aura_llm.providers import Provider
from aura_llm.server import build_server as build_llm
from aura_memory.server import build_server as build_memory
from aura_memory.servicer import MemoryServicer
from aura_memory.stores import InMemoryStore
from aura_telephony.config import Settings
from aura_telephony.main import create_app
from tests.support.llm import local
from tests.support.servers import assistant, running
from tests.support.twilio import AsyncTwilioPlayer

AUTH_TOKEN = "test-auth-token"
PUBLIC_BASE_URL = "https://aura.example.com"


@dataclass
class Rig:
    client: httpx.AsyncClient
    twilio: AsyncTwilioPlayer
    store: InMemoryStore
    llm_server: grpc.aio.Server
    memory_server: grpc.aio.Server
    settings: Settings


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig() -> AsyncIterator[RigFactory]:
    """Builds a rig; keyword arguments are telephony settings, `provider` the llm's and
    `memory_servicer` the memory service's."""
    async with AsyncExitStack() as stack:

        async def build(
            provider: Provider | None = None,
            memory_servicer: type[MemoryServicer] = MemoryServicer,
            **overrides: Any,
        ) -> Rig:
            store = InMemoryStore(max_turns=20, ttl_seconds=600)
            memory = await build_memory(store, "127.0.0.1", 0, servicer=memory_servicer)
            chain = FailoverRouter([provider or local()], attempt_timeout=30, max_retries=0)
            llm = await build_llm(assistant(chain), LlmSettings.model_validate({}), "127.0.0.1", 0)
            memory_address = await stack.enter_async_context(running(memory))
            llm_address = await stack.enter_async_context(running(llm))

            settings = Settings.model_validate(
                {
                    "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                    "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
                    "LLM_SERVICE_ADDRESS": llm_address,
                    "MEMORY_SERVICE_ADDRESS": memory_address,
                    "AI_ASSISTANT_NAME": "Aura",
                    # The TwiML of each decision as a cold transfer renders it; the warm
                    # transfer's webhooks have tests of their own.
                    "TRANSFER_MODE": "cold",
                    **overrides,
                }
            )
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://testserver"
                )
            )
            twilio = AsyncTwilioPlayer(
                client=client,
                auth_token=settings.TWILIO_AUTH_TOKEN,
                public_base_url=settings.PUBLIC_BASE_URL,
            )
            return Rig(client, twilio, store, llm.server, memory.server, settings)

        yield build


@pytest.fixture
async def rig(make_rig: RigFactory) -> Rig:
    return await make_rig()
