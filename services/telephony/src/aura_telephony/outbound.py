"""Outbound calls: Aura rings someone, with the official `twilio` SDK.

The answer URL carries the call's purpose and voicemail message (Twilio signs the whole
URL when it calls back, so neither can be forged), and asks for answering-machine
detection that waits for the greeting to end (DetectMessageEnd): the answer webhook then
says whether a person or a machine picked up. TWILIO_API_BASE_URL sends the REST calls to
a gateway or a fake instead of Twilio, through the SDK's own HTTP client hook."""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import urlencode

import aiohttp
from pydantic import BaseModel, ConfigDict, Field
from twilio.base import values
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from aura_common.logs import mask_phone
from aura_telephony.budget import TurnBudget
from aura_telephony.config import Settings
from aura_telephony.errors import DownstreamError, describe
from aura_telephony.memory_client import MemoryClient

log = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com"
E164 = r"^\+[1-9][0-9]{6,14}$"
_REST_TIMEOUT_SECONDS = 10.0


class OutboundCall(BaseModel):
    """POST /api/calls: whom to call, and what about."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    to: Annotated[str, Field(pattern=E164, description="The number to call, E.164")]
    from_: Annotated[
        str | None,
        Field(alias="from", pattern=E164, description="Caller ID; TWILIO_PHONE_NUMBER if absent"),
    ] = None
    purpose: Annotated[
        str,
        Field(
            min_length=1,
            max_length=300,
            description="What the call is about: said in the greeting, and given to the model",
        ),
    ]
    voicemail_message: Annotated[
        str, Field(max_length=500, description="Left after the beep when a machine answers")
    ] = ""
    machine_detection: Annotated[
        bool | None,
        Field(description="Detect answering machines; default: on with a voicemail_message"),
    ] = None


class PlacedCall(BaseModel):
    call_sid: str
    to: str
    status: str


class OutboundError(Exception):
    """The call is not placed: a rule refused it, or Twilio did, or Twilio could not be
    reached; `status` is our HTTP answer, `retry_after` seconds when trying later helps."""

    def __init__(
        self,
        status: int,
        detail: str,
        twilio_code: int | None = None,
        retry_after: int | None = None,
        rule: bool = False,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.twilio_code = twilio_code
        self.retry_after = retry_after
        self.rule = rule  # refused by the operator's rules, before Twilio was asked


# The SDK's client is untyped for mypy (it builds on aiohttp-retry, which has no types).
class _Gateway(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The SDK's asynchronous HTTP client, sending what it addresses to Twilio's REST API
    to `base_url` instead (a gateway, or a fake in tests)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=_REST_TIMEOUT_SECONDS)
        self._base_url = base_url.rstrip("/")

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if self._base_url and url.startswith(TWILIO_API):
            url = self._base_url + url[len(TWILIO_API) :]
        return await super().request(method, url, *args, **kwargs)


def allowed(settings: Settings, number: str) -> bool:
    return any(number.startswith(prefix) for prefix in settings.outbound_prefixes)


class Outbound:
    def __init__(self, settings: Settings, memory: MemoryClient) -> None:
        self._settings = settings
        self._memory = memory
        self._client: Client | None = None

    async def request(self, call: OutboundCall) -> PlacedCall:
        """Place `call` if the operator's rules allow it: outbound calls on, the number in
        OUTBOUND_ALLOWED_PREFIXES, a public URL for Twilio to call back, and fewer than
        MAX_OUTBOUND_CALLS_PER_MINUTE placed by all replicas in the last minute."""
        settings = self._settings
        if not settings.outbound_prefixes:
            raise OutboundError(
                403, "outbound calls are off: set OUTBOUND_ALLOWED_PREFIXES", rule=True
            )
        if not allowed(settings, call.to):
            log.warning("outbound call to %s refused: not an allowed prefix", mask_phone(call.to))
            raise OutboundError(403, "this number is not in OUTBOUND_ALLOWED_PREFIXES", rule=True)
        if not settings.PUBLIC_BASE_URL:
            raise OutboundError(
                503, "outbound calls need PUBLIC_BASE_URL, for Twilio to call back", rule=True
            )
        try:
            budget = TurnBudget(settings.MEMORY_TIMEOUT_SECONDS)
            placed = await self._memory.count("outbound-calls", 60, budget)
        except DownstreamError as error:
            log.error("outbound call not placed: cannot count calls: %s", describe(error))
            raise OutboundError(503, "memory service unavailable", rule=True) from error
        if placed > settings.MAX_OUTBOUND_CALLS_PER_MINUTE:
            raise OutboundError(
                429, "MAX_OUTBOUND_CALLS_PER_MINUTE reached", retry_after=60, rule=True
            )
        return await self.place(call, settings.PUBLIC_BASE_URL.rstrip("/"))

    def _twilio(self) -> Client:
        if self._client is None:  # made on first use, inside the event loop it needs
            settings = self._settings
            self._client = Client(
                settings.TWILIO_ACCOUNT_SID,
                settings.TWILIO_AUTH_TOKEN,
                http_client=_Gateway(settings.TWILIO_API_BASE_URL),
            )
        return self._client

    async def place(self, call: OutboundCall, public_base: str) -> PlacedCall:
        """Ask Twilio to ring `call.to`; raises OutboundError with what to tell the client."""
        settings = self._settings
        if not settings.TWILIO_ACCOUNT_SID or not settings.TWILIO_AUTH_TOKEN:
            raise OutboundError(503, "outbound calls need TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
        caller_id = call.from_ or settings.TWILIO_PHONE_NUMBER
        if not caller_id:
            raise OutboundError(422, "give `from` or set TWILIO_PHONE_NUMBER")
        detect = call.machine_detection
        if detect is None:
            detect = bool(call.voicemail_message)
        query = {"purpose": call.purpose}
        if call.voicemail_message:
            query["voicemail"] = call.voicemail_message
        try:
            created = await self._twilio().calls.create_async(
                to=call.to,
                from_=caller_id,
                url=f"{public_base}/api/voice?{urlencode(query)}",
                method="POST",
                status_callback=f"{public_base}/api/voice/status",
                status_callback_method="POST",
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                machine_detection="DetectMessageEnd" if detect else values.unset,
            )
        except TwilioRestException as error:
            log.warning(
                "outbound call to %s refused by Twilio: %s %s",
                mask_phone(call.to),
                error.code,
                error.msg,
            )
            # A bad number or caller ID is the client's to fix; our credentials are not.
            status = 422 if error.status in (400, 404) else 502
            raise OutboundError(status, f"Twilio: {error.msg}", error.code) from error
        except (TwilioException, aiohttp.ClientError, OSError) as error:
            log.error("outbound call to %s: Twilio unreachable: %s", mask_phone(call.to), error)
            raise OutboundError(502, "Twilio could not be reached") from error
        log.info("outbound call %s to %s placed", created.sid, mask_phone(call.to))
        return PlacedCall(call_sid=created.sid or "", to=call.to, status=str(created.status or ""))

    async def close(self) -> None:
        if self._client is not None:
            http = self._client.http_client
            if isinstance(http, AsyncTwilioHttpClient):
                await http.close()
