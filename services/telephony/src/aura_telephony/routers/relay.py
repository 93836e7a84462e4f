"""ConversationRelay: the WebSocket Twilio opens for a relay call, and the webhook Twilio
posts when the session ends. The upgrade must carry Twilio's signature over the wss:// URL;
a missing or wrong one is refused (HTTP 403) before the socket is accepted."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, WebSocket, WebSocketDisconnect

from aura_telephony.config import Settings
from aura_telephony.forms import RelayEnded
from aura_telephony.relay import Relay
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

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/voice/relay", tags=["relay"])

# Twilio's largest messages are a few kilobytes; anything far larger is not Twilio.
MAX_MESSAGE_CHARS = 64 * 1024


@router.websocket("")
async def relay_socket(websocket: WebSocket) -> None:
    settings: Settings = websocket.app.state.settings
    relay: Relay = websocket.app.state.relay
    if not websocket_signed(websocket, settings):
        await websocket.close(code=1008)  # before accept: the client gets HTTP 403
        return
    if relay.draining:
        await websocket.close(code=1013)  # another replica takes it (readiness is failing)
        return
    await websocket.accept()

    async def send(message: dict[str, Any]) -> None:
        await websocket.send_text(json.dumps(message))

    session = relay.open(send)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            # Twilio sends text frames; a binary one is read as text, never trusted as such.
            raw = message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")
            if len(raw) > MAX_MESSAGE_CHARS:
                log.warning("relay: a message of %d characters, ignored", len(raw))
                continue
            await session.handle(raw)
            if session.refused:
                await websocket.close(code=1008)
                break
    except WebSocketDisconnect:
        pass
    finally:
        await relay.closed(session)


@router.post(
    "/ended",
    response_class=Response,
    responses=RESPONSES,
    summary="A relay session ended: continue the call (transfer, hang up, reconnect)",
    openapi_extra=form_body(RelayEnded),
)
async def relay_ended(
    request: Request,
    params: Params,
    form: Annotated[RelayEnded, Depends(webhook_form(RelayEnded))],
    calls: AppCalls,
) -> Response:
    url = relay_url(request, calls.settings)
    return twiml_response(await calls.relay_ended(form, delivery_key(request, params), url))
