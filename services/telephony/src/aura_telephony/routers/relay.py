"""ConversationRelay: the WebSocket Twilio opens for a relay call, and the webhook Twilio
posts when the session ends. The upgrade must carry Twilio's signature over the wss:// URL,
and the URL's last segment must be a ticket this deployment issued for one call (in the
welcome's TwiML); either missing or wrong is refused (HTTP 403) before the socket is
accepted. A session is closed by us when it sends no `setup` in time, a while after its
`end`, and when it stops reading what we send."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, WebSocket, WebSocketDisconnect

from aura_telephony.config import Settings
from aura_telephony.forms import RelayEnded
from aura_telephony.relay import Relay, RelaySession, Send, SocketSession
from aura_telephony.routers.voice import (
    RESPONSES,
    AppCalls,
    Params,
    delivery_key,
    form_body,
    twiml_response,
    webhook_form,
)
from aura_telephony.security import rejected, relay_url, ticket_call, websocket_signed

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/voice/relay", tags=["relay"])

# Twilio's largest messages are a few kilobytes; anything far larger is not Twilio.
MAX_MESSAGE_CHARS = 64 * 1024
# Closing a socket whose peer does not read may never finish: it is given this long.
_CLOSE_SECONDS = 2.0


@router.websocket("/{ticket}")
async def relay_socket(websocket: WebSocket, ticket: str) -> None:
    settings: Settings = websocket.app.state.settings
    relay: Relay = websocket.app.state.relay
    if not websocket_signed(websocket, settings):
        await websocket.close(code=1008)  # before accept: the client gets HTTP 403
        return
    call_sid = ticket_call(ticket, settings)
    if call_sid is None:
        rejected(websocket, "relay_ticket", "a relay URL this deployment did not issue")
        await websocket.close(code=1008)
        return
    await serve(websocket, relay, lambda send: RelaySession(relay, send, call_sid))


async def serve(
    websocket: WebSocket, relay: Relay, open_session: Callable[[Send], SocketSession]
) -> None:
    """Accept the socket and hand its messages to the session `open_session` makes, until
    either side closes it; the session is one of the relay registry's live ones meanwhile.
    A draining or full pod refuses it before accepting."""
    if relay.draining or relay.full:
        # Another replica takes it (readiness is failing), or Twilio falls back to gather.
        await websocket.close(code=1013)
        return
    await websocket.accept()

    async def send(message: dict[str, Any]) -> None:
        await websocket.send_text(json.dumps(message))

    session = open_session(send)
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
            # A peer that does not read is given _CLOSE_SECONDS to take the close.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLOSE_SECONDS):
                    await websocket.close(code=session.close_code)
        await relay.closed(session)


async def _read(websocket: WebSocket, session: SocketSession) -> None:
    """Hand each message to the session until the socket goes."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        # Twilio sends text frames; a binary one is read as text, never trusted as such.
        raw = message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")
        if len(raw) > MAX_MESSAGE_CHARS:
            log.warning("%s: a message of %d characters, ignored", session.name, len(raw))
            continue
        await session.handle(raw)


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
    url = relay_url(request, calls.settings, form.CallSid)
    return twiml_response(await calls.relay_ended(form, delivery_key(request, params), url))
