"""Assembles the FastAPI application; nothing else lives here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from aura_common import process
from aura_common.settings import package_version
from aura_common.tracing import tracing_enabled
from aura_telephony.backends import Backends
from aura_telephony.calls import Calls
from aura_telephony.config import Settings
from aura_telephony.metrics import HttpMetrics
from aura_telephony.middleware import BodyLimit
from aura_telephony.outbound import Outbound
from aura_telephony.post_call import PostCallSender
from aura_telephony.relay import Relay
from aura_telephony.routers import admin, info, relay, stream, voice
from aura_telephony.twilio_rest import TwilioRest

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for warning in settings.warnings():
            log.warning("%s", warning)
        backends = Backends(settings)
        post_call = PostCallSender(settings, backends) if settings.POST_CALL_WEBHOOK_URL else None
        if post_call is not None:
            post_call.start()
        rest = TwilioRest(settings)
        app.state.calls = Calls(settings, backends, post_call, rest=rest)
        app.state.calls.start()
        app.state.relay = Relay(app.state.calls)
        app.state.outbound = Outbound(settings, backends.memory, rest)
        process.started()
        try:
            yield
        finally:
            await rest.close()
            await app.state.calls.close()
            if post_call is not None:
                await post_call.close()
            await backends.close()

    app = FastAPI(
        title="Aura telephony",
        version=package_version("aura-telephony"),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(BodyLimit, max_bytes=settings.MAX_REQUEST_BODY_BYTES)
    app.add_middleware(HttpMetrics)  # outermost: a 413 is counted too
    app.include_router(info.router)
    app.include_router(voice.router)
    app.include_router(relay.router)
    app.include_router(stream.router)
    app.include_router(admin.router)
    if tracing_enabled():
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # The webhook's server span is the root of the turn's trace.
        FastAPIInstrumentor.instrument_app(app, excluded_urls="health,metrics")
    return app
