"""Google Gemini through the official `google-genai` SDK (the older
`google-generativeai` package has reached end of support and is not used)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from google import genai
from google.genai import errors, types

from aura_llm.providers.base import (
    Completion,
    Prompt,
    Provider,
    ProviderError,
    status_error,
    unexpected_error,
)


def _translate(error: Exception) -> ProviderError:
    if isinstance(error, errors.APIError):
        return status_error(error.code, error.message or error.status or "error")
    return unexpected_error(error)


class GeminiProvider(Provider):
    name = "gemini"

    def __init__(
        self, *, api_key: str, model: str, base_url: str = "", max_output_tokens: int = 300
    ) -> None:
        self.model = model
        self._max_tokens = max_output_tokens
        self._client = genai.Client(
            api_key=api_key,
            http_options=types.HttpOptions(
                base_url=base_url or None,
                # Retries belong to the failover router, which knows the caller's deadline.
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    def _request(
        self, prompt: Prompt, budget: float
    ) -> tuple[list[types.Content], types.GenerateContentConfig]:
        contents: list[types.Content] = []
        for role, text in [(t.role, t.text) for t in prompt.history] + [("user", prompt.user_text)]:
            vendor_role = "user" if role == "user" else "model"
            if not contents and vendor_role == "model":
                continue  # Gemini conversations open with the user; our greeting adds nothing
            if contents and contents[-1].role == vendor_role and contents[-1].parts:
                contents[-1].parts.append(types.Part(text=text))
            else:
                contents.append(types.Content(role=vendor_role, parts=[types.Part(text=text)]))
        config = types.GenerateContentConfig(
            system_instruction=prompt.system_prompt,
            max_output_tokens=self._max_tokens,
            # The SDK would otherwise run Python callables as tools on its own (and log that
            # at INFO on every request); tools are the failover router's business.
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            http_options=types.HttpOptions(timeout=max(1, int(budget * 1000))),
        )
        return contents, config

    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        contents, config = self._request(prompt, budget)
        try:
            response = await self._client.aio.models.generate_content(
                model=self.model, contents=contents, config=config
            )
            text = response.text
        except Exception as error:
            raise _translate(error) from error
        if not text or not text.strip():
            raise ProviderError("bad_response", "empty answer", retryable=True)
        usage = response.usage_metadata
        return Completion(
            text,
            input_tokens=(usage.prompt_token_count or 0) if usage else 0,
            output_tokens=(usage.candidates_token_count or 0) if usage else 0,
        )

    async def stream(self, prompt: Prompt, budget: float) -> AsyncGenerator[str, None]:
        contents, config = self._request(prompt, budget)
        produced = False
        try:
            chunks = await self._client.aio.models.generate_content_stream(
                model=self.model, contents=contents, config=config
            )
            try:
                async for chunk in chunks:
                    if chunk.text:
                        produced = True
                        yield chunk.text
            finally:
                # Closed on the way out, also when the caller stops listening (barge-in):
                # the SDK's generator holds the vendor's HTTP stream open until then.
                aclose = getattr(chunks, "aclose", None)
                if aclose is not None:
                    await aclose()
        except Exception as error:
            raise _translate(error) from error
        if not produced:
            raise ProviderError("bad_response", "empty answer", retryable=True)

    async def close(self) -> None:
        await self._client.aio.aclose()
