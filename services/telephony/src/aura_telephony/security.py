"""Twilio webhook authentication: every request must carry a valid X-Twilio-Signature."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from twilio.request_validator import RequestValidator

from aura_telephony.config import Settings

log = logging.getLogger(__name__)

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def signed_url(request: Request, settings: Settings) -> str:
    """The URL Twilio signed. Behind an ingress the service sees its own internal URL, so
    the public one comes from PUBLIC_BASE_URL when set."""
    if not settings.PUBLIC_BASE_URL:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{settings.PUBLIC_BASE_URL}{request.url.path}{query}"


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
        validator = RequestValidator(settings.TWILIO_AUTH_TOKEN)
        if not signature or not validator.validate(
            signed_url(request, settings), params, signature
        ):
            log.warning(
                "rejected webhook %s: %s signature",
                request.url.path,
                "missing" if not signature else "invalid",
            )
            raise HTTPException(status_code=403, detail="invalid or missing X-Twilio-Signature")
    return params
