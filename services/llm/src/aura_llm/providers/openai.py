"""OpenAI Chat Completions, and any server that speaks the same API (vLLM, Ollama,
LM Studio, llama.cpp server) through OPENAI_BASE_URL."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

import openai

from aura_llm.providers.base import (
    Completion,
    Prompt,
    Provider,
    ProviderError,
    status_error,
    unexpected_error,
)

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam


def _retry_after(error: openai.APIStatusError) -> float | None:
    value = error.response.headers.get("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _translate(error: Exception) -> ProviderError:
    if isinstance(error, openai.APITimeoutError):
        return ProviderError("timeout", "request timed out", retryable=False)
    if isinstance(error, openai.APIConnectionError):
        return ProviderError("connection", f"cannot reach the API: {error}", retryable=True)
    if isinstance(error, openai.APIStatusError):
        return status_error(error.status_code, error.message, _retry_after(error))
    if isinstance(error, openai.APIResponseValidationError):
        return ProviderError("bad_response", f"unreadable answer: {error}", retryable=True)
    return unexpected_error(error)


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(
        self, *, api_key: str, model: str, base_url: str = "", max_output_tokens: int = 300
    ) -> None:
        self.model = model
        self._max_tokens = max_output_tokens
        # Retries belong to the failover router, which knows the caller's deadline.
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url or None, max_retries=0)

    def _messages(self, prompt: Prompt) -> list[ChatCompletionMessageParam]:
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": prompt.system_prompt}
        ]
        for turn in prompt.history:
            if turn.role == "user":
                messages.append({"role": "user", "content": turn.text})
            else:
                messages.append({"role": "assistant", "content": turn.text})
        messages.append({"role": "user", "content": prompt.user_text})
        return messages

    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        try:
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=self._messages(prompt),
                max_tokens=self._max_tokens,
                timeout=budget,
            )
            text = response.choices[0].message.content if response.choices else None
        except Exception as error:
            raise _translate(error) from error
        if not text or not text.strip():
            raise ProviderError("bad_response", "empty answer", retryable=True)
        usage = response.usage
        return Completion(
            text,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
        )

    async def stream(self, prompt: Prompt, budget: float) -> AsyncGenerator[str, None]:
        produced = False
        try:
            chunks: Any = await self._client.chat.completions.create(
                model=self.model,
                messages=self._messages(prompt),
                max_tokens=self._max_tokens,
                timeout=budget,
                stream=True,
            )
            # Closed on the way out, also when the caller stops listening (barge-in): the
            # vendor sees the connection go and stops generating tokens nobody hears.
            async with chunks:
                async for chunk in chunks:
                    delta = chunk.choices[0].delta.content if chunk.choices else None
                    if delta:
                        produced = True
                        yield delta
        except Exception as error:
            raise _translate(error) from error
        if not produced:
            raise ProviderError("bad_response", "empty answer", retryable=True)

    async def close(self) -> None:
        await self._client.close()
