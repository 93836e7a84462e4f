"""Authentication of the gRPC hops between telephony and the llm and memory services: an
optional shared token in every call's metadata, checked by the servers, and optional TLS.

The NetworkPolicy is the first guard; these hold even where the cluster's network plugin
ignores it, or a pod inside the allowed set is compromised. The standard health service
stays open, as kubelet's gRPC probes send no metadata."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

_HEALTH_PREFIX = "/grpc.health.v1.Health/"


@dataclass(frozen=True, slots=True)
class GrpcSecurity:
    """What the servers require and the clients present; empty fields turn a part off."""

    token: str = ""
    cert_file: str = ""  # server: its certificate chain (PEM)
    key_file: str = ""  # server: its private key (PEM)
    ca_file: str = ""  # client: the CA that signed the servers' certificates (PEM)
    reflection: bool = True

    def server_credentials(self) -> grpc.ServerCredentials | None:
        if not self.cert_file:
            return None
        pair = (Path(self.key_file).read_bytes(), Path(self.cert_file).read_bytes())
        return grpc.ssl_server_credentials([pair])

    def channel(
        self,
        address: str,
        options: list[tuple[str, Any]],
        interceptors: list[grpc.aio.ClientInterceptor],
    ) -> grpc.aio.Channel:
        """A channel to `address` that presents the token and, with a CA, speaks TLS."""
        if self.token:
            interceptors = [*interceptors, *bearer_interceptors(self.token)]
        if self.ca_file:
            credentials = grpc.ssl_channel_credentials(Path(self.ca_file).read_bytes())
            return grpc.aio.secure_channel(
                address, credentials, options=options, interceptors=interceptors
            )
        return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)


class _Bearer:
    """Adds `authorization: Bearer <token>` to a call's metadata. grpc.aio files each
    interceptor under one kind of call, hence one subclass per kind."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def _call(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        metadata = [*(details.metadata or ()), ("authorization", f"Bearer {self._token}")]
        return await continuation(details._replace(metadata=metadata), request)


class _BearerUnaryUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self._call(continuation, details, request)


class _BearerUnaryStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self._call(continuation, details, request)


class _BearerStreamUnary(_Bearer, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await self._call(continuation, details, requests)


class _BearerStreamStream(_Bearer, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await self._call(continuation, details, requests)


def bearer_interceptors(token: str) -> list[grpc.aio.ClientInterceptor]:
    """The token on calls of every kind: a realtime conversation is a bidirectional stream."""
    return [
        _BearerUnaryUnary(token),
        _BearerUnaryStream(token),
        _BearerStreamUnary(token),
        _BearerStreamStream(token),
    ]


class TokenCheck(grpc.aio.ServerInterceptor):
    """Refuses every call but health checks without `authorization: Bearer <token>`."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(_HEALTH_PREFIX):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        presented = str(metadata.get("authorization", "")).encode()
        if hmac.compare_digest(presented, self._expected):
            return handler
        return _refusal(handler)


async def _refuse(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")


def _refusal(handler: Any) -> Any:
    """A handler of the same kind as `handler` (unary or streaming, each way) that refuses
    the call."""

    async def refuse_stream(request: Any, context: Any) -> AsyncIterator[Any]:
        await _refuse(context)
        yield  # pragma: no cover - abort raises

    async def refuse_unary(request: Any, context: Any) -> Any:
        await _refuse(context)

    make: Callable[..., Any]
    refuse: Callable[[Any, Any], Any]
    if handler.stream_stream is not None:
        make, refuse = grpc.stream_stream_rpc_method_handler, refuse_stream
    elif handler.stream_unary is not None:
        make, refuse = grpc.stream_unary_rpc_method_handler, refuse_unary
    elif handler.unary_stream is not None:
        make, refuse = grpc.unary_stream_rpc_method_handler, refuse_stream
    else:
        make, refuse = grpc.unary_unary_rpc_method_handler, refuse_unary
    return make(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
