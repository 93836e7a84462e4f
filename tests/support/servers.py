"""The llm and memory gRPC servers in-process, built by the services' own `build_server`
(the production wiring: interceptors, health, reflection) on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx

from aura.memory.v1 import memory_service_pb2 as memory_pb
from aura_common.grpc_server import GrpcServer
from aura_llm.assistant import Assistant
from aura_llm.config import SAMPLE_TOOLS
from aura_llm.config import Settings as LlmSettings
from aura_llm.failover import FailoverRouter
from aura_llm.knowledge.library import LiveKnowledge
from aura_llm.realtime import RealtimeProvider
from aura_llm.server import build_server as build_llm
from aura_llm.tools import Toolbox, ToolsConfig, build_toolbox
from aura_memory.server import build_server as build_memory
from aura_memory.servicer import MemoryServicer
from aura_memory.stores import ConversationStore


@asynccontextmanager
async def running(server: GrpcServer) -> AsyncIterator[str]:
    """Start the server; yield its address; stop it at once on the way out."""
    await server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(None)


def sample_toolbox() -> Toolbox:
    """The tools of the sample deployment (built-in call actions only)."""
    return build_toolbox(ToolsConfig.load(SAMPLE_TOOLS), "", httpx.AsyncClient())


def assistant(
    router: FailoverRouter,
    toolbox: Toolbox | None = None,
    max_rounds: int = 3,
    settings: LlmSettings | None = None,
) -> Assistant:
    """The assistant as production assembles it: the knowledge and grounding of
    `settings` (the sample's by default), with the sample's tools unless given others."""
    settings = settings or LlmSettings.model_validate({})
    library = LiveKnowledge(
        settings.KNOWLEDGE_BASE_PATH, settings.KNOWLEDGE_TOP_K, settings.KNOWLEDGE_MAX_CHARS
    )
    return Assistant(
        router,
        sample_toolbox() if toolbox is None else toolbox,
        max_rounds,
        library,
        settings.GROUNDING,
    )


@asynccontextmanager
async def llm_server(
    router: FailoverRouter,
    settings: LlmSettings,
    toolbox: Toolbox | None = None,
    realtime: Sequence[RealtimeProvider] = (),
) -> AsyncIterator[str]:
    helper = assistant(router, toolbox, settings.MAX_TOOL_ROUNDS, settings)
    await helper.toolbox.start()
    try:
        server = await build_llm(helper, settings, "127.0.0.1", 0, realtime)
        async with running(server) as address:
            yield address
    finally:
        await helper.toolbox.close()


@asynccontextmanager
async def memory_server(store: ConversationStore) -> AsyncIterator[str]:
    async with running(await build_memory(store, "127.0.0.1", 0)) as address:
        yield address


class OlderMemoryServicer(MemoryServicer):
    """The memory service as it was before claims counted and completions opened calls:
    it ignores those fields, as an older binary ignores fields it does not know, and so
    answers with a count of 0 and `opened` false. What telephony meets during a rolling
    upgrade that rolls telephony first."""

    async def ClaimIdempotencyKey(
        self, request: memory_pb.ClaimIdempotencyKeyRequest, context: Any
    ) -> memory_pb.ClaimIdempotencyKeyResponse:
        request.ClearField("counter_key")
        request.ClearField("counter_window")
        return await super().ClaimIdempotencyKey(request, context)

    async def CompleteIdempotencyKey(
        self, request: memory_pb.CompleteIdempotencyKeyRequest, context: Any
    ) -> memory_pb.CompleteIdempotencyKeyResponse:
        request.ClearField("open_call")
        return await super().CompleteIdempotencyKey(request, context)
