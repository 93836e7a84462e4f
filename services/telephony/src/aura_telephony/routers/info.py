"""Service information and liveness."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from aura_common.settings import package_version

router = APIRouter(tags=["info"])

SERVICE = "aura-telephony"


async def _version() -> str:
    return package_version(SERVICE)


class Health(BaseModel):
    status: str
    service: str
    version: str


class ServiceInfo(BaseModel):
    service: str
    version: str
    description: str
    endpoints: dict[str, str]


@router.get("/health", summary="Liveness")
async def health(version: Annotated[str, Depends(_version)]) -> Health:
    return Health(status="healthy", service=SERVICE, version=version)


@router.get(
    "/ready",
    summary="Readiness: 503 while draining (stopping), so no new call is routed here",
    responses={503: {"description": "Draining"}},
)
async def ready(request: Request, version: Annotated[str, Depends(_version)]) -> Health:
    if request.app.state.relay.draining:
        raise HTTPException(status_code=503, detail="draining")
    return Health(status="healthy", service=SERVICE, version=version)


@router.get("/", summary="Service information and the endpoint map")
async def root(version: Annotated[str, Depends(_version)]) -> ServiceInfo:
    return ServiceInfo(
        service=SERVICE,
        version=version,
        description="Aura voice AI phone assistant: Twilio voice webhooks",
        endpoints={
            "incoming_call": "POST /api/voice",
            "process_speech": "POST /api/voice/process",
            "call_status": "POST /api/voice/status",
            "relay": "WebSocket /api/voice/relay/{ticket}",
            "relay_ended": "POST /api/voice/relay/ended",
            "health": "GET /health",
        },
    )
