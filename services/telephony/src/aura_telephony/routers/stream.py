"""Realtime mode: the Media Streams WebSocket Twilio opens for a call, and the webhook it
posts when the stream ends. The upgrade must carry Twilio's signature over the wss:// URL
(refused with HTTP 403 before the socket is accepted, and counted); the `start` message
must name this deployment's account and carry the ticket the welcome issued for its call."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, WebSocket

from aura_telephony.config import Settings
from aura_telephony.forms import StreamEnded
from aura_telephony.relay import Relay
from aura_telephony.routers.relay import serve
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

router = APIRouter(prefix="/api/voice/stream", tags=["realtime"])


@router.websocket("")
async def stream_socket(websocket: WebSocket) -> None:
    settings: Settings = websocket.app.state.settings
    relay: Relay = websocket.app.state.relay
    if not websocket_signed(websocket, settings):
        await websocket.close(code=1008)  # before accept: the client gets HTTP 403
        return
    await serve(websocket, relay, lambda send: StreamSession(relay, send))


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
