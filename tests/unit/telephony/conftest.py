"""The telephony app in-process (httpx over ASGI), with real llm and memory gRPC servers
on loopback, so that every webhook goes through real gRPC calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import httpx
import pytest

from aura.llm.v1 import llm_service_pb2_grpc as llm_grpc
from aura.memory.v1 import memory_service_pb2_grpc as memory_grpc
from aura_llm.config import Settings as LlmSettings
from aura_llm.failover import FailoverRouter
from aura_llm.servicer import LlmServicer
from aura_memory.servicer import MemoryServicer
from aura_memory.stores import InMemoryStore
from aura_telephony.config import Settings
from aura_telephony.main import create_app
from tests.support.llm import local
from tests.support.twilio import AsyncTwilioPlayer

AUTH_TOKEN = "test-auth-token"
PUBLIC_BASE_URL = "https://aura.example.com"


@dataclass
class Rig:
    client: httpx.AsyncClient
    twilio: AsyncTwilioPlayer
    store: InMemoryStore
    llm_server: grpc.aio.Server


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    store = InMemoryStore(max_turns=20, ttl_seconds=600)
    memory_server = grpc.aio.server()
    memory_grpc.add_MemoryServiceServicer_to_server(MemoryServicer(store), memory_server)
    memory_port = memory_server.add_insecure_port("127.0.0.1:0")

    llm_server = grpc.aio.server()
    llm_settings = LlmSettings.model_validate({})
    chain = FailoverRouter([local()], attempt_timeout=5, max_retries=0)
    llm_grpc.add_LlmServiceServicer_to_server(LlmServicer(chain, llm_settings), llm_server)
    llm_port = llm_server.add_insecure_port("127.0.0.1:0")
    await memory_server.start()
    await llm_server.start()

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        PUBLIC_BASE_URL=PUBLIC_BASE_URL,
        LLM_SERVICE_ADDRESS=f"127.0.0.1:{llm_port}",
        MEMORY_SERVICE_ADDRESS=f"127.0.0.1:{memory_port}",
        AI_ASSISTANT_NAME="Aura",
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        twilio = AsyncTwilioPlayer(
            client=client, auth_token=AUTH_TOKEN, public_base_url=PUBLIC_BASE_URL
        )
        yield Rig(client, twilio, store, llm_server)
    await llm_server.stop(None)
    await memory_server.stop(None)
