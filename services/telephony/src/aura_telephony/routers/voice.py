"""Twilio voice webhooks: incoming call, speech or keypad result, status callback.

Whatever fails downstream, Twilio gets HTTP 200 with valid TwiML: a caller who hears an
apology can try again, a caller who hears Twilio's error message hangs up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from aura_telephony.calls import Calls, Placed
from aura_telephony.delivery import idempotency_key
from aura_telephony.forms import (
    GatherResult,
    RecordingStatusCallback,
    StatusCallback,
    VoiceWebhook,
)
from aura_telephony.macs import value_signed
from aura_telephony.recordings import STATUS_PATH
from aura_telephony.security import FORM_CONTENT_TYPE, public_base, relay_url, twilio_form

router = APIRouter(prefix="/api/voice", tags=["voice"])

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
FormT = TypeVar("FormT", bound=BaseModel)


def webhook_form(model: type[FormT]) -> Callable[[dict[str, str]], Awaitable[FormT]]:
    """A dependency giving the webhook's parameters as `model`: validated in one pydantic
    call from the form `twilio_form` parsed and checked. (FastAPI's `Form()` models read
    the form field by field in Python: 300 µs of CPU a webhook, against 118 µs this way.)
    An empty value counts as absent, as with `Form()`; an invalid form is a 422 as before."""

    async def parse(params: Params) -> FormT:
        try:
            return model.model_validate({k: v for k, v in params.items() if v})
        except ValidationError as error:
            raise RequestValidationError(error.errors(include_url=False)) from None

    return parse


def form_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route reading `model` with `webhook_form`."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {FORM_CONTENT_TYPE: {"schema": schema}}}}


async def get_calls(request: Request) -> Calls:
    calls: Calls = request.app.state.calls
    return calls


AppCalls = Annotated[Calls, Depends(get_calls)]


def placed(
    purpose: Annotated[
        str, Query(max_length=300, description="An outbound call's purpose (POST /api/calls)")
    ] = "",
    voicemail: Annotated[
        str, Query(max_length=500, description="An outbound call's voicemail message")
    ] = "",
) -> Placed | None:
    """An outbound call's purpose: set only in the answer URL of a call Aura placed (and
    carried through the recording notice's), which Twilio signs with its query."""
    return Placed(purpose, voicemail) if purpose else None


Outbound = Annotated[Placed | None, Depends(placed)]


def delivery_key(request: Request, params: dict[str, str]) -> str:
    # The query is part of what was delivered: ?reprompts=1 and ?reprompts=2 differ.
    target = f"{request.url.path}?{request.url.query}"
    return idempotency_key(target, request.headers.get("i-twilio-idempotency-token", ""), params)


def twiml_response(document: str) -> Response:
    return Response(content=document, media_type=TWIML_MEDIA_TYPE)


@router.post(
    "",
    response_class=Response,
    responses=RESPONSES,
    summary="Incoming call: welcome the caller",
    openapi_extra=form_body(VoiceWebhook),
)
async def incoming_call(
    request: Request,
    params: Params,
    form: Annotated[VoiceWebhook, Depends(webhook_form(VoiceWebhook))],
    calls: AppCalls,
    outbound: Outbound,
) -> Response:
    url = relay_url(request, calls.settings, form.CallSid)
    key = delivery_key(request, params)
    return twiml_response(await calls.incoming(form, key, url, outbound))


@router.post(
    "/consent",
    response_class=Response,
    responses=RESPONSES,
    summary="The recording notice was heard (or its key pressed): record, or not; greet",
    openapi_extra=form_body(GatherResult),
)
async def recording_consent(
    request: Request,
    params: Params,
    form: Annotated[GatherResult, Depends(webhook_form(GatherResult))],
    calls: AppCalls,
    outbound: Outbound,
) -> Response:
    url = relay_url(request, calls.settings, form.CallSid)
    callback = public_base(request, calls.settings).rstrip("/") + STATUS_PATH
    key = delivery_key(request, params)
    return twiml_response(await calls.consented(form, key, url, callback, outbound))


@router.post(
    "/recording",
    response_class=Response,
    responses=RESPONSES,
    summary="A call recording's status callback: its SID, status, duration and media URL",
    openapi_extra=form_body(RecordingStatusCallback),
)
async def recording_status(
    form: Annotated[RecordingStatusCallback, Depends(webhook_form(RecordingStatusCallback))],
    calls: AppCalls,
) -> Response:
    await calls.recordings.status(form)
    return twiml_response(calls.twiml.empty())


