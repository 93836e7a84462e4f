"""What the memory service keeps of a call, read over gRPC, for suites that run the three
services as processes."""

from __future__ import annotations

import grpc

from aura.memory.v1 import memory_service_pb2 as memory_pb
from aura.memory.v1 import memory_service_pb2_grpc as memory_grpc
from aura_dev.stack import Stack

ROLES = {memory_pb.ROLE_USER: "user", memory_pb.ROLE_ASSISTANT: "assistant"}


def transcript(stack: Stack, call_sid: str) -> memory_pb.Transcript:
    token = stack.env.get("GRPC_AUTH_TOKEN", "")  # presented as telephony presents it
    metadata: tuple[tuple[str, str | bytes], ...] = (
        (("authorization", f"Bearer {token}"),) if token else ()
    )
    with grpc.insecure_channel(stack.memory_address) as channel:
        reply = memory_grpc.MemoryServiceStub(channel).GetTranscript(
            memory_pb.GetTranscriptRequest(call_id=call_sid), timeout=5, metadata=metadata
        )
    return reply.transcript


def history(stack: Stack, call_sid: str) -> list[tuple[str, str, bool]]:
    """The call's transcript (live or ended): role, text and whether it was cut short."""
    return [(ROLES[t.role], t.text, t.interrupted) for t in transcript(stack, call_sid).turns]
