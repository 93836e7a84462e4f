"""The lifecycle every Aura gRPC service shares: standard health and reflection services
beside its own, and a graceful stop on SIGTERM/SIGINT (in-flight calls get `grace` seconds)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from aura_common.metrics import ServerMetrics, serve_metrics
from aura_common.tracing import tracing_enabled

log = logging.getLogger(__name__)

Register = Callable[[grpc.aio.Server], None]


async def serve(
    *,
    service_names: Sequence[str],
    register: Register,
    host: str,
    port: int,
    grace: float = 5.0,
    metrics_host: str = "0.0.0.0",
    metrics_port: int | None = None,
    on_start: Callable[[health.aio.HealthServicer], None] | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run a gRPC server until SIGTERM or SIGINT, then drain it and call `on_stop`.
    `on_start` gets the health servicer, for services whose health depends on a backend."""
    interceptors: list[grpc.aio.ServerInterceptor] = [ServerMetrics()]
    if tracing_enabled():
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        interceptors.insert(0, aio_server_interceptor())
    server = grpc.aio.server(interceptors=interceptors)
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    address = f"{host}:{port}"
    if server.add_insecure_port(address) == 0:
        raise SystemExit(f"cannot listen on {address}")
    await server.start()
    if metrics_port is not None:
        serve_metrics(metrics_host, metrics_port)
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if on_start is not None:
        on_start(health_servicer)
    log.info("listening on %s", address)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("shutting down, grace %.1fs", grace)
    # Load balancers and probes see NOT_SERVING while in-flight calls finish.
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace)
    if on_stop is not None:
        await on_stop()
    log.info("stopped")
