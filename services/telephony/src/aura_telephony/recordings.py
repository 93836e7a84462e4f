"""Call recording with consent (CALL_RECORDING=on), the same in every voice mode.

The caller first hears the notice (RECORDING_NOTICE, with the key that refuses); the
notice's webhook then starts the recording through Twilio's REST API, both channels, with
a signed status callback (/api/voice/recording). A transfer's <Dial> is part of the call,
so the recording goes on through it. A caller who says they do not want it, or presses
the key, stops it for the rest of the call; a refusal before it started means it never
starts. Aura keeps no audio: the recording's SID, status, duration and media URL (Twilio's)
go with the transcript and the post-call record.

Never two recordings: one start per call is claimed in the memory service (every replica
and every retried webhook sees it), and a REST request whose answer was lost is followed
by a look at the call's recordings, adopting one Twilio started, before any new attempt."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from twilio.base.exceptions import TwilioRestException

from aura_telephony import metrics
from aura_telephony.backends import Backends
from aura_telephony.budget import TurnBudget
from aura_telephony.config import Settings
from aura_telephony.errors import DownstreamError, describe
from aura_telephony.forms import RecordingStatusCallback
from aura_telephony.model import CallEvent, Transcript
from aura_telephony.twilio_rest import TWILIO_API, UNANSWERED, TwilioRest

log = logging.getLogger(__name__)

RECORDING_EVENT = "recording"
REFUSED_EVENT = "recording_refused"
STATUS_PATH = "/api/voice/recording"
STATUS_EVENTS = ["in-progress", "completed", "absent"]
FINAL_STATUSES = frozenset({"completed", "absent", "failed"})
# The claim that makes one start per call; its result is the SID, "refused" or "failed".
_START_KEY = "recording-start"
_REFUSED = "refused"
_FAILED = "failed"
_ATTEMPTS = 3
_ATTEMPT_SECONDS = 2.0
# The recordings Twilio may still be writing: one of these is the call's, adopted.
_LIVE = frozenset({"in-progress", "paused", "processing"})


@dataclass(frozen=True, slots=True)
class Recording:
    """What Aura keeps of a recording: Twilio's id and media URL, never the audio."""

    sid: str
    status: str
    duration_seconds: int | None = None
    url: str = ""
    channels: int | None = None

    def event(self) -> CallEvent:
        return CallEvent(RECORDING_EVENT, json.dumps(asdict(self), separators=(",", ":")))

    @classmethod
    def parse(cls, detail: str) -> Recording | None:
        try:
            data = json.loads(detail)
            return cls(**data) if isinstance(data, dict) else None
        except (ValueError, TypeError):
            return None


def _rank(status: str) -> int:
    return 2 if status in FINAL_STATUSES else 1


def recording_of(record: Transcript | None) -> Recording | None:
    """The call's recording from its events, which may arrive in any order (Twilio's
    callbacks and the start's own note): the furthest status, each field's latest value."""
    found: Recording | None = None
    for event in record.events if record else ():
        seen = Recording.parse(event.detail) if event.kind == RECORDING_EVENT else None
        if seen is None:
            continue
        if found is None or (found.sid != seen.sid and not found.sid):
            found = seen
            continue
        if found.sid != seen.sid:
            continue  # a second recording cannot be: the first is the call's
        found = Recording(
            found.sid,
            seen.status if _rank(seen.status) >= _rank(found.status) else found.status,
            seen.duration_seconds if seen.duration_seconds is not None else found.duration_seconds,
            seen.url or found.url,
            seen.channels or found.channels,
        )
    return found


def pending(record: Transcript | None) -> bool:
    """A recording was started and Twilio has not yet said it is done."""
    found = recording_of(record)
    return found is not None and bool(found.sid) and found.status not in FINAL_STATUSES


class RecordingError(Exception):
    """Twilio refused the request, or never answered it."""


