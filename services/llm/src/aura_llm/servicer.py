"""gRPC LlmService: validates requests, builds the prompt and asks the provider, within
the caller's deadline."""

from __future__ import annotations

import asyncio
import logging
from typing import NoReturn

import grpc

from aura.llm.v1 import llm_service_pb2 as pb
from aura.llm.v1 import llm_service_pb2_grpc as pb_grpc
from aura_llm.config import Settings
from aura_llm.providers import ChatTurn, Prompt, Provider, ProviderError
from aura_llm.providers.base import Role

log = logging.getLogger(__name__)

MAX_USER_TEXT_CHARS = 2000
MAX_HISTORY_TURNS = 100
# Time kept back from the caller's deadline so that our answer, not its timeout, arrives.
_DEADLINE_MARGIN_SECONDS = 0.05

_ROLES: dict[int, Role] = {pb.ROLE_USER: "user", pb.ROLE_ASSISTANT: "assistant"}

Context = grpc.aio.ServicerContext[pb.GenerateRequest, pb.GenerateResponse]


async def _reject(context: Context, message: str) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)


class LlmServicer(pb_grpc.LlmServiceServicer):
    def __init__(self, provider: Provider, settings: Settings) -> None:
        self._provider = provider
        self._settings = settings

    async def _prompt(self, request: pb.GenerateRequest, context: Context) -> Prompt:
        user_text = request.user_text.strip()
        if not user_text:
            await _reject(context, "user_text is required")
        if len(user_text) > MAX_USER_TEXT_CHARS:
            await _reject(context, f"user_text is longer than {MAX_USER_TEXT_CHARS} characters")
        if len(request.history) > MAX_HISTORY_TURNS:
            await _reject(context, f"history has more than {MAX_HISTORY_TURNS} turns")
        history = []
        for message in request.history:
            role = _ROLES.get(message.role)
            if role is None:
                await _reject(context, "every history message needs role USER or ASSISTANT")
            history.append(ChatTurn(role, message.text))
        name = request.persona.assistant_name or self._settings.AI_ASSISTANT_NAME
        template = request.persona.system_prompt or self._settings.AI_SYSTEM_PROMPT
        return Prompt(
            call_id=request.call_id,
            assistant_name=name,
            system_prompt=template.replace("{assistant_name}", name),
            history=tuple(history),
            user_text=user_text,
        )

    def _time_left(self, context: Context) -> float:
        remaining = context.time_remaining()
        if remaining is None:
            return self._settings.LLM_DEFAULT_TIMEOUT_SECONDS
        return max(0.0, remaining - _DEADLINE_MARGIN_SECONDS)

    async def Generate(self, request: pb.GenerateRequest, context: Context) -> pb.GenerateResponse:
        prompt = await self._prompt(request, context)
        provider = self._provider
        try:
            text = await asyncio.wait_for(provider.generate(prompt), self._time_left(context))
        except TimeoutError:
            log.warning("provider %s timed out for call %s", provider.name, request.call_id)
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"provider {provider.name} timed out"
            )
        except ProviderError as exc:
            log.warning("provider %s failed for call %s: %s", provider.name, request.call_id, exc)
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"provider {provider.name} failed: {exc}"
            )
        return pb.GenerateResponse(
            text=text, provider=provider.name, model=provider.model, failover=False
        )
