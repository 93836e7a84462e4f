"""Outbound calls: Aura rings someone, with the official `twilio` SDK.

The answer URL carries the call's purpose and voicemail message (Twilio signs the whole
URL when it calls back, so neither can be forged), and asks for answering-machine
detection that waits for the greeting to end (DetectMessageEnd): the answer webhook then
says whether a person or a machine picked up. The REST calls go through `twilio_rest`
(TWILIO_API_BASE_URL)."""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field
from twilio.base import values
from twilio.base.exceptions import TwilioRestException

from aura_common.logs import mask_phone
from aura_telephony.budget import TurnBudget
from aura_telephony.config import Settings
from aura_telephony.errors import DownstreamError, describe
from aura_telephony.memory_client import MemoryClient
from aura_telephony.twilio_rest import UNANSWERED, TwilioRest

log = logging.getLogger(__name__)

E164 = r"^\+[1-9][0-9]{6,14}$"


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


def allowed(settings: Settings, number: str) -> bool:
    return any(number.startswith(prefix) for prefix in settings.outbound_prefixes)


class Outbound:
    def __init__(self, settings: Settings, memory: MemoryClient, rest: TwilioRest) -> None:
        self._settings = settings
        self._memory = memory
        self._rest = rest

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

    async def place(self, call: OutboundCall, public_base: str) -> PlacedCall:
        """Ask Twilio to ring `call.to`; raises OutboundError with what to tell the client."""
        settings = self._settings
        if not self._rest.configured:
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
            created = await self._rest.client().calls.create_async(
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
        except UNANSWERED as error:
            log.error("outbound call to %s: Twilio unreachable: %s", mask_phone(call.to), error)
            raise OutboundError(502, "Twilio could not be reached") from error
        log.info("outbound call %s to %s placed", created.sid, mask_phone(call.to))
        return PlacedCall(call_sid=created.sid or "", to=call.to, status=str(created.status or ""))
