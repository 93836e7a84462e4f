"""Realtime mode: the Media Streams WebSocket Twilio opens for a call, and the webhook it
posts when the stream ends. The upgrade must carry Twilio's signature over the wss:// URL
(refused with HTTP 403 before the socket is accepted, and counted); the `start` message
must name this deployment's account and carry the ticket the welcome issued for its call."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, WebSocket, WebSocketDisconnect

from aura_telephony.config import Settings
from aura_telephony.forms import StreamEnded
from aura_telephony.relay import Relay
from aura_telephony.routers.relay import MAX_MESSAGE_CHARS, close_within
from aura_telephony.routers.voice import (
    RESPONSES,
    AppCalls,
    Params,
    delivery_key,
    form_body,
    twiml_response,
    webhook_form,
)
from aura_telephony.security import relay_url, websocket_signed
from aura_telephony.streams import StreamSession

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/voice/stream", tags=["realtime"])


@router.websocket("")
async def stream_socket(websocket: WebSocket) -> None:
    settings: Settings = websocket.app.state.settings
    relay: Relay = websocket.app.state.relay
    if not websocket_signed(websocket, settings):
        await websocket.close(code=1008)  # before accept: the client gets HTTP 403
        return
    if relay.draining or relay.full:
        await websocket.close(code=1013)
        return
    await websocket.accept()

    async def send(message: dict[str, Any]) -> None:
        await websocket.send_text(json.dumps(message))

    session = StreamSession(relay, send)
    relay.track(session)
    reader = asyncio.create_task(_read(websocket, session))
    closing = asyncio.create_task(session.closing.wait())
    try:
        await asyncio.wait({reader, closing}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reader, closing):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await reader
        if session.closing.is_set():
            await close_within(websocket, session.close_code)
        await relay.closed(session)


async def _read(websocket: WebSocket, session: StreamSession) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")
        if len(raw) > MAX_MESSAGE_CHARS:
            log.warning("stream: a message of %d characters, ignored", len(raw))
            continue
        await session.handle(raw)


@router.post(
    "/ended",
    response_class=Response,
    responses=RESPONSES,
    summary="A realtime stream ended: continue the call (transfer, hang up, reconnect, gather)",
    openapi_extra=form_body(StreamEnded),
)
async def stream_ended(
    request: Request,
    params: Params,
    form: Annotated[StreamEnded, Depends(webhook_form(StreamEnded))],
    calls: AppCalls,
) -> Response:
    url = relay_url(request, calls.settings, form.CallSid)
    return twiml_response(await calls.stream_ended(form, delivery_key(request, params), url))
