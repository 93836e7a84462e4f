"""Entry point of the telephony service: `aura-telephony` or `python -m aura_telephony`."""

from __future__ import annotations

import signal

import uvicorn

from aura_common.logs import setup_logging
from aura_common.metrics import serve_metrics
from aura_common.settings import bind_socket, load_settings, package_version
from aura_common.tracing import setup_tracing, shutdown_tracing
from aura_telephony.config import Settings
from aura_telephony.main import create_app


def main() -> None:
    settings = load_settings(Settings)
    setup_logging("telephony", settings.LOG_LEVEL, settings.LOG_FORMAT)
    tracer_provider = setup_tracing("aura-telephony", package_version("aura-telephony"))
    # uvicorn drains connections on SIGTERM/SIGINT, then re-raises the signal into the
    # handlers it found at start; with these no-ops a graceful stop exits with status 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: None)
    try:
        _serve(settings)
    finally:
        shutdown_tracing(tracer_provider)


def _serve(settings: Settings) -> None:
    sock = bind_socket(settings.HOST, settings.PORT, "PORT")
    serve_metrics(settings.METRICS_HOST, settings.TELEPHONY_METRICS_PORT, "TELEPHONY_METRICS_PORT")
    config = uvicorn.Config(
        create_app(settings),
        log_config=None,  # keep the shared logging setup
        proxy_headers=False,  # signatures use PUBLIC_BASE_URL, never client-supplied headers
        timeout_graceful_shutdown=10,
        # The C parser: about a third of h11's CPU per request. uvloop is left out, as it
        # made grpc.aio slower here.
        http="httptools",
        loop="asyncio",
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
