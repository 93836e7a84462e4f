"""Operator-written HTTP tools: Aura POSTs {"call_id", "tool", "arguments"} as JSON,
signed so that the receiver can check it came from us and is fresh:

    X-Aura-Timestamp: <unix seconds>
    X-Aura-Signature: sha256=<hex HMAC-SHA256(TOOLS_SIGNING_SECRET, timestamp + "." + body)>

(aura_common.signing). The JSON answer (at most MAX_RESULT_BYTES) goes back to the model
as data."""

from __future__ import annotations

import json
from typing import Any

import httpx

from aura_common.signing import signed_headers
from aura_llm.providers.base import ToolSpec
from aura_llm.tools.config import HttpTool, environment_headers
from aura_llm.tools.toolbox import MAX_RESULT_BYTES, Output, Tool, ToolError


class HttpToolRunner(Tool):
    kind = "http"

    def __init__(self, entry: HttpTool, secret: str, client: httpx.AsyncClient) -> None:
        self.spec = ToolSpec(entry.name, entry.description, entry.parameters)
        self.timeout_seconds = entry.http.timeout_seconds
        self._url = str(entry.http.url)
        self._secret = secret
        self._client = client
        self._headers = environment_headers(entry.http.headers)

    async def run(self, call_id: str, arguments: dict[str, Any], seconds: float) -> Output:
        body = json.dumps(
            {"call_id": call_id, "tool": self.spec.name, "arguments": arguments},
            separators=(",", ":"),
        ).encode()
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            **signed_headers(self._secret, body),
        }
        try:
            async with self._client.stream(
                "POST", self._url, content=body, headers=headers, timeout=seconds
            ) as response:
                if response.status_code >= 300:
                    raise ToolError(f"the service answered HTTP {response.status_code}")
                raw = b""
                async for chunk in response.aiter_bytes():
                    raw += chunk
                    if len(raw) > MAX_RESULT_BYTES:
                        raise ToolError("the service's answer was too long")
        except httpx.TimeoutException as error:
            raise TimeoutError from error
        except httpx.HTTPError as error:
            raise ToolError(f"the service could not be reached ({type(error).__name__})") from error
        try:
            return Output(json.loads(raw))
        except ValueError:
            raise ToolError("the service's answer was not JSON") from None
