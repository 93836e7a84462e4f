"""Tools of MCP servers reached over streamable HTTP, with the official `mcp` SDK.

The server's tools are listed at start and again every `refresh_seconds`; a server that
is down keeps the tools it last listed (none before its first answer) and the service runs
on. Each tool call opens its own short session: a call never waits behind another, and a
server restarted between calls costs nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent

from aura_common.tasks import stop
from aura_llm.providers.base import ToolSpec
from aura_llm.tools.config import TOOL_NAME_PATTERN, McpTarget, environment_headers
from aura_llm.tools.toolbox import Output, Tool, ToolError, ToolSource

log = logging.getLogger(__name__)

_NAME = re.compile(TOOL_NAME_PATTERN)


class McpServer(ToolSource):
    def __init__(self, target: McpTarget) -> None:
        self.url = str(target.url)
        self._target = target
        self._headers = environment_headers(target.headers)
        self._tools: tuple[McpTool, ...] = ()
        self._refreshing: asyncio.Task[None] | None = None

    def tools(self) -> Sequence[Tool]:
        return self._tools

    @contextlib.asynccontextmanager
    async def session(self, seconds: float) -> AsyncIterator[Client]:
        async with (
            httpx2.AsyncClient(headers=self._headers, timeout=seconds) as http,
            Client(
                streamable_http_client(self.url, http_client=http),
                read_timeout_seconds=seconds,
                cache=None,
            ) as client,
        ):
            yield client

    async def refresh(self) -> None:
        """List the server's tools again; raises when the server cannot be reached."""
        listed = []
        async with asyncio.timeout(self._target.timeout_seconds):
            async with self.session(self._target.timeout_seconds) as client:
                cursor: str | None = None
                while True:
                    page = await client.list_tools(cursor=cursor)
                    listed.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
        allowed = self._target.tools
        tools = []
        for tool in listed:
            if allowed is not None and tool.name not in allowed:
                continue
            if not _NAME.match(tool.name):
                log.warning(
                    "MCP %s: tool %r skipped: its name is not a valid tool name",
                    self.url,
                    tool.name,
                )
                continue
            schema = dict(tool.input_schema or {}) or {"type": "object", "properties": {}}
            spec = ToolSpec(tool.name, tool.description or tool.title or tool.name, schema)
            tools.append(McpTool(self, spec, self._target.timeout_seconds))
        if [t.spec for t in tools] != [t.spec for t in self._tools]:
            log.info("MCP %s: tools %s", self.url, ", ".join(t.spec.name for t in tools) or "none")
        self._tools = tuple(tools)

    async def start(self) -> None:
        await self._refresh_logged()
        self._refreshing = asyncio.create_task(self._keep_fresh())

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Exception as error:  # the service runs on with the tools it had
            log.error("MCP %s: cannot list tools: %s", self.url, _describe(error))

    async def _keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(self._target.refresh_seconds)
            await self._refresh_logged()

    async def close(self) -> None:
        await stop(self._refreshing)


class McpTool(Tool):
    kind = "mcp"

    def __init__(self, server: McpServer, spec: ToolSpec, timeout_seconds: float) -> None:
        self.spec = spec
        self.timeout_seconds = timeout_seconds
        self._server = server

    async def run(self, call_id: str, arguments: dict[str, Any], seconds: float) -> Output:
        try:
            async with self._server.session(seconds) as client:
                result = await client.call_tool(self.spec.name, arguments)
        except TimeoutError:
            raise
        except Exception as error:
            raise ToolError(f"the tool's server failed: {_describe(error)}") from error
        texts = [c.text for c in result.content if isinstance(c, TextContent)]
        if result.is_error:
            raise ToolError(" ".join(texts) or "the tool reported an error")
        if result.structured_content is not None:
            return Output(result.structured_content)
        return Output({"result": "\n".join(texts)})


def _describe(error: BaseException) -> str:
    """One line for an error that may be an exception group from the SDK's task group."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"
