"""Admin API: outbound calls and call transcripts, behind a bearer token
(ADMIN_API_TOKEN). With no token configured the routes do not exist (404), so nothing is
ever served unauthenticated."""

from __future__ import annotations

import hmac
import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field

from aura_telephony.calls import Calls
from aura_telephony.errors import DownstreamError, describe
from aura_telephony.outbound import Outbound, OutboundCall, OutboundError, PlacedCall
from aura_telephony.post_call import outcome
from aura_telephony.records import (
    languages_json,
    messages_json,
    recording_json,
    tool_calls_json,
    turns_json,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/calls", tags=["admin"])


class TranscriptTurn(BaseModel):
    role: Literal["user", "assistant"]
    text: str
    at: datetime | None
    interrupted: bool = False  # an answer the caller cut short: only what they heard
    # The knowledge passages the answer was given ("<file>#<heading or entry>").
    passage_ids: list[str] = []
    ungrounded: bool = False  # the answer stated a fact none of its sources held
    language: str | None = None  # a BCP-47 tag; None: the deployment's first language


class CallerMessage(BaseModel):
    caller_name: str
    callback_number: str
    text: str
    at: datetime | None


class ToolCall(BaseModel):
    tool: str
    outcome: str  # ok, error, timeout, invalid_arguments or skipped
    arguments: dict[str, Any] = {}  # what the model called it with
    at: datetime | None


class CallRecording(BaseModel):
    """The call's recording (CALL_RECORDING=on): Twilio keeps the audio, Aura its id."""

    sid: str | None  # Twilio's RE...; None when it never started
    status: str  # in-progress, completed, absent, failed, or declined (refused first)
    duration_seconds: int | None
    url: str | None  # the media on Twilio's API (fetched with the account's credentials)
    channels: int | None
    refused_by: Literal["words", "keypad"] | None  # the caller said no to it
    refused_at: datetime | None


class CallTranscript(BaseModel):
    call_sid: str
    caller: str
    callee: str
    started_at: datetime | None
    ended_at: datetime | None
    status: str
    direction: str  # inbound or outbound
    purpose: str  # what an outbound call was about
    turns: list[TranscriptTurn]
    messages: list[CallerMessage]  # left with take_message
    tool_calls: list[ToolCall] = []
    languages: list[str] = []  # the languages the call used, first to last
    recording: CallRecording | None = None
    # answered, transferred, voicemail, refused or abandoned, as the post-call record says
    outcome: str = ""
    # The department a transfer was for ("" when the deployment's own number), or None.
    transferred_to: str | None = None


async def require_admin(request: Request) -> None:
    token: str = request.app.state.settings.ADMIN_API_TOKEN
    if not token:
        raise HTTPException(status_code=404, detail="Not Found")
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.encode(), token.encode()):
        raise HTTPException(
            status_code=401,
            detail="a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


@router.get(
    "/{call_sid}/transcript",
    dependencies=[Depends(require_admin)],
    responses={
        401: {"description": "Missing or wrong token"},
        404: {"description": "Unknown"},
        503: {"description": "Memory service unavailable"},
    },
    summary="A call's full transcript (requires ADMIN_API_TOKEN)",
)
async def transcript(
    request: Request, call_sid: Annotated[str, Path(min_length=1, max_length=64)]
) -> CallTranscript:
    calls: Calls = request.app.state.calls
    try:
        found = await calls.transcript(call_sid)
    except DownstreamError as error:
        log.error("transcript of %s unavailable: %s", call_sid, describe(error))
        raise HTTPException(status_code=503, detail="memory service unavailable") from error
    if found is None:
        raise HTTPException(status_code=404, detail="no transcript for this call")
    recorded = recording_json(found)
    return CallTranscript(
        call_sid=found.call_sid,
        caller=found.caller,
        callee=found.callee,
        started_at=found.started_at,
        ended_at=found.ended_at,
        status=found.status,
        direction=found.direction,
        purpose=found.purpose,
        # The same JSON as the post-call webhook's, read into the API's documented models.
        turns=[TranscriptTurn.model_validate(t) for t in turns_json(found)],
        messages=[CallerMessage.model_validate(m) for m in messages_json(found)],
        tool_calls=[ToolCall.model_validate(c) for c in tool_calls_json(found)],
        languages=languages_json(found, calls.settings.languages[0]),
        recording=CallRecording.model_validate(recorded) if recorded else None,
        outcome=outcome(found),
        transferred_to=next(
            (e.detail for e in reversed(found.events) if e.kind == "transferred"), None
        ),
    )


class JudgeRequest(BaseModel):
    criteria: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        min_length=1, max_length=20, description="Plain sentences the call must satisfy"
    )


class JudgeVerdict(BaseModel):
    criterion: str
    verdict: Literal["pass", "fail", "skipped"]  # skipped: no model could judge it
    reason: str


class Judged(BaseModel):
    verdicts: list[JudgeVerdict]
    provider: str  # the provider that judged; "" when none could


# A judge reads a whole call: more time than a turn, less than Twilio never waits on.
JUDGE_SECONDS = 60.0


@router.post(
    "/{call_sid}/judge",
    dependencies=[Depends(require_admin)],
    responses={
        401: {"description": "Missing or wrong token"},
        404: {"description": "Unknown"},
        503: {"description": "Memory or llm service unavailable"},
    },
    summary="Score a call against criteria in plain words, with the llm service's "
    "provider (aura-eval's judge; requires ADMIN_API_TOKEN)",
)
async def judge_call(
    request: Request,
    call_sid: Annotated[str, Path(min_length=1, max_length=64)],
    body: JudgeRequest,
) -> Judged:
    calls: Calls = request.app.state.calls
    try:
        found = await calls.transcript(call_sid)
        if found is None:
            raise HTTPException(status_code=404, detail="no transcript for this call")
        verdicts, provider = await calls.backends.llm.judge(
            call_sid, found.turns, body.criteria, JUDGE_SECONDS
        )
    except DownstreamError as error:
        log.error("call %s not judged: %s", call_sid, describe(error))
        raise HTTPException(status_code=503, detail="memory or llm service unavailable") from error
    return Judged(
        verdicts=[
            JudgeVerdict.model_validate({"criterion": c, "verdict": v, "reason": r})
            for c, v, r in verdicts
        ],
        provider=provider,
    )


@router.post(
    "",
    status_code=201,
    dependencies=[Depends(require_admin)],
    responses={
        400: {"description": "The body is not JSON"},
        401: {"description": "Missing or wrong token"},
        403: {"description": "Outbound calls are off, or the number is not allowed"},
        404: {"description": "No admin API: ADMIN_API_TOKEN is not set"},
        422: {"description": "A bad number or caller ID (Twilio's code in twilio_code)"},
        429: {"description": "MAX_OUTBOUND_CALLS_PER_MINUTE reached"},
        502: {"description": "Twilio refused our credentials, or could not be reached"},
        503: {"description": "Not configured for outbound calls, or memory unavailable"},
    },
    summary="Place an outbound call (requires ADMIN_API_TOKEN)",
)
async def place_call(request: Request, call: OutboundCall) -> PlacedCall:
    outbound: Outbound = request.app.state.outbound
    try:
        return await outbound.request(call)
    except OutboundError as error:
        detail: dict[str, object] | str = error.detail
        if not error.rule:  # Twilio's answer, with its code when it gave one
            detail = {"message": error.detail}
            if error.twilio_code is not None:
                detail["twilio_code"] = error.twilio_code
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
        raise HTTPException(error.status, detail, headers=headers) from error
