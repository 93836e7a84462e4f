"""Twilio's REST API through the official `twilio` SDK, for outbound calls and call
recordings. TWILIO_API_BASE_URL sends the requests to a gateway or a fake instead of
Twilio, through the SDK's own HTTP client hook."""

from __future__ import annotations

from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from aura_telephony.config import Settings

TWILIO_API = "https://api.twilio.com"
REST_TIMEOUT_SECONDS = 10.0
# What a request that never got an answer raises: Twilio may or may not have acted on it.
UNANSWERED = (TwilioException, aiohttp.ClientError, OSError, TimeoutError)


# The SDK's client is untyped for mypy (it builds on aiohttp-retry, which has no types).
class _Gateway(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The SDK's asynchronous HTTP client, sending what it addresses to Twilio's REST API
    to `base_url` instead (a gateway, or a fake in tests)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._base_url = base_url.rstrip("/")

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if self._base_url and url.startswith(TWILIO_API):
            url = self._base_url + url[len(TWILIO_API) :]
        return await super().request(method, url, *args, **kwargs)


class TwilioRest:
    """One SDK client per process, made on first use (inside the event loop it needs)."""

    def __init__(self, settings: Settings, timeout: float = REST_TIMEOUT_SECONDS) -> None:
        self._settings = settings
        self._timeout = timeout
        self._client: Client | None = None

    @property
    def configured(self) -> bool:
        return bool(self._settings.TWILIO_ACCOUNT_SID and self._settings.TWILIO_AUTH_TOKEN)

    def client(self) -> Client:
        if self._client is None:
            settings = self._settings
            self._client = Client(
                settings.TWILIO_ACCOUNT_SID,
                settings.TWILIO_AUTH_TOKEN,
                http_client=_Gateway(settings.TWILIO_API_BASE_URL, self._timeout),
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            http = self._client.http_client
            if isinstance(http, AsyncTwilioHttpClient):
                await http.close()
