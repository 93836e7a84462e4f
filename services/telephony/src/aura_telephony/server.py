"""Entry point of the telephony service: `aura-telephony` or `python -m aura_telephony`."""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import socket
import sys
from types import FrameType

import uvicorn
from fastapi import FastAPI

from aura_common.logs import setup_logging
from aura_common.metrics import serve_metrics
from aura_common.settings import bind_socket, load_settings, package_version
from aura_common.tracing import setup_tracing, shutdown_tracing
from aura_telephony import phrases
from aura_telephony.config import Settings
from aura_telephony.http_protocol import DeadlineProtocol
from aura_telephony.main import create_app
from aura_telephony.relay import Relay

log = logging.getLogger(__name__)


def main() -> None:
    settings = load_settings(Settings)
    setup_logging("telephony", settings.LOG_LEVEL, settings.LOG_FORMAT)
    try:
        phrases.from_settings(settings)  # every configured language has its lines
    except phrases.PhrasebookError as error:
        log.critical("%s", error)
        sys.exit(2)
    tracer_provider = setup_tracing("aura-telephony", package_version("aura-telephony"))
    # uvicorn drains connections on SIGTERM/SIGINT, then re-raises the signal into the
    # handlers it found at start; with these no-ops a graceful stop exits with status 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: None)
    try:
        _serve(settings)
    finally:
        shutdown_tracing(tracer_provider)


class DrainingServer(uvicorn.Server):
    """uvicorn, with a drain before its own shutdown: on the first SIGTERM readiness fails
    at once while the listener keeps serving, live relay sessions go on for up to
    DRAIN_SECONDS and are then handed over to other replicas; only then does uvicorn stop
    (which would otherwise close every WebSocket at once)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self._app = app
        self._drain_seconds = drain_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        relay: Relay | None = getattr(self._app.state, "relay", None)
        if self._draining is None and not self.should_exit and relay and self._loop:
            self._loop.call_soon_threadsafe(self._drain, relay, sig, frame)
            return
        super().handle_exit(sig, frame)  # a second signal, or nothing to drain

    def _drain(self, relay: Relay, sig: int, frame: FrameType | None) -> None:
        async def drain_then_stop() -> None:
            try:
                await relay.drain(self._drain_seconds)
            finally:
                uvicorn.Server.handle_exit(self, sig, frame)

        self._draining = asyncio.create_task(drain_then_stop())


def shutdown_grace(settings: Settings) -> int:
    """How long SIGTERM waits for in-flight requests: the longest turn, and a margin."""
    return math.ceil(settings.TURN_BUDGET_SECONDS) + 2


def _serve(settings: Settings) -> None:
    sock = bind_socket(settings.HOST, settings.PORT, "PORT")
    serve_metrics(settings.METRICS_HOST, settings.TELEPHONY_METRICS_PORT, "TELEPHONY_METRICS_PORT")
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        log_config=None,  # keep the shared logging setup
        proxy_headers=False,  # signatures use PUBLIC_BASE_URL, never client-supplied headers
        # On SIGTERM, in-flight turns may run to the end of their budget.
        timeout_graceful_shutdown=shutdown_grace(settings),
        # The C parser (about a third of h11's CPU per request), with read deadlines.
        # uvloop is left out, as it made grpc.aio slower here.
        # Beyond HTTP_MAX_CONNECTIONS HTTP connections at once, new requests get 503; relay
        # sockets are not counted (they have RELAY_MAX_SESSIONS), so that webhooks and
        # the liveness probe keep their capacity whatever the WebSockets do.
        http=DeadlineProtocol.with_deadlines(
            settings.HTTP_HEADER_TIMEOUT_SECONDS,
            settings.HTTP_BODY_TIMEOUT_SECONDS,
            settings.HTTP_MAX_HEADER_BYTES,
            settings.HTTP_MAX_CONNECTIONS,
        ),
        loop="asyncio",
        timeout_keep_alive=settings.HTTP_KEEP_ALIVE_SECONDS,
        # Twilio's relay messages are a few kilobytes: a frame past 1 MiB closes the socket.
        ws_max_size=1024 * 1024,
    )
    DrainingServer(config, app, settings.DRAIN_SECONDS).run(sockets=[sock])


if __name__ == "__main__":
    main()
