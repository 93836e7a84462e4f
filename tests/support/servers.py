"""The llm and memory gRPC servers in-process, built by the services' own `build_server`
(the production wiring: interceptors, health, reflection) on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aura_common.grpc_server import GrpcServer
from aura_llm.config import Settings as LlmSettings
from aura_llm.failover import FailoverRouter
from aura_llm.server import build_server as build_llm
from aura_memory.server import build_server as build_memory
from aura_memory.stores import ConversationStore


@asynccontextmanager
async def running(server: GrpcServer) -> AsyncIterator[str]:
    """Start the server; yield its address; stop it at once on the way out."""
    await server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(None)


@asynccontextmanager
async def llm_server(router: FailoverRouter, settings: LlmSettings) -> AsyncIterator[str]:
    async with running(await build_llm(router, settings, "127.0.0.1", 0)) as address:
        yield address


@asynccontextmanager
async def memory_server(store: ConversationStore) -> AsyncIterator[str]:
    async with running(await build_memory(store, "127.0.0.1", 0)) as address:
        yield address
