"""Twilio voice webhooks: incoming call, speech or keypad result, status callback.

Whatever fails downstream, Twilio gets HTTP 200 with valid TwiML: a caller who hears an
apology can try again, a caller who hears Twilio's error message hangs up."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request, Response

from aura_common.logs import mask_phone
from aura_telephony import metrics
from aura_telephony.budget import TurnBudget
from aura_telephony.forms import GatherResult, StatusCallback, VoiceWebhook
from aura_telephony.security import twilio_form
from aura_telephony.turns import DownstreamError, History, Reply, Turns, describe, idempotency_key

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/voice", tags=["voice"])

FINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
TWIML_MEDIA_TYPE = "application/xml"

_TWIML: dict[str, object] = {
    "content": {TWIML_MEDIA_TYPE: {"schema": {"type": "string"}}},
    "description": "TwiML",
}
_ERROR: dict[str, object] = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"detail": {}},
                "required": ["detail"],
            }
        }
    }
}
RESPONSES: dict[int | str, dict[str, object]] = {
    200: _TWIML,
    403: {**_ERROR, "description": "Missing or invalid X-Twilio-Signature"},
    413: {**_ERROR, "description": "Request body too large"},
    415: {**_ERROR, "description": "Not application/x-www-form-urlencoded"},
    422: {**_ERROR, "description": "Missing or invalid parameters (CallSid is required)"},
}

Params = Annotated[dict[str, str], Depends(twilio_form)]


def get_turns(request: Request) -> Turns:
    turns: Turns = request.app.state.turns
    return turns


AppTurns = Annotated[Turns, Depends(get_turns)]


def _delivery_key(request: Request, params: dict[str, str]) -> str:
    # The query is part of what was delivered: ?reprompts=1 and ?reprompts=2 differ.
    target = f"{request.url.path}?{request.url.query}"
    return idempotency_key(target, request.headers.get("i-twilio-idempotency-token", ""), params)


def _twiml(document: str) -> Response:
    return Response(content=document, media_type=TWIML_MEDIA_TYPE)


@router.post(
    "",
    response_class=Response,
    responses=RESPONSES,
    summary="Incoming call: welcome the caller",
)
async def incoming_call(
    request: Request, params: Params, form: Annotated[VoiceWebhook, Form()], turns: AppTurns
) -> Response:
    log.info("call %s from %s", form.CallSid, mask_phone(form.From or ""))
    key = _delivery_key(request, params)

    async def welcome(budget: TurnBudget, history: History) -> Reply:
        return await turns.welcome(form.CallSid, params, budget, history)

    with metrics.TURN_SECONDS.labels("welcome").time():
        return _twiml(await turns.once(form.CallSid, key, welcome))


@router.post(
    "/process",
    response_class=Response,
    responses=RESPONSES,
    summary="Speech or keypad result: answer the caller",
)
async def process_speech(
    request: Request,
    params: Params,
    form: Annotated[GatherResult, Form()],
    turns: AppTurns,
    reprompts: Annotated[int, Query(ge=0, le=20, description="Silent turns so far")] = 0,
) -> Response:
    key = _delivery_key(request, params)

    async def answer(budget: TurnBudget, history: History) -> Reply:
        return await turns.respond(form.CallSid, params, reprompts, budget, history)

    with metrics.TURN_SECONDS.labels("speech").time():
        return _twiml(await turns.once(form.CallSid, key, answer))


@router.post(
    "/status",
    response_class=Response,
    responses=RESPONSES,
    summary="Call status callback",
)
async def call_status(
    form: Annotated[StatusCallback, Form()], params: Params, turns: AppTurns
) -> Response:
    status = (form.CallStatus or "").strip().lower()
    log.info("call %s status %s", form.CallSid, status or "(none)")
    if status in FINAL_CALL_STATUSES:
        budget = TurnBudget(turns.settings.MEMORY_TIMEOUT_SECONDS)
        try:
            # Counted once per call: a retried callback finds the call already ended.
            if await turns.backends.end_call(form.CallSid, status, budget):
                metrics.CALLS_ENDED.labels(status).inc()
                metrics.ACTIVE_CALLS.dec()
        except DownstreamError as error:
            # The memory service's TTL forgets the call even if this clear is lost.
            log.error(
                "call %s: could not clear the conversation: %s", form.CallSid, describe(error)
            )
    return _twiml(turns.twiml.empty())
