"""Twilio webhook authentication: every request must carry a valid X-Twilio-Signature (and
name our account, when TWILIO_ACCOUNT_SID is set). Rejections are counted by reason."""

from __future__ import annotations

import logging
import re
from typing import Annotated, NoReturn

from fastapi import Depends, HTTPException, Request, WebSocket
from starlette.requests import HTTPConnection
from twilio.request_validator import RequestValidator

from aura_telephony import metrics
from aura_telephony.config import Settings
from aura_telephony.macs import value_mac, value_signed
from aura_telephony.twiml import RELAY_PATH, STREAM_PATH

log = logging.getLogger(__name__)

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


# Dependencies are `async def`: FastAPI runs a plain `def` one in a worker thread, a
# thread hand-off per request for what is an attribute read.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _first(header: str | None) -> str:
    # Proxies append to these headers; the first value is what the client reached.
    return (header or "").split(",")[0].strip()


def public_base(connection: HTTPConnection, settings: Settings) -> str:
    """The scheme and host Twilio reaches us at. Behind an ingress the service sees its
    own internal URL, so the public one comes from PUBLIC_BASE_URL, or from the
    X-Forwarded headers when the operator trusts the proxy that sets them."""
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL
    url = connection.url
    if settings.TRUST_PROXY_HEADERS:
        proto = _first(connection.headers.get("x-forwarded-proto")) or url.scheme
        host = _first(connection.headers.get("x-forwarded-host")) or url.netloc
        return f"{proto}://{host}"
    return f"{url.scheme}://{url.netloc}"


def websocket_url(base: str, path: str) -> str:
    """`base` + `path` as a WebSocket URL: https becomes wss, http ws."""
    return re.sub(r"^http", "ws", base) + path


_CALL_SID = re.compile(r"^[A-Za-z0-9]{1,64}$")


def _ticket_mac(call_sid: str, settings: Settings) -> str:
    return value_mac("relay", call_sid, settings)


def relay_ticket(call_sid: str, settings: Settings) -> str:
    """The last segment of a relay URL issued for one call: its CallSid and a MAC that
    only this deployment can make (keyed with the auth token, so every replica can check
    it). A signed upgrade for one call's URL opens no session of another's."""
    return f"{call_sid}.{_ticket_mac(call_sid, settings)}"


def ticket_call(ticket: str, settings: Settings) -> str | None:
    """The CallSid a relay URL's ticket was issued for, or None when it is not ours."""
    call_sid, _, mac = ticket.partition(".")
    if not _CALL_SID.match(call_sid) or not mac:
        return None
    return call_sid if value_signed("relay", call_sid, mac, settings) else None


def relay_url(connection: HTTPConnection, settings: Settings, call_sid: str) -> str:
    """The wss:// URL of the ConversationRelay WebSocket for one call, as Twilio reaches
    it (the ticket is a path segment: the URL stays signable and free of a query)."""
    path = f"{RELAY_PATH}/{relay_ticket(call_sid, settings)}"
    return websocket_url(public_base(connection, settings), path)


def stream_endpoint(relay_url: str) -> tuple[str, str]:
    """The realtime stream's wss:// URL and the call's ticket, from the call's relay URL:
    Media Streams drops a URL's query string, so the ticket goes in a <Parameter>, and the
    URL is the one fixed path Twilio signs."""
    base, _, ticket = relay_url.rpartition(f"{RELAY_PATH}/")
    return f"{base}{STREAM_PATH}", ticket


def signed_url(connection: HTTPConnection, settings: Settings) -> str:
    """The URL Twilio signed: the public one, with this request's path and query; for a
    WebSocket upgrade, the wss:// URL. The validator accepts the URL with and without its
    default port, as Twilio may sign either."""
    query = f"?{connection.url.query}" if connection.url.query else ""
    base = public_base(connection, settings)
    if connection.scope["type"] == "websocket":
        return websocket_url(base, connection.url.path) + query
    return f"{base}{connection.url.path}{query}"


async def twilio_form(
    request: Request, settings: Annotated[Settings, Depends(get_settings)]
) -> dict[str, str]:
    """The webhook's form parameters, once the request is shown to come from Twilio."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        raise HTTPException(status_code=415, detail=f"expected {FORM_CONTENT_TYPE}")
    form = await request.form()
    params = {key: value for key, value in form.items() if isinstance(value, str)}
    if settings.TWILIO_AUTH_TOKEN:
        signature = request.headers.get("x-twilio-signature", "")
        if not signature:
            _reject(request, "missing", "missing X-Twilio-Signature")
        validator = RequestValidator(settings.TWILIO_AUTH_TOKEN)
        if not validator.validate(signed_url(request, settings), params, signature):
            _reject(request, "invalid", "invalid X-Twilio-Signature")
    account = settings.TWILIO_ACCOUNT_SID
    # A cheap second check: a webhook signed for another account of the same token holder,
    # or replayed from one, names another AccountSid.
    if account and params.get("AccountSid", "") != account:
        _reject(request, "account_mismatch", "AccountSid does not match TWILIO_ACCOUNT_SID")
    return params


def _reject(request: Request, reason: str, detail: str) -> NoReturn:
    rejected(request, reason, detail)
    raise HTTPException(status_code=403, detail=detail)


def rejected(connection: HTTPConnection, reason: str, detail: str) -> None:
    metrics.SIGNATURE_REJECTIONS.labels(reason).inc()
    log.warning("rejected %s: %s", connection.url.path, detail)


def websocket_signed(websocket: WebSocket, settings: Settings) -> bool:
    """Whether a WebSocket upgrade carries Twilio's signature over its wss:// URL (no body
    parameters); counted like a webhook's when it does not."""
    if not settings.TWILIO_AUTH_TOKEN:
        return True
    signature = websocket.headers.get("x-twilio-signature", "")
    if not signature:
        rejected(websocket, "missing", "missing X-Twilio-Signature")
        return False
    validator = RequestValidator(settings.TWILIO_AUTH_TOKEN)
    if not validator.validate(signed_url(websocket, settings), {}, signature):
        rejected(websocket, "invalid", "invalid X-Twilio-Signature")
        return False
    return True
