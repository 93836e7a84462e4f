"""Twilio webhook authentication: every request must carry a valid X-Twilio-Signature (and
name our account, when TWILIO_ACCOUNT_SID is set). Rejections are counted by reason."""

from __future__ import annotations

import logging
from typing import Annotated, NoReturn

from fastapi import Depends, HTTPException, Request
from twilio.request_validator import RequestValidator

from aura_telephony import metrics
from aura_telephony.config import Settings

log = logging.getLogger(__name__)

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _first(header: str | None) -> str:
    # Proxies append to these headers; the first value is what the client reached.
    return (header or "").split(",")[0].strip()


def signed_url(request: Request, settings: Settings) -> str:
    """The URL Twilio signed. Behind an ingress the service sees its own internal URL, so
    the public one comes from PUBLIC_BASE_URL, or from the X-Forwarded headers when the
    operator trusts the proxy that sets them. The validator accepts the URL with and
    without its default port, as Twilio may sign either."""
    query = f"?{request.url.query}" if request.url.query else ""
    if settings.PUBLIC_BASE_URL:
        return f"{settings.PUBLIC_BASE_URL}{request.url.path}{query}"
    if settings.TRUST_PROXY_HEADERS:
        proto = _first(request.headers.get("x-forwarded-proto")) or request.url.scheme
        host = _first(request.headers.get("x-forwarded-host")) or request.url.netloc
        return f"{proto}://{host}{request.url.path}{query}"
    return str(request.url)


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
    metrics.SIGNATURE_REJECTIONS.labels(reason).inc()
    log.warning("rejected webhook %s: %s", request.url.path, detail)
    raise HTTPException(status_code=403, detail=detail)
