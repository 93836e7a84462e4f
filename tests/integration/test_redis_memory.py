"""The memory service on Redis, as real processes: several replicas on one Redis, restarts
of the service and of Redis itself."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from aura.memory.v1 import memory_service_pb2 as pb
from aura.memory.v1 import memory_service_pb2_grpc as pb_grpc
from aura_common.probe import grpc_serving
from aura_dev.stack import Stack
from tests.support import eventually
from tests.support.redis_server import RedisServer

SERVICE = "aura.memory.v1.MemoryService"

TURNS_PER_WRITER = 200


def memory_only(redis: RedisServer, workdir: Path, **env: str) -> Stack:
    stack = Stack(
        env={
            "MEMORY_STORE": "redis",
            "REDIS_URL": redis.url,
            "REDIS_TIMEOUT_SECONDS": "0.5",
            "MAX_CONVERSATION_LENGTH": "1000",
            **env,
        },
        log_dir=workdir,
        cwd=workdir,
    )
    stack.start_service("memory")
    return stack


@pytest.fixture
def replicas(own_redis: RedisServer, tmp_path: Path) -> Iterator[list[Stack]]:
    stacks = [memory_only(own_redis, tmp_path / f"r{i}") for i in range(2)]
    yield stacks
    for stack in stacks:
        stack.stop()


def append(address: str, call_id: str, text: str) -> None:
    with grpc.insecure_channel(address) as channel:
        pb_grpc.MemoryServiceStub(channel).AppendTurns(
            pb.AppendTurnsRequest(call_id=call_id, turns=[pb.Turn(role=pb.ROLE_USER, text=text)]),
            timeout=5,
        )


def history(address: str, call_id: str) -> list[str]:
    with grpc.insecure_channel(address) as channel:
        reply = pb_grpc.MemoryServiceStub(channel).GetHistory(
            pb.GetHistoryRequest(call_id=call_id), timeout=5
        )
    return [t.text for t in reply.turns]


def test_two_replicas_appending_to_one_call_lose_nothing(replicas: list[Stack]) -> None:
    errors: list[BaseException] = []

    def writer(stack: Stack, name: str) -> None:
        try:
            with grpc.insecure_channel(stack.memory_address) as channel:
                stub = pb_grpc.MemoryServiceStub(channel)
                for i in range(TURNS_PER_WRITER):
                    turn = pb.Turn(role=pb.ROLE_USER, text=f"{name}-{i}")
                    stub.AppendTurns(pb.AppendTurnsRequest(call_id="CA1", turns=[turn]), timeout=5)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [
        threading.Thread(target=writer, args=(stack, name))
        for stack, name in zip(replicas, "ab", strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for stack in replicas:  # both replicas see the same conversation
        turns = history(stack.memory_address, "CA1")
        assert len(turns) == 2 * TURNS_PER_WRITER
        for name in "ab":
            mine = [t for t in turns if t.startswith(f"{name}-")]
            assert mine == [f"{name}-{i}" for i in range(TURNS_PER_WRITER)]


def test_history_survives_a_restart_of_the_memory_service(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    stack = memory_only(own_redis, tmp_path)
    try:
        append(stack.memory_address, "CA1", "before the restart")
        assert stack.stop_service("memory", signal.SIGKILL) != 0
        stack.start_service("memory")
        append(stack.memory_address, "CA1", "after the restart")
        assert history(stack.memory_address, "CA1") == ["before the restart", "after the restart"]
    finally:
        stack.stop()


def test_redis_outage_gives_unavailable_and_the_service_recovers_by_itself(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    stack = memory_only(own_redis, tmp_path)
    try:
        append(stack.memory_address, "CA1", "hello")
        own_redis.stop()
        with pytest.raises(grpc.RpcError) as failure:
            history(stack.memory_address, "CA1")
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        # Readiness (the service's own name) follows Redis; liveness ("") does not.
        eventually(
            lambda: not grpc_serving(stack.memory_address, service=SERVICE), what="NOT_SERVING"
        )
        assert grpc_serving(stack.memory_address)

        own_redis.start()
        append(stack.memory_address, "CA1", "back")  # the same process, never restarted
        assert history(stack.memory_address, "CA1") == ["back"]
        eventually(lambda: grpc_serving(stack.memory_address, service=SERVICE), what="SERVING")
    finally:
        stack.stop()
