"""The gRPC channels telephony keeps to llm and memory, and the one place where a gRPC
failure becomes a ServiceError."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration

from aura_common.metrics import ClientMetrics
from aura_common.tracing import tracing_enabled
from aura_telephony.config import Settings
from aura_telephony.errors import ServiceError

P = ParamSpec("P")
T = TypeVar("T")

# A restarted pod must be usable again within a second or two, not after gRPC's default
# reconnect backoff of up to two minutes; calls that meet a channel still reconnecting are
# retried (UNAVAILABLE only, inside the call's deadline). Every RPC retried is safe to
# repeat: reads, Generate, and writes carrying an idempotency key.
_RETRY_POLICY = {
    "methodConfig": [
        {
            "name": [
                {"service": "aura.llm.v1.LlmService"},
                {"service": "aura.memory.v1.MemoryService"},
            ],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.1s",
                "maxBackoff": "0.5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}

_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps(_RETRY_POLICY)),
]


def open_channel(settings: Settings, address: str) -> grpc.aio.Channel:
    """A channel to `address`: TLS and the token when configured, metrics and (when
    tracing) the W3C trace context on every call."""
    interceptors: list[grpc.aio.ClientInterceptor] = [ClientMetrics()]
    if tracing_enabled():
        from opentelemetry.instrumentation.grpc import aio_client_interceptors

        # W3C trace context crosses to llm and memory in the call's metadata.
        interceptors = [*aio_client_interceptors(), *interceptors]
    return settings.grpc_security.channel(address, _CHANNEL_OPTIONS, interceptors)


def duration(seconds: float) -> Duration:
    value = Duration()
    value.FromTimedelta(timedelta(seconds=seconds))
    return value


def _failed(service: str, error: grpc.aio.AioRpcError) -> ServiceError:
    return ServiceError(service, error.code().name, error.details() or "")


def failing_as(
    service: str,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """A client method whose gRPC failures are raised as ServiceError."""

    def wrap(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(method)
        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return await method(*args, **kwargs)
            except grpc.aio.AioRpcError as error:
                raise _failed(service, error) from error

        return call

    return wrap


def streams_failing_as(
    service: str,
) -> Callable[[Callable[P, AsyncIterator[T]]], Callable[P, AsyncIterator[T]]]:
    """A client method that streams, whose gRPC failures are raised as ServiceError."""

    def wrap(method: Callable[P, AsyncIterator[T]]) -> Callable[P, AsyncIterator[T]]:
        @functools.wraps(method)
        async def call(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
            try:
                async for item in method(*args, **kwargs):
                    yield item
            except grpc.aio.AioRpcError as error:
                raise _failed(service, error) from error

        return call

    return wrap
