"""Google Gemini through the official `google-genai` SDK (the older
`google-generativeai` package has reached end of support and is not used)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterator
from typing import Any

from google import genai
from google.genai import errors, types

from aura_llm.providers.base import (
    Completion,
    Delta,
    Prompt,
    Provider,
    ProviderError,
    ToolCall,
    status_error,
    unexpected_error,
)


def _translate(error: Exception) -> ProviderError:
    if isinstance(error, errors.APIError):
        return status_error(error.code, error.message or error.status or "error")
    return unexpected_error(error)


def _arguments(text: str) -> dict[str, Any]:
    """A call's arguments as Gemini takes them back: an object, whatever the model wrote."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _result(content: str) -> dict[str, Any]:
    """A tool result as a functionResponse's `response` object."""
    try:
        value = json.loads(content)
    except ValueError:
        value = content
    return value if isinstance(value, dict) else {"result": value}


def _deltas(response: types.GenerateContentResponse, calls: int) -> Iterator[Delta]:
    """The text and function calls of one response (or streamed chunk), thoughts left out.
    `calls` counts the calls seen before, to name those Gemini sends without an id."""
    candidates = response.candidates or []
    content = candidates[0].content if candidates else None
    for part in (content.parts or []) if content else []:
        if part.thought:
            continue
        if part.text:
            yield part.text
        call = part.function_call
        if call is not None and call.name:
            calls += 1
            yield ToolCall(call.id or f"call_{calls}", call.name, json.dumps(call.args or {}))


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
    ) -> tuple[list[types.ContentDict], types.GenerateContentConfigDict]:
        """The request in the SDK's dict forms, which it validates into its models once.
        Built models cost about 1 ms more CPU a request: we would build them, and the SDK
        deep-copies a built config on every call."""
        contents: list[types.ContentDict] = []
        parts: list[types.PartDict] = []  # the last content's
        for role, text in [(t.role, t.text) for t in prompt.history] + [("user", prompt.user_text)]:
            vendor_role = "user" if role == "user" else "model"
            if not contents and vendor_role == "model":
                continue  # Gemini conversations open with the user; our greeting adds nothing
            if not contents or contents[-1]["role"] != vendor_role:
                parts = []
                contents.append({"role": vendor_role, "parts": parts})
            parts.append({"text": text})
        for step in prompt.steps:
            said: list[types.PartDict] = [{"text": step.text}] if step.text else []
            calls: list[types.PartDict] = [
                {
                    "function_call": {
                        "id": r.call.id,
                        "name": r.call.name,
                        "args": _arguments(r.call.arguments),
                    }
                }
                for r in step.results
            ]
            contents.append({"role": "model", "parts": said + calls})
            responses: list[types.PartDict] = [
                {
                    "function_response": {
                        "id": r.call.id,
                        "name": r.call.name,
                        "response": _result(r.content),
                    }
                }
                for r in step.results
            ]
            contents.append({"role": "user", "parts": responses})
        config: types.GenerateContentConfigDict = {
            "system_instruction": prompt.system_prompt,
            "max_output_tokens": self._max_tokens,
            # The SDK would otherwise run Python callables as tools on its own (and log that
            # at INFO on every request); tools are the tool loop's business.
            "automatic_function_calling": {"disable": True},
            "http_options": {"timeout": max(1, int(budget * 1000))},
        }
        if prompt.tools:
            config["tools"] = [
                {
                    "function_declarations": [
                        {
                            "name": t.name,
                            "description": t.description,
                            "parameters_json_schema": dict(t.parameters),
                        }
                        for t in prompt.tools
                    ]
                }
            ]
            mode = (
                types.FunctionCallingConfigMode.AUTO
                if prompt.may_call_tools
                else types.FunctionCallingConfigMode.NONE
            )
            config["tool_config"] = {"function_calling_config": {"mode": mode}}
        return contents, config

    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        contents, config = self._request(prompt, budget)
        try:
            response = await self._client.aio.models.generate_content(
                model=self.model, contents=contents, config=config
            )
            deltas = list(_deltas(response, 0))
        except Exception as error:
            raise _translate(error) from error
        text = "".join(d for d in deltas if isinstance(d, str))
        calls = tuple(d for d in deltas if isinstance(d, ToolCall))
        if not text.strip() and not calls:
            raise ProviderError("bad_response", "empty answer", retryable=True)
        usage = response.usage_metadata
        return Completion(
            text,
            input_tokens=(usage.prompt_token_count or 0) if usage else 0,
            output_tokens=(usage.candidates_token_count or 0) if usage else 0,
            tool_calls=calls,
        )

    async def stream(self, prompt: Prompt, budget: float) -> AsyncGenerator[Delta, None]:
        contents, config = self._request(prompt, budget)
        produced = False
        calls = 0
        try:
            chunks = await self._client.aio.models.generate_content_stream(
                model=self.model, contents=contents, config=config
            )
            try:
                async for chunk in chunks:
                    for delta in _deltas(chunk, calls):
                        if isinstance(delta, ToolCall):
                            calls += 1
                        if delta:
                            produced = True
                            yield delta
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
