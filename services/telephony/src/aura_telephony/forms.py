"""The form parameters Twilio posts to each webhook, as documented models: they give the
OpenAPI document its request bodies and reject a request without a CallSid. Every field
but CallSid is optional text, and parameters not listed are accepted and ignored, since
Twilio adds new ones over time."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field


class VoiceWebhook(BaseModel):
    model_config = ConfigDict(extra="allow")

    CallSid: str = Field(min_length=1, max_length=64, description="Twilio's id of the call")
    AccountSid: str | None = None
    From: str | None = None
    To: str | None = None
    CallStatus: str | None = None
    ApiVersion: str | None = None
    Direction: str | None = None
    ForwardedFrom: str | None = None
    CallerName: str | None = None
    ParentCallSid: str | None = None
    CallToken: str | None = None
    Caller: str | None = None
    CallerCity: str | None = None
    CallerState: str | None = None
    CallerZip: str | None = None
    CallerCountry: str | None = None
    Called: str | None = None
    CalledCity: str | None = None
    CalledState: str | None = None
    CalledZip: str | None = None
    CalledCountry: str | None = None
    FromCity: str | None = None
    FromState: str | None = None
    FromZip: str | None = None
    FromCountry: str | None = None
    ToCity: str | None = None
    ToState: str | None = None
    ToZip: str | None = None
    ToCountry: str | None = None
    AnsweredBy: str | None = Field(
        default=None,
        description="Outbound calls with machine detection: human, machine_end_beep, fax, ...",
    )


class GatherResult(VoiceWebhook):
    SpeechResult: str | None = Field(default=None, description="What the caller said")
    Confidence: str | None = Field(default=None, description="Transcription confidence, 0 to 1")
    Digits: str | None = Field(default=None, description="Keys the caller pressed")


class StatusCallback(VoiceWebhook):
    CallDuration: str | None = None
    Timestamp: str | None = None
    CallbackSource: str | None = None
    SequenceNumber: str | None = None
    Duration: str | None = None


class StreamEnded(VoiceWebhook):
    """What Twilio posts to <Connect action> when a realtime Media Stream ends; what comes
    next is in the handoff the stream kept in memory."""


class RelayEnded(VoiceWebhook):
    """What Twilio posts to <Connect action> when a ConversationRelay session ends."""

    SessionId: str | None = None
    SessionStatus: str | None = Field(default=None, description="completed, ended or failed")
    SessionDuration: str | None = None
    HandoffData: str | None = Field(default=None, description="The end message's handoffData")
    ErrorCode: str | None = None
    ErrorMessage: str | None = None

    def handoff(self, field: str) -> str:
        """A field Aura gave in `end` ({"reason": ..., "number": ...}), or ""."""
        try:
            data = json.loads(self.HandoffData or "")
        except ValueError:
            return ""
        value = data.get(field) if isinstance(data, dict) else None
        return value if isinstance(value, str) else ""


class RecordingStatusCallback(VoiceWebhook):
    """What Twilio posts to a recording's status callback (CALL_RECORDING=on)."""

    RecordingSid: str = Field(min_length=1, max_length=64, description="The recording's id")
    RecordingStatus: str | None = Field(
        default=None, description="in-progress, completed, absent or failed"
    )
    RecordingUrl: str | None = Field(default=None, description="Where Twilio keeps the media")
    RecordingDuration: str | None = Field(default=None, description="Seconds recorded")
    RecordingChannels: str | None = None
    RecordingStartTime: str | None = None
    RecordingSource: str | None = None
    RecordingTrack: str | None = None
    ErrorCode: str | None = None
