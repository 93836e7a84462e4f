"""llm pieces for tests: an in-process gRPC server over the providers a test gives it, and
providers written for tests (our own Provider interface, not a vendor SDK)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc

from aura.llm.v1 import llm_service_pb2_grpc as pb_grpc
from aura_llm.config import SAMPLE_KNOWLEDGE_BASE, Settings
from aura_llm.failover import FailoverRouter
from aura_llm.providers import Completion, Prompt, Provider, ProviderError
from aura_llm.providers.local import LocalProvider
from aura_llm.tools import Toolbox
from tests.support.servers import llm_server


def local() -> LocalProvider:
    return LocalProvider.from_file(SAMPLE_KNOWLEDGE_BASE, "Aura")


def router(
    *providers: Provider, attempt_timeout: float = 5.0, max_retries: int = 1
) -> FailoverRouter:
    # No jitter: a retry happens at once, so tests do not wait on backoff.
    return FailoverRouter(
        providers, attempt_timeout=attempt_timeout, max_retries=max_retries, jitter=lambda: 0.0
    )


@asynccontextmanager
async def llm_service(
    providers: Sequence[Provider] | FailoverRouter,
    toolbox: Toolbox | None = None,
    **overrides: Any,
) -> AsyncIterator[pb_grpc.LlmServiceAsyncStub]:
    """The llm service over `providers`, with the sample's tools unless given others;
    keyword arguments are llm settings (KNOWLEDGE_BASE_PATH, GROUNDING...)."""
    chain = providers if isinstance(providers, FailoverRouter) else router(*providers)
    settings = Settings.model_validate({"AI_ASSISTANT_NAME": "Aura", **overrides})
    try:
        async with (
            llm_server(chain, settings, toolbox) as address,
            grpc.aio.insecure_channel(address) as channel,
        ):
            yield pb_grpc.LlmServiceStub(channel)
    finally:
        for provider in chain.providers:
            await provider.close()


class Echo(Provider):
    """Answers "You said: ..." and records every prompt. When `gate` is set, each answer
    waits for it, which models a model slower than the turn budget."""

    name = "echo"
    model = "echo-1"
    min_attempt_seconds = 0.05

    def __init__(self) -> None:
        self.prompts: list[Prompt] = []
        self.started = asyncio.Event()
        self.gate: asyncio.Event | None = None

    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        self.prompts.append(prompt)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        return Completion(f"You said: {prompt.user_text}")


class Broken(Provider):
    """Fails every attempt as a vendor's 5xx would (retryable), and counts the attempts."""

    name = "broken"
    model = "broken-1"
    min_attempt_seconds = 0.05

    def __init__(self) -> None:
        self.attempts = 0

    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        self.attempts += 1
        raise ProviderError("server_error", "500 injected", retryable=True)