def _number(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class Recordings:
    def __init__(
        self,
        settings: Settings,
        backends: Backends,
        rest: TwilioRest,
        note: Callable[[str, list[CallEvent]], Awaitable[None]],
    ) -> None:
        self._settings = settings
        self._memory = backends.memory
        self._rest = rest
        self._note = note

    @property
    def on(self) -> bool:
        return self._settings.CALL_RECORDING == "on"

    def media_url(self, sid: str) -> str:
        """Where Twilio keeps a recording's media (its callback gives the same)."""
        account = self._settings.TWILIO_ACCOUNT_SID
        return f"{TWILIO_API}/2010-04-01/Accounts/{account}/Recordings/{sid}"

    async def start(self, call_sid: str, callback_url: str) -> Recording | None:
        """Start the call's recording once (a refusal or an earlier start wins); None
        when it was not started here. A failure is logged and noted: the call goes on."""
        if not self.on:
            return None
        budget = TurnBudget(self._settings.MEMORY_TIMEOUT_SECONDS)
        try:
            claim = await self._memory.claim(call_sid, _START_KEY, budget)
        except DownstreamError as error:
            # Unrecorded rather than possibly twice: the caller was told it may be.
            log.error("call %s: recording not started: %s", call_sid, describe(error))
            await self._failed(call_sid)
            return None
        if claim.state != "claimed":
            return None  # started, refused or being started by another delivery
        try:
            recording, how = await self._create(call_sid, callback_url)
        except RecordingError as error:
            log.error("call %s: recording not started: %s", call_sid, error)
            await self._failed(call_sid)
            await self._settle(call_sid, _FAILED)
            return None
        metrics.RECORDINGS.labels(how).inc()
        log.info("call %s: recording %s %s", call_sid, recording.sid, how)
        await self._settle(call_sid, recording.sid)
        await self._note(call_sid, [recording.event()])
        return recording

    async def _create(self, call_sid: str, callback_url: str) -> tuple[Recording, str]:
        recordings = self._rest.client().calls(call_sid).recordings
        problem = "Twilio was not asked"
        for _ in range(_ATTEMPTS):
            try:
                async with asyncio.timeout(_ATTEMPT_SECONDS):
                    created = await recordings.create_async(
                        recording_channels="dual",
                        recording_status_callback=callback_url,
                        recording_status_callback_method="POST",
                        recording_status_callback_event=STATUS_EVENTS,
                    )
                return self._recording(created), "started"
            except TwilioRestException as error:
                if error.status < 500:
                    raise RecordingError(f"Twilio refused: {error.code} {error.msg}") from error
                problem = f"Twilio answered {error.status}"
            except UNANSWERED as error:
                problem = f"no answer from Twilio ({type(error).__name__})"
            # Twilio may have started it before its answer was lost: adopt that one.
            try:
                async with asyncio.timeout(_ATTEMPT_SECONDS):
                    listed = await recordings.list_async(limit=20)
            except (TwilioRestException, *UNANSWERED):
                continue
            live = [r for r in listed if (r.status or "") in _LIVE]
            if live:
                return self._recording(live[0]), "adopted"
        raise RecordingError(problem)

    def _recording(self, resource: Any) -> Recording:
        sid = str(resource.sid or "")
        return Recording(
            sid,
            str(resource.status or "in-progress"),
            url=self.media_url(sid),
            channels=_number(resource.channels),
        )

    async def refuse(self, call_sid: str, by: str) -> None:
        """The caller does not want to be recorded (`by`: words or keypad): noted with
        the call, and the recording stopped for the rest of it, or never started."""
        if not self.on:
            return
        await self._note(call_sid, [CallEvent(REFUSED_EVENT, by)])
        budget = TurnBudget(self._settings.MEMORY_TIMEOUT_SECONDS)
        sid = "Twilio.CURRENT"  # the call's recording, whatever its SID
        try:
            claim = await self._memory.claim(call_sid, _START_KEY, budget)
            if claim.state == "claimed":
                await self._settle(call_sid, _REFUSED)  # never started, and never will be
                metrics.RECORDINGS.labels("declined").inc()
                return
            if claim.state == "completed":
                if claim.result in (_REFUSED, _FAILED):
                    return
                sid = claim.result
        except DownstreamError as error:
            log.warning(
                "call %s: recording state unknown (%s): stopping", call_sid, describe(error)
            )
        await self._stop(call_sid, sid)

    async def _stop(self, call_sid: str, sid: str) -> None:
        recording = self._rest.client().calls(call_sid).recordings(sid)
        for _ in range(_ATTEMPTS):
            try:
                async with asyncio.timeout(_ATTEMPT_SECONDS):
                    await recording.update_async(status="stopped")
            except TwilioRestException as error:
                if error.status >= 500:
                    continue
                # Already stopped or over (Twilio answers 404 or 21220): nothing records.
                log.info("call %s: recording already stopped (%s)", call_sid, error.code)
                return
            except UNANSWERED:
                continue  # stopping twice is harmless: try again
            metrics.RECORDINGS.labels("stopped").inc()
            log.info("call %s: recording %s stopped at the caller's request", call_sid, sid)
            return
        log.error("call %s: the recording could not be stopped", call_sid)
        metrics.RECORDINGS.labels("failed").inc()

    async def status(self, form: RecordingStatusCallback) -> None:
        """Twilio's word on a recording: kept with the call (the latest status wins)."""
        status = (form.RecordingStatus or "").strip().lower() or "in-progress"
        recording = Recording(
            form.RecordingSid,
            status,
            _number(form.RecordingDuration),
            form.RecordingUrl or self.media_url(form.RecordingSid),
            _number(form.RecordingChannels),
        )
        if status in FINAL_STATUSES:
            metrics.RECORDINGS.labels("completed" if status == "completed" else "failed").inc()
        log.info("call %s: recording %s %s", form.CallSid, form.RecordingSid, status)
        await self._note(form.CallSid, [recording.event()])

    async def _failed(self, call_sid: str) -> None:
        metrics.RECORDINGS.labels("failed").inc()
        await self._note(call_sid, [Recording("", _FAILED).event()])

    async def _settle(self, call_sid: str, result: str) -> None:
        try:
            await self._memory.complete(
                call_sid, _START_KEY, result, self._settings.MEMORY_TIMEOUT_SECONDS
            )
        except DownstreamError as error:
            log.error("call %s: recording state not kept: %s", call_sid, describe(error))
