"""Twilio voice webhooks: incoming call, speech result, status callback.

Whatever fails downstream, Twilio gets HTTP 200 with valid TwiML: a caller who hears an
apology can try again, a caller who hears Twilio's error message hangs up."""

from __future__ import annotations

import logging
from typing import Annotated

import grpc
from fastapi import APIRouter, Depends, HTTPException, Request, Response

from aura_common.logs import mask_phone
from aura_telephony import twiml
from aura_telephony.backends import Backends
from aura_telephony.budget import BudgetExhaustedError, TurnBudget
from aura_telephony.config import Settings
from aura_telephony.conversation import is_goodbye
from aura_telephony.security import get_settings, twilio_form

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/voice", tags=["voice"])

FINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
TWIML_MEDIA_TYPE = "application/xml"

Form = Annotated[dict[str, str], Depends(twilio_form)]
AppSettings = Annotated[Settings, Depends(get_settings)]


def get_backends(request: Request) -> Backends:
    backends: Backends = request.app.state.backends
    return backends


def get_twiml(request: Request) -> twiml.Twiml:
    builder: twiml.Twiml = request.app.state.twiml
    return builder


AppBackends = Annotated[Backends, Depends(get_backends)]
AppTwiml = Annotated[twiml.Twiml, Depends(get_twiml)]


def _twiml(document: str) -> Response:
    return Response(content=document, media_type=TWIML_MEDIA_TYPE)


def _call_sid(form: dict[str, str]) -> str:
    call_sid = form.get("CallSid", "").strip()
    if not call_sid:
        raise HTTPException(status_code=400, detail="CallSid is required")
    return call_sid


@router.post("", response_class=Response, summary="Incoming call: welcome the caller")
async def incoming_call(
    form: Form, settings: AppSettings, backends: AppBackends, builder: AppTwiml
) -> Response:
    call_sid = _call_sid(form)
    log.info("call %s from %s", call_sid, mask_phone(form.get("From", "")))
    welcome = settings.welcome_message
    budget = TurnBudget(settings.MEMORY_TIMEOUT_SECONDS)
    try:
        # The model sees its own greeting; a retried webhook must not store it twice.
        await backends.append(call_sid, [("assistant", welcome)], budget, f"{call_sid}:welcome")
    except (grpc.aio.AioRpcError, BudgetExhaustedError) as exc:
        log.error("call %s: could not store the welcome: %s", call_sid, _describe(exc))
    return _twiml(builder.ask(welcome))


@router.post("/process", response_class=Response, summary="Speech result: answer the caller")
async def process_speech(
    request: Request,
    form: Form,
    settings: AppSettings,
    backends: AppBackends,
    builder: AppTwiml,
) -> Response:
    call_sid = _call_sid(form)
    speech = form.get("SpeechResult", "").strip()
    if not speech:
        return _twiml(builder.ask(twiml.DIDNT_CATCH))
    idempotency_key = request.headers.get("i-twilio-idempotency-token", "")
    budget = TurnBudget(settings.TURN_BUDGET_SECONDS)

    if is_goodbye(speech):
        try:
            await backends.append(
                call_sid, [("user", speech), ("assistant", twiml.FAREWELL)], budget, idempotency_key
            )
        except (grpc.aio.AioRpcError, BudgetExhaustedError) as exc:
            log.error("call %s: could not store the goodbye: %s", call_sid, _describe(exc))
        return _twiml(builder.hang_up(twiml.FAREWELL))

    try:
        history = await backends.history(call_sid, budget)
        answer = await backends.generate(call_sid, history, speech, budget)
    except (grpc.aio.AioRpcError, BudgetExhaustedError) as exc:
        log.error("call %s: no answer this turn: %s", call_sid, _describe(exc))
        return _twiml(builder.ask(twiml.APOLOGY))

    try:
        await backends.append(
            call_sid, [("user", speech), ("assistant", answer.text)], budget, idempotency_key
        )
    except (grpc.aio.AioRpcError, BudgetExhaustedError) as exc:
        # The answer is ready: speaking it beats an apology, even if the turn is not stored.
        log.error("call %s: could not store the turn: %s", call_sid, _describe(exc))
    log.debug("call %s answered by %s/%s", call_sid, answer.provider, answer.model)
    return _twiml(builder.ask(answer.text))


@router.post("/status", response_class=Response, summary="Call status callback")
async def call_status(
    form: Form, settings: AppSettings, backends: AppBackends, builder: AppTwiml
) -> Response:
    call_sid = _call_sid(form)
    status = form.get("CallStatus", "").strip().lower()
    log.info("call %s status %s", call_sid, status or "(none)")
    if status in FINAL_CALL_STATUSES:
        try:
            await backends.clear(call_sid, TurnBudget(settings.MEMORY_TIMEOUT_SECONDS))
        except (grpc.aio.AioRpcError, BudgetExhaustedError) as exc:
            # The memory service's TTL forgets the call even if this clear is lost.
            log.error("call %s: could not clear the conversation: %s", call_sid, _describe(exc))
    return _twiml(builder.empty())


def _describe(exc: Exception) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return "turn budget exhausted"
