"""The gRPC hops' own guards, on the memory server's production wiring: a shared token
every call must carry (health checks excepted, as kubelet's probes send none), TLS, and
reflection that can be turned off."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from aura.memory.v1 import memory_service_pb2 as pb
from aura.memory.v1 import memory_service_pb2_grpc as pb_grpc
from aura_common.grpc_security import GrpcSecurity
from aura_common.probe import grpc_serving
from aura_dev.certificates import self_signed
from aura_memory.server import build_server
from aura_memory.stores import InMemoryStore
from tests.support.servers import running

TOKEN = "grpc-shared-token"


def store() -> InMemoryStore:
    return InMemoryStore(max_turns=4, ttl_seconds=60)


async def history(channel: grpc.aio.Channel) -> list[str]:
    reply = await pb_grpc.MemoryServiceStub(channel).GetHistory(
        pb.GetHistoryRequest(call_id="CA1"), timeout=5
    )
    return [t.text for t in reply.turns]


async def test_calls_without_the_token_are_refused_but_health_checks_pass() -> None:
    server = await build_server(store(), "127.0.0.1", 0, GrpcSecurity(token=TOKEN))
    async with running(server) as address:
        for presented in ("", "wrong-token"):
            async with GrpcSecurity(token=presented).channel(address, [], []) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await history(channel)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
                stream = pb_grpc.MemoryServiceStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stream.AppendTurns(pb.AppendTurnsRequest(call_id="CA1"), timeout=5)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
                health: object = health_pb2_grpc.HealthStub(channel)
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)  # type: ignore[attr-defined]
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
        async with GrpcSecurity(token=TOKEN).channel(address, [], []) as channel:
            assert await history(channel) == []


async def test_tls_with_the_token(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    security = GrpcSecurity(token=TOKEN, cert_file=str(cert), key_file=str(key))
    server = await build_server(store(), "127.0.0.1", 0, security)
    async with running(server) as address:
        client = GrpcSecurity(token=TOKEN, ca_file=str(cert))
        async with client.channel(address, [], []) as channel:
            assert await history(channel) == []
        # A plaintext client gets nowhere, and the probe checks health over TLS.
        async with GrpcSecurity(token=TOKEN).channel(address, [], []) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await history(channel)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # The probe is blocking: off the loop that serves.
        assert await asyncio.to_thread(grpc_serving, address, ca_file=str(cert))
        assert not await asyncio.to_thread(grpc_serving, address)


@pytest.mark.parametrize("enabled", [True, False])
async def test_reflection_can_be_turned_off(enabled: bool) -> None:
    server = await build_server(store(), "127.0.0.1", 0, GrpcSecurity(reflection=enabled))
    async with running(server) as address, grpc.aio.insecure_channel(address) as channel:
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        if enabled:
            stub: object = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
            call = stub.ServerReflectionInfo(iter([request]), timeout=5)  # type: ignore[attr-defined]
            replies = [reply async for reply in call]
            names = {s.name for s in replies[0].list_services_response.service}
            assert "aura.memory.v1.MemoryService" in names
        else:
            # One message and a half-close at once: the server's refusal cannot race a
            # request stream still being written.
            probe: Any = channel.unary_unary(
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await probe(request, timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
