"""uvicorn's httptools protocol with read deadlines. uvicorn waits for a request's headers
and body for as long as the client likes, so thousands of clients trickling bytes (or
sending nothing at all) would hold connections forever. Here a request's headers must
arrive within one deadline and its body within another, or the connection is closed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


class DeadlineProtocol(HttpToolsProtocol):
    header_seconds = 10.0
    body_seconds = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    @classmethod
    def with_deadlines(cls, header_seconds: float, body_seconds: float) -> type[DeadlineProtocol]:
        """The protocol class uvicorn instantiates per connection, with these deadlines."""
        return type(
            cls.__name__, (cls,), {"header_seconds": header_seconds, "body_seconds": body_seconds}
        )

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
        self._arm(self.header_seconds)  # a client that connects and sends nothing

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_seconds)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self.body_seconds)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()  # from here the response, then uvicorn's keep-alive timeout, rule

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the connection now belongs to the WebSocket protocol
        super().handle_websocket_upgrade()
