"""uvicorn's httptools protocol with the limits a public listener needs.

- Read deadlines: uvicorn waits for a request's headers and body for as long as the client
  likes, so thousands of clients trickling bytes (or sending nothing at all) would hold
  connections forever. Here a request's headers must arrive within one deadline and its
  body within another, or the connection is closed.
- A bounded request head: httptools buffers headers without limit (four clients sending
  unfinished 64 MiB headers cost hundreds of MiB); past HTTP_MAX_HEADER_BYTES the client
  gets 431 and the connection is closed.
- Capacity of its own for HTTP: uvicorn's limit_concurrency counts WebSocket sessions
  too, so long-lived relay sockets could make webhooks and the liveness probe answer 503.
  Here only HTTP connections count towards HTTP_MAX_CONNECTIONS; WebSockets have their own
  limit (RELAY_MAX_SESSIONS)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


_TOO_LARGE_BODY = b"request headers too large\n"
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY)
)
_HEAD_END = b"\r\n\r\n"


class _Count:
    """Open HTTP connections of one server (its protocol class shares one)."""

    def __init__(self) -> None:
        self.open = 0


class DeadlineProtocol(HttpToolsProtocol):
    header_seconds = 10.0
    body_seconds = 10.0
    max_head_bytes = 32 * 1024
    max_connections: int | None = None
    http_connections = _Count()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = True  # reading a request's head (its first line and headers)
        self._head_bytes = 0
        self._counted = False
        # Capacity is ours to decide (see the module's docstring), request by request.
        self.limit_concurrency = None

    @classmethod
    def with_deadlines(
        cls,
        header_seconds: float,
        body_seconds: float,
        max_head_bytes: int = 32 * 1024,
        max_connections: int | None = None,
    ) -> type[DeadlineProtocol]:
        """The protocol class uvicorn instantiates per connection, with these limits."""
        limits = {
            "header_seconds": header_seconds,
            "body_seconds": body_seconds,
            "max_head_bytes": max_head_bytes,
            "max_connections": max_connections,
            "http_connections": _Count(),
        }
        return type(cls.__name__, (cls,), limits)

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self.http_connections.open -= 1

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.warning("closed a connection that did not send its request in time")
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.http_connections.open += 1
        self._counted = True
        self._arm(self.header_seconds)  # a client that connects and sends nothing

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._uncount()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            end = data.find(_HEAD_END)
            self._head_bytes += len(data) if end < 0 else end + len(_HEAD_END)
            if self._head_bytes > self.max_head_bytes:
                log.warning("refused a request whose headers passed %d bytes", self.max_head_bytes)
                self._disarm()
                self.transport.write(_TOO_LARGE)
                self.transport.close()
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_seconds)

    def on_headers_complete(self) -> None:
        self._in_head = False
        # uvicorn answers 503 when the limit is reached: here, when the HTTP connections
        # alone reach it (the open count includes this one).
        limit = self.max_connections
        full = limit is not None and self.http_connections.open > limit
        self.limit_concurrency = 0 if full else None
        super().on_headers_complete()
        self._arm(self.body_seconds)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0  # the next request on this connection
        self._disarm()  # from here the response, then uvicorn's keep-alive timeout, rule

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the connection now belongs to the WebSocket protocol
        self._uncount()
        super().handle_websocket_upgrade()
