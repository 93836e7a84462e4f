"""The lifecycle every Aura gRPC service shares: standard health and reflection services
beside its own, and a graceful stop on SIGTERM/SIGINT (in-flight calls get `grace` seconds).

`build` wires a server the way production runs it; tests call it too (on port 0) and
`start`/`stop` it themselves, so they exercise the real wiring. `run_until_signal` starts
it and is what the services' entry points add on top."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from aura_common import process
from aura_common.grpc_security import GrpcSecurity, TokenCheck
from aura_common.metrics import ServerMetrics
from aura_common.settings import ListenError, bind_socket
from aura_common.tracing import tracing_enabled

log = logging.getLogger(__name__)

Register = Callable[[grpc.aio.Server], None]


@dataclass
class GrpcServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    service_names: Sequence[str]
    port: int  # the port bound, which port 0 picks

    async def start(self) -> None:
        await self.server.start()
        for name in ("", *self.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float | None) -> None:
        # Load balancers and probes see NOT_SERVING while in-flight calls finish.
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def build(
    *,
    service_names: Sequence[str],
    register: Register,
    host: str,
    port: int,
    port_setting: str = "the port setting",
    security: GrpcSecurity | None = None,
) -> GrpcServer:
    """The server with Aura's interceptors, health (and reflection, unless turned off),
    bound to host:port; with TLS and a token check when `security` asks for them."""
    security = security or GrpcSecurity()
    # Metrics first: refused calls are counted too (as UNAUTHENTICATED).
    interceptors: list[grpc.aio.ServerInterceptor] = [ServerMetrics()]
    if security.token:
        interceptors.append(TokenCheck(security.token))
    if tracing_enabled():
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        interceptors.insert(0, aio_server_interceptor())
    if port:
        # Bound and released first, for the system's own reason in the one-line error.
        bind_socket(host, port, port_setting).close()
    # Without SO_REUSEPORT a second server on the same port fails instead of sharing it.
    server = grpc.aio.server(interceptors=interceptors, options=[("grpc.so_reuseport", 0)])
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if security.reflection:
        reflection.enable_server_reflection(
            [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )
    address = f"{host}:{port}"
    credentials = security.server_credentials()
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError:
        bound = 0
    if bound == 0:
        # Stopped here, inside the loop: a server left for the garbage collector after the
        # loop closes prints "Event loop is closed" noise over the real message.
        await server.stop(None)
        raise ListenError(address, port_setting, "the address is in use or not available")
    return GrpcServer(server, health_servicer, service_names, bound)


async def run_until_signal(
    service: GrpcServer,
    *,
    grace: float,
    on_started: Callable[[GrpcServer], None] | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Start the server and run it until SIGTERM or SIGINT, then drain it and call
    `on_stop`. `on_started` gets the running server (its health servicer, for services
    whose health follows a backend)."""
    await service.start()
    if on_started is not None:
        on_started(service)
    process.started()
    log.info("listening on port %d", service.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down, grace %.1fs", grace)
    await service.stop(grace)
    if on_stop is not None:
        await on_stop()
    log.info("stopped")
