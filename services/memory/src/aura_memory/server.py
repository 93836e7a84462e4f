"""Entry point of the memory service: `aura-memory` or `python -m aura_memory`."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from grpc_health.v1 import health, health_pb2

from aura.memory.v1 import memory_service_pb2 as pb
from aura.memory.v1 import memory_service_pb2_grpc as pb_grpc
from aura_common import grpc_server
from aura_common.grpc_security import GrpcSecurity
from aura_common.logs import setup_logging
from aura_common.metrics import serve_metrics
from aura_common.settings import load_settings, package_version
from aura_common.tasks import stop
from aura_common.tracing import setup_tracing, shutdown_tracing
from aura_memory import metrics
from aura_memory.config import Settings
from aura_memory.servicer import MemoryServicer
from aura_memory.stores import ConversationStore, StoreUnavailableError, build_store

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MemoryService"].full_name
_STORE_CHECK_SECONDS = 2.0


async def _sweep_forever(store: ConversationStore, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            if archived := await store.sweep():
                log.info("archived %d calls that expired without a final status", archived)
        except StoreUnavailableError as error:
            log.warning("sweep skipped: %s", error)


async def _watch_store(store: ConversationStore, status: health.aio.HealthServicer) -> None:
    """Report the service NOT_SERVING while its store is unreachable, so that readiness
    probes route around it; the overall status ("") stays SERVING, as a restart would
    not bring Redis back. Also keeps the live-calls gauge current."""
    serving = True
    while True:
        await asyncio.sleep(_STORE_CHECK_SECONDS)
        reachable = await store.ping()
        if reachable:
            with contextlib.suppress(StoreUnavailableError):
                metrics.LIVE_CALLS.set(await store.live_calls())
        if reachable != serving:
            serving = reachable
            log.log(
                logging.INFO if reachable else logging.ERROR,
                "store %s %s",
                store.name,
                "reachable again" if reachable else "unreachable",
            )
            await status.set(
                SERVICE_NAME,
                health_pb2.HealthCheckResponse.SERVING
                if reachable
                else health_pb2.HealthCheckResponse.NOT_SERVING,
            )


async def build_server(
    store: ConversationStore,
    host: str,
    port: int,
    security: GrpcSecurity | None = None,
    servicer: type[MemoryServicer] = MemoryServicer,
) -> grpc_server.GrpcServer:
    """The memory gRPC server as it runs in production (tests bind it to port 0, and may
    give a servicer that behaves as an older version did)."""

    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_MemoryServiceServicer_to_server(servicer(store), server)

    return await grpc_server.build(
        service_names=[SERVICE_NAME],
        register=register,
        host=host,
        port=port,
        port_setting="MEMORY_PORT",
        security=security,
    )


async def serve(settings: Settings) -> None:
    store = build_store(settings)
    tasks: list[asyncio.Task[None]] = [
        asyncio.create_task(_sweep_forever(store, min(60.0, settings.CONVERSATION_TTL_SECONDS / 2)))
    ]

    async def on_stop() -> None:
        for task in tasks:
            await stop(task)
        await store.close()

    log.info("store=%s max_turns=%d", store.name, settings.MAX_CONVERSATION_LENGTH)
    serve_metrics(settings.METRICS_HOST, settings.MEMORY_METRICS_PORT, "MEMORY_METRICS_PORT")
    server = await build_server(
        store, settings.MEMORY_HOST, settings.MEMORY_PORT, settings.grpc_security
    )

    def watch(running: grpc_server.GrpcServer) -> None:
        tasks.append(asyncio.create_task(_watch_store(store, running.health)))

    await grpc_server.run_until_signal(
        server, grace=settings.GRACEFUL_SHUTDOWN_SECONDS, on_started=watch, on_stop=on_stop
    )


def main() -> None:
    settings = load_settings(Settings)
    setup_logging("memory", settings.LOG_LEVEL, settings.LOG_FORMAT)
    tracer_provider = setup_tracing("aura-memory", package_version("aura-memory"))
    try:
        asyncio.run(serve(settings))
    finally:
        shutdown_tracing(tracer_provider)


if __name__ == "__main__":
    main()