@router.post(
    "/process",
    response_class=Response,
    responses=RESPONSES,
    summary="Speech or keypad result: answer the caller",
    openapi_extra=form_body(GatherResult),
)
async def process_speech(
    request: Request,
    params: Params,
    form: Annotated[GatherResult, Depends(webhook_form(GatherResult))],
    calls: AppCalls,
    reprompts: Annotated[int, Query(ge=0, le=20, description="Silent turns so far")] = 0,
    lang: Annotated[
        str, Query(max_length=35, description="The call's language, when not the first")
    ] = "",
) -> Response:
    key = delivery_key(request, params)
    return twiml_response(await calls.gathered(form, reprompts, key, lang))


@router.post(
    "/status",
    response_class=Response,
    responses=RESPONSES,
    summary="Call status callback",
    openapi_extra=form_body(StatusCallback),
)
async def call_status(
    form: Annotated[StatusCallback, Depends(webhook_form(StatusCallback))], calls: AppCalls
) -> Response:
    return twiml_response(await calls.status(form))


TransferQuery = Annotated[str, Query(max_length=64, description="A number this deployment chose")]
CallQuery = Annotated[str, Query(max_length=64, description="The caller's CallSid")]
LangQuery = Annotated[str, Query(max_length=35, description="The call's language")]


@router.post(
    "/transfer",
    response_class=Response,
    responses=RESPONSES,
    summary="A warm transfer: write the summary for the person who answers, then dial",
    openapi_extra=form_body(VoiceWebhook),
)
async def warm_transfer(
    request: Request,
    params: Params,
    form: Annotated[VoiceWebhook, Depends(webhook_form(VoiceWebhook))],
    calls: AppCalls,
    to: TransferQuery,
    sig: Annotated[str, Query(max_length=64)],
    lang: LangQuery = "",
) -> Response:
    # The number is one this deployment put in the redirect, with its MAC: never a caller's.
    if not value_signed("transfer", to, sig, calls.settings):
        raise HTTPException(status_code=403, detail="a transfer this deployment did not issue")
    lang = calls.phrasebook.find(lang) or ""
    key = delivery_key(request, params)
    return twiml_response(await calls.transfers.brief_and_dial(form, key, to, lang))


@router.post(
    "/whisper",
    response_class=Response,
    responses=RESPONSES,
    summary="A warm transfer was answered: what the person who answered hears first",
    openapi_extra=form_body(VoiceWebhook),
)
async def whisper(
    request: Request,
    params: Params,
    form: Annotated[VoiceWebhook, Depends(webhook_form(VoiceWebhook))],
    calls: AppCalls,
    call: CallQuery,
    lang: LangQuery = "",
) -> Response:
    lang = calls.phrasebook.find(lang) or ""
    key = delivery_key(request, params)
    return twiml_response(await calls.transfers.whisper(form, key, call, lang))


@router.post(
    "/whisper/answer",
    response_class=Response,
    responses=RESPONSES,
    summary="The person who answered a warm transfer pressed 1 (or did not)",
    openapi_extra=form_body(GatherResult),
)
async def whisper_answer(
    request: Request,
    params: Params,
    form: Annotated[GatherResult, Depends(webhook_form(GatherResult))],
    calls: AppCalls,
    call: CallQuery,
    lang: LangQuery = "",
) -> Response:
    key = delivery_key(request, params)
    return twiml_response(await calls.transfers.answered(form, key, call))


@router.post(
    "/transfer/ended",
    response_class=Response,
    responses=RESPONSES,
    summary="A warm transfer's <Dial> ended: hang up, or back to the assistant",
    openapi_extra=form_body(VoiceWebhook),
)
async def transfer_ended(
    request: Request,
    params: Params,
    form: Annotated[VoiceWebhook, Depends(webhook_form(VoiceWebhook))],
    calls: AppCalls,
    call: CallQuery = "",
    lang: LangQuery = "",
) -> Response:
    lang = calls.phrasebook.find(lang) or ""
    url = relay_url(request, calls.settings, form.CallSid)
    key = delivery_key(request, params)
    return twiml_response(await calls.transfers.ended(form, key, url, lang))
