"""The LlmService over real gRPC on loopback, with providers written for the test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import pytest

from aura.llm.v1 import llm_service_pb2 as pb
from aura_llm.assistant import TOOL_RESULTS_ARE_DATA
from aura_llm.providers import Completion, Prompt, Provider, ProviderError
from tests.support.llm import llm_service, router


class ScriptedProvider(Provider):
    name = "scripted"
    model = "scripted-1"

    def __init__(self, behaviour: Callable[[Prompt], str] | None = None) -> None:
        self.prompts: list[Prompt] = []
        self._behaviour = behaviour or (lambda p: f"you said {p.user_text}")

    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        self.prompts.append(prompt)
        return Completion(self._behaviour(prompt))


class StuckProvider(Provider):
    name = "stuck"
    model = "stuck-1"

    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        await asyncio.Event().wait()  # never answers
        raise AssertionError("unreachable")


def failing(prompt: Prompt) -> str:
    raise ProviderError("server_error", "upstream said 503", retryable=False)


serve = llm_service


def request(text: str = "when are you open", **fields: object) -> pb.GenerateRequest:
    return pb.GenerateRequest(call_id="CA1", user_text=text, **fields)  # type: ignore[arg-type]


async def test_generate_passes_history_and_persona_and_reports_provider() -> None:
    provider = ScriptedProvider()
    async with serve([provider]) as stub:
        reply = await stub.Generate(
            request(
                "and on Sunday?",
                history=[
                    pb.Message(role=pb.ROLE_ASSISTANT, text="Hello!"),
                    pb.Message(role=pb.ROLE_USER, text="when are you open"),
                ],
                persona=pb.Persona(assistant_name="Robin"),
            ),
            timeout=5,
        )
    assert (reply.text, reply.provider, reply.model, reply.failover) == (
        "you said and on Sunday?",
        "scripted",
        "scripted-1",
        False,
    )
    prompt = provider.prompts[0]
    assert [(t.role, t.text) for t in prompt.history] == [
        ("assistant", "Hello!"),
        ("user", "when are you open"),
    ]
    assert prompt.assistant_name == "Robin"
    assert prompt.system_prompt.startswith("You are Robin,")


async def test_system_prompt_from_the_request_overrides_the_setting() -> None:
    provider = ScriptedProvider()
    async with serve([provider]) as stub:
        await stub.Generate(
            request(persona=pb.Persona(system_prompt="Be {assistant_name}. Be brief.")), timeout=5
        )
    # With tools offered, the prompt also says that their results are data.
    assert provider.prompts[0].system_prompt.startswith("Be Aura. Be brief.\n\n")
    assert TOOL_RESULTS_ARE_DATA in provider.prompts[0].system_prompt


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (request("   "), "user_text is required"),
        (request("x" * 2001), "longer than 2000"),
        (request(history=[pb.Message(text="no role")]), "role"),
    ],
)
async def test_invalid_requests(bad: pb.GenerateRequest, message: str) -> None:
    provider = ScriptedProvider()
    async with serve([provider]) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.Generate(bad, timeout=5)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (failure.value.details() or "")
    assert provider.prompts == []


async def test_provider_failure_is_unavailable_with_the_reason() -> None:
    async with serve([ScriptedProvider(failing)]) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.Generate(request(), timeout=5)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "upstream said 503" in (failure.value.details() or "")


async def test_a_stuck_provider_is_cut_off_at_the_callers_deadline() -> None:
    async with serve(router(StuckProvider(), attempt_timeout=10)) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.Generate(request(), timeout=0.5)
        # The stuck attempt is abandoned rather than left to run on past the deadline.
        assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
