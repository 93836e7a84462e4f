"""Prometheus metrics shared by the services: RED metrics for gRPC servers and clients,
the histogram buckets every latency uses, and the small HTTP server the gRPC services
expose /metrics on. Label values are bounded: methods, codes and providers, never a
CallSid or a phone number."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram, start_http_server

from aura_common.settings import ListenError

# 5 ms to 15 s: from a cache hit to Twilio's own webhook timeout.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 8.0, 10.0, 15.0)

GRPC_SERVER_HANDLED = Counter(
    "aura_grpc_server_handled",
    "gRPC calls completed by this server, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_SERVER_SECONDS = Histogram(
    "aura_grpc_server_handling_seconds",
    "Time this server took to handle a gRPC call.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)
GRPC_CLIENT_HANDLED = Counter(
    "aura_grpc_client_handled",
    "gRPC calls this process made, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_CLIENT_SECONDS = Histogram(
    "aura_grpc_client_handling_seconds",
    "Time a gRPC call made by this process took, deadline included.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)


def _names(full_method: str | bytes) -> tuple[str, str]:
    if isinstance(full_method, bytes):
        full_method = full_method.decode()
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service or "unknown", method or "unknown"


def _code(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return grpc.StatusCode.OK.name if code in (None, 0) else str(code)


class ServerMetrics(grpc.aio.ServerInterceptor):
    """Counts and times every unary and server-streaming call of a grpc.aio server."""

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, method = _names(handler_call_details.method)
        labels = {"grpc_service": service, "grpc_method": method}

        def record(started: float, code: str) -> None:
            GRPC_SERVER_HANDLED.labels(**labels, grpc_code=code).inc()
            GRPC_SERVER_SECONDS.labels(**labels).observe(time.perf_counter() - started)

        if handler.unary_unary is not None:
            inner_unary = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                started = time.perf_counter()
                code = "UNKNOWN"
                try:
                    response = await inner_unary(request, context)
                    code = _code(context)
                    return response
                except grpc.aio.AbortError:
                    code = _code(context)
                    raise
                finally:
                    record(started, code)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                started = time.perf_counter()
                code = "UNKNOWN"
                try:
                    async for response in inner_stream(request, context):
                        yield response
                    code = _code(context)
                except grpc.aio.AbortError:
                    code = _code(context)
                    raise
                finally:
                    record(started, code)

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


class ClientMetrics(grpc.aio.UnaryUnaryClientInterceptor):
    """Counts and times every unary call made through a grpc.aio channel."""

    async def intercept_unary_unary(
        self,
        continuation: Callable[[Any, Any], Awaitable[Any]],
        client_call_details: Any,
        request: Any,
    ) -> Any:
        service, method = _names(client_call_details.method)
        started = time.perf_counter()
        call = await continuation(client_call_details, request)
        try:
            code = (await call.code()).name
        except grpc.aio.AioRpcError as error:
            code = error.code().name
        GRPC_CLIENT_HANDLED.labels(service, method, code).inc()
        GRPC_CLIENT_SECONDS.labels(service, method).observe(time.perf_counter() - started)
        return call


def serve_metrics(host: str, port: int, setting: str) -> None:
    """Expose this process's metrics on http://host:port/metrics (a daemon thread). A port
    in use stops the service with one line naming `setting`, the variable that moves it."""
    try:
        start_http_server(port, addr=host)
    except OSError as error:
        raise ListenError(f"{host}:{port}", setting, error.strerror or str(error)) from None
