"""What a bare grpc.aio unary call costs on this machine, client and server in separate
processes, at an open-loop rate like the calls benchmark's: the floor under each of the
calls a turn makes between Aura's services. The server answers at once, with no
interceptor, metrics or store. It measures; it asserts nothing.

Usage: python -m bench.grpc_floor [--rate 400] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
from typing import Any

import grpc

from aura.memory.v1 import memory_service_pb2 as memory_pb
from aura.memory.v1 import memory_service_pb2_grpc as memory_grpc
from aura_telephony.channels import _CHANNEL_OPTIONS
from bench.calls import cpu_seconds


async def _count(
    request: memory_pb.IncrementCounterRequest, context: Any
) -> memory_pb.IncrementCounterResponse:
    return memory_pb.IncrementCounterResponse(count=1)


async def _serve() -> None:
    server = grpc.aio.server()
    # Only the one method, registered as the generated code would register it.
    handler = grpc.unary_unary_rpc_method_handler(
        _count,
        request_deserializer=memory_pb.IncrementCounterRequest.FromString,
        response_serializer=memory_pb.IncrementCounterResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "aura.memory.v1.MemoryService", {"IncrementCounter": handler}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


async def _drive(address: str, server_pid: int, rate: float, duration: float) -> str:
    # The channel options telephony uses (keepalive, retries), to measure the same calls.
    async with grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS) as channel:
        stub = memory_grpc.MemoryServiceStub(channel)
        request = memory_pb.IncrementCounterRequest(key="floor")
        for _ in range(200):  # warm-up
            await stub.IncrementCounter(request, timeout=5)
        server_before, client_before = cpu_seconds(server_pid), time.process_time()
        calls: list[asyncio.Future[Any]] = []
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            calls.append(asyncio.ensure_future(stub.IncrementCounter(request, timeout=5)))
            await asyncio.sleep(random.expovariate(rate))
        await asyncio.gather(*calls)
        server = (cpu_seconds(server_pid) - server_before) / len(calls)
        client = (time.process_time() - client_before) / len(calls)
    return (
        f"bare grpc.aio unary call at {rate:.0f}/s ({len(calls)} calls): server "
        f"{server * 1000:.2f} ms, client {client * 1000:.2f} ms of CPU per call (the client's "
        "includes the load generator)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rate", type=float, default=400.0, help="calls per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of calls")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve())
        return
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.grpc_floor", "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        print(asyncio.run(_drive(f"127.0.0.1:{port}", server.pid, args.rate, args.duration)))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
