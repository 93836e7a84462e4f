"""Memory service throughput per store, through gRPC: appends/s and reads/s.

Starts a redis-server and the memory service (as a real process, once per store) on
loopback, drives it with concurrent clients for a fixed number of operations, prints the
figures and writes them to .bench/memory.json. It measures; it asserts nothing.

Usage: python -m bench.memory [--ops 20000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from aura.memory.v1 import memory_service_pb2 as pb
from aura.memory.v1 import memory_service_pb2_grpc as pb_grpc
from aura_dev.stack import Stack
from tests.support.redis_server import RedisServer

OUT = Path(".bench/memory.json")


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(address: str, ops: int, concurrency: int, kind: str) -> dict[str, float]:
    latencies: list[float] = []
    per_worker = ops // concurrency
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.MemoryServiceStub(channel)

        async def worker(index: int) -> None:
            call_id = f"bench-{index}"
            turn = pb.Turn(role=pb.ROLE_USER, text="what time do you open on saturday")
            for _ in range(per_worker):
                started = time.perf_counter()
                if kind == "append":
                    await stub.AppendTurns(
                        pb.AppendTurnsRequest(call_id=call_id, turns=[turn]), timeout=5
                    )
                else:
                    await stub.GetHistory(pb.GetHistoryRequest(call_id=call_id), timeout=5)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "ops": len(latencies),
        "ops_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
    }


def measure(
    store: str, env: dict[str, str], ops: int, concurrency: int, workdir: Path
) -> dict[str, Any]:
    stack = Stack(
        env={"MEMORY_STORE": store, "LOG_LEVEL": "WARNING", **env},
        log_dir=workdir / store,
        cwd=workdir,
    )
    stack.start_service("memory")
    try:
        asyncio.run(drive(stack.memory_address, ops // 10, concurrency, "append"))  # warm-up
        appends = asyncio.run(drive(stack.memory_address, ops, concurrency, "append"))
        reads = asyncio.run(drive(stack.memory_address, ops, concurrency, "read"))
    finally:
        stack.stop()
    return {"append": appends, "read": reads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        redis = RedisServer(workdir)
        redis.start()
        try:
            results = {
                "memory": measure("memory", {}, args.ops, args.concurrency, workdir),
                "redis": measure(
                    "redis", {"REDIS_URL": redis.url}, args.ops, args.concurrency, workdir
                ),
            }
        finally:
            redis.stop()
    report = {
        "benchmark": "memory service through gRPC",
        "machine": machine(),
        "ops": args.ops,
        "concurrency": args.concurrency,
        "history_length": "20 turns (MAX_CONVERSATION_LENGTH)",
        "stores": results,
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    print(f"memory service, {args.concurrency} concurrent clients, {args.ops} operations:")
    for store, figures in results.items():
        for kind, f in figures.items():
            print(
                f"  {store:6} {kind:6} {f['ops_per_second']:>9.0f}/s   "
                f"p50 {f['p50_ms']:.2f} ms   p99 {f['p99_ms']:.2f} ms"
            )
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
