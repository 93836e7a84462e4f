"""Entry point of the memory service: `aura-memory` or `python -m aura_memory`."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from aura.memory.v1 import memory_service_pb2 as pb
from aura.memory.v1 import memory_service_pb2_grpc as pb_grpc
from aura_common import grpc_server
from aura_common.logs import setup_logging
from aura_common.settings import load_settings
from aura_memory.config import Settings
from aura_memory.servicer import MemoryServicer
from aura_memory.stores import ConversationStore, build_store

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MemoryService"].full_name


async def _expire_forever(store: ConversationStore, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        if dropped := store.expire():
            log.info("expired %d idle conversations", dropped)


async def serve(settings: Settings) -> None:
    store = build_store(settings)
    sweeper = asyncio.create_task(
        _expire_forever(store, min(60.0, settings.CONVERSATION_TTL_SECONDS / 2))
    )

    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_MemoryServiceServicer_to_server(MemoryServicer(store), server)

    async def on_stop() -> None:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await store.close()

    log.info("store=%s max_turns=%d", store.name, settings.MAX_CONVERSATION_LENGTH)
    await grpc_server.serve(
        service_names=[SERVICE_NAME],
        register=register,
        host=settings.MEMORY_HOST,
        port=settings.MEMORY_PORT,
        grace=settings.GRACEFUL_SHUTDOWN_SECONDS,
        on_stop=on_stop,
    )


def main() -> None:
    settings = load_settings(Settings)
    setup_logging("memory", settings.LOG_LEVEL)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
