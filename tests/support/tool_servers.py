"""Servers the assistant's tools call, started by the tests on loopback: a business's
HTTP tool that verifies Aura's signature as the README tells receivers to, and an MCP
server built with the official `mcp` SDK, served over streamable HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from aiohttp import web
from mcp.server.mcpserver import MCPServer

from aura_dev.stack import free_port
from tests.support import eventually
from tests.support.fake_vendors import serve_routes

SECRET = "tools-signing-secret"
# A receiver refuses requests signed longer ago than this (replays).
MAX_AGE_SECONDS = 300


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does: recompute the HMAC over timestamp + "." + body, compare in
    constant time, and refuse a stale timestamp."""
    timestamp = headers.get("x-aura-timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_AGE_SECONDS:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(
        headers.get("x-aura-signature", ""), f"sha256={expected.hexdigest()}"
    )


@dataclass
class ToolCallRecord:
    headers: dict[str, str]
    body: dict[str, Any]
    verified: bool


@dataclass
class FakeToolServer:
    """POST /<tool>: answers each request with the next scripted JSON (a dict), "hang"
    (never answers), or an int (that HTTP status); 401 when the signature is wrong."""

    default: Any = field(default_factory=lambda: {"status": "baked, ready to collect"})
    calls: list[ToolCallRecord] = field(default_factory=list)
    _script: deque[Any] = field(default_factory=deque)
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    base_url: str = ""

    def script(self, *answers: Any) -> None:
        self._script.extend(answers)

    async def start(self) -> str:
        self._runner, self.base_url = await serve_routes([web.post("/{tool}", self._handle)])
        return self.base_url

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = verify(SECRET, headers, raw)
        self.calls.append(ToolCallRecord(headers, json.loads(raw), verified))
        if not verified:
            return web.json_response({"error": "bad signature"}, status=401)
        answer = self._script.popleft() if self._script else self.default
        if answer == "hang":
            await self._release.wait()
            return web.Response(status=503)
        if isinstance(answer, int):
            return web.json_response({"error": "injected"}, status=answer)
        return web.json_response(answer)


def shop_mcp() -> MCPServer:
    """An MCP server with one tool, as a shop might run next to its booking system."""
    server = MCPServer("shop")

    @server.tool(description="Whether the bakery has a free slot for a cake tasting on a day.")
    def check_tasting(day: str) -> str:
        return f"There is a free tasting slot on {day} at 3 pm."

    return server


@contextlib.contextmanager
def serving_mcp(server: MCPServer) -> Iterator[str]:
    """Serve `server` over streamable HTTP on a free loopback port, in a thread; yields the
    MCP endpoint URL."""
    port = free_port()
    config = uvicorn.Config(
        server.streamable_http_app(), host="127.0.0.1", port=port, log_level="warning"
    )
    web_server = uvicorn.Server(config)
    thread = threading.Thread(target=web_server.run, daemon=True)
    thread.start()
    try:
        eventually(lambda: web_server.started, timeout=10, what="the MCP server to start")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        web_server.should_exit = True
        thread.join(timeout=10)


@dataclass
class WebhookReceiver:
    """A business's post-call webhook endpoint: POST /calls, signature checked. It answers
    each request with the next scripted status, then 200; `answered` keeps each status."""

    secret: str
    script: deque[int] = field(default_factory=deque)
    received: list[ToolCallRecord] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> str:
        self._runner, base_url = await serve_routes([web.post("/calls", self._handle)])
        self.url = f"{base_url}/calls"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = verify(self.secret, headers, raw)
        self.received.append(ToolCallRecord(headers, json.loads(raw), verified))
        status = (self.script.popleft() if self.script else 200) if verified else 401
        self.answered.append(status)
        return web.json_response({"ok": status < 300}, status=status)

    def delivered(self) -> list[ToolCallRecord]:
        """The records accepted (signed right, answered 200)."""
        return [r for r, status in zip(self.received, self.answered, strict=True) if status == 200]
