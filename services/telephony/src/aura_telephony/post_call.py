"""Post-call webhooks: after every call, its record goes to the business's system
(POST_CALL_WEBHOOK_URL), at least once.

A final status callback only puts the call in the outbox of the memory service (Redis when
MEMORY_STORE=redis), so nothing waits on the business's server and nothing is lost when a
pod restarts. Every telephony replica sends what the outbox leases it: it builds the record
(transcript, messages, events, and a summary from the llm service, which the outbox keeps
for the retries), signs it like tool calls (X-Aura-Timestamp, X-Aura-Signature) with an
Idempotency-Key (the CallSid), and settles it, or retries with backoff (seconds at first,
growing to half an hour) for up to POST_CALL_MAX_AGE_SECONDS. A lease that is never settled
(the replica died) lapses, and another replica sends it: receivers drop duplicates by the
key."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from typing import Any

import httpx

from aura_common.settings import package_version
from aura_common.signing import signed_headers
from aura_common.tasks import stop
from aura_telephony import metrics
from aura_telephony.backends import Backends
from aura_telephony.budget import TurnBudget
from aura_telephony.config import Settings
from aura_telephony.errors import DownstreamError, describe
from aura_telephony.model import Delivery, Transcript
from aura_telephony.recordings import pending
from aura_telephony.records import (
    iso,
    languages_json,
    messages_json,
    recording_json,
    tool_calls_json,
    turns_json,
)

log = logging.getLogger(__name__)

_BATCH = 4
_RPC_SECONDS = 2.0
_SUMMARY_SECONDS = 20.0
_MAX_BACKOFF_SECONDS = 1800.0
# Attempts that wait for a summary before the record goes without one.
_SUMMARY_ATTEMPTS = 3
# How long a record waits for Twilio to say a recording is done (its duration and media
# come a few seconds after the call ends), and how often it looks again meanwhile.
RECORDING_WAIT_SECONDS = 120.0
_RECORDING_POLL_SECONDS = 3.0


class RecordingPendingError(Exception):
    """The call's recording is not done yet: the record waits for it."""


def outcome(record: Transcript | None) -> str:
    """answered, transferred, voicemail, refused or abandoned."""
    if record is None:
        return "abandoned"
    kinds = {e.kind for e in record.events}
    for kind, name in (("refused", "refused"), ("voicemail", "voicemail")):
        if kind in kinds:
            return name
    # A warm transfer counts once someone took it; a cold one when it was dialled.
    if "transfer_accepted" in kinds or ("transferred" in kinds and "transfer_summary" not in kinds):
        return "transferred"
    return "answered" if any(t.role == "user" for t in record.turns) else "abandoned"


def transfer_summary(record: Transcript | None) -> str | None:
    """What the person who took (or was offered) a warm transfer heard, the latest."""
    summaries = [
        e.detail for e in (record.events if record else ()) if e.kind == "transfer_summary"
    ]
    return summaries[-1] if summaries else None


def build_record(
    call_id: str,
    job: dict[str, Any],
    record: Transcript | None,
    summary: str | None,
    default_language: str = "en-US",
) -> dict[str, Any]:
    """The JSON the business receives for one call. A call in several languages says so
    in its summary too."""
    languages = languages_json(record, default_language)
    if summary and len(languages) > 1:
        summary = f"{summary} (Languages: {', '.join(languages)}.)"
    started = record.started_at if record else None
    ended = record.ended_at if record else None
    duration = job.get("duration")
    if duration is None and started and ended:
        duration = round((ended - started).total_seconds())
    return {
        "call_id": call_id,
        "direction": (record.direction if record else "") or job.get("direction") or "inbound",
        "caller": record.caller if record else "",
        "callee": record.callee if record else "",
        "started_at": iso(started),
        "ended_at": iso(ended),
        "duration_seconds": duration,
        "status": job.get("status") or (record.status if record else ""),
        "outcome": outcome(record),
        "purpose": record.purpose if record else "",
        "summary": summary,
        "transfer_summary": transfer_summary(record),
        "languages": languages,
        "transcript": turns_json(record),
        "messages": messages_json(record),
        "tool_calls": tool_calls_json(record),
        "recording": recording_json(record),
    }


class PostCallSender:
    def __init__(self, settings: Settings, backends: Backends) -> None:
        self._settings = settings
        self._backends = backends
        self._client = httpx.AsyncClient(
            timeout=settings.POST_CALL_WEBHOOK_TIMEOUT_SECONDS,
            follow_redirects=False,
            headers={"User-Agent": f"aura-telephony/{package_version('aura-telephony')}"},
        )
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        await stop(self._task)
        await self._client.aclose()

    async def enqueue(self, call_sid: str, status: str, duration: str) -> None:
        """Queue the call's record; raises DownstreamError when memory cannot take it."""
        job = {"status": status, "duration": int(duration) if duration.isdigit() else None}
        if await self._backends.memory.enqueue_delivery(call_sid, json.dumps(job), _RPC_SECONDS):
            self._wake.set()  # send it now rather than at the next poll

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.send_due()
            except DownstreamError as error:
                log.warning("post-call outbox unreachable: %s", describe(error))
                sent = 0
            except Exception:
                # Whatever went wrong with one batch, the sender lives on: its leases
                # lapse and the records are sent again.
                log.exception("post-call sender: a batch failed")
                sent = 0
            if not sent:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.POST_CALL_POLL_SECONDS)

    async def send_due(self) -> int:
        """Send what the outbox leases this replica now; how many it leased."""
        # Long enough for the whole batch to time out, so no other replica sends it meanwhile.
        lease = _BATCH * (self._settings.POST_CALL_WEBHOOK_TIMEOUT_SECONDS + _SUMMARY_SECONDS) + 30
        outbox = await self._backends.memory.lease_deliveries(_BATCH, lease, _RPC_SECONDS)
        metrics.POST_CALL_QUEUE.set(outbox.depth)
        oldest = (time.time() - outbox.oldest.timestamp()) if outbox.oldest else 0.0
        metrics.POST_CALL_OLDEST.set(max(0.0, oldest))
        for delivery in outbox.deliveries:
            await self._send(delivery)
        return len(outbox.deliveries)

    async def _send(self, delivery: Delivery) -> None:
        try:
            job = json.loads(delivery.payload)
        except ValueError:
            job = {}
        age = time.time() - delivery.created_at.timestamp() if delivery.created_at else 0.0
        unsummarised = "summary" not in job

        def kept() -> str:
            """A retry's payload: the job with a summary made now (one model call per
            call, not one per attempt), or "" to keep the job as it was."""
            return json.dumps(job) if unsummarised and "summary" in job else ""

        try:
            body = await self._body(delivery, job, age)
            delivered = await self._post(delivery.id, body)
        except RecordingPendingError:
            await self._backends.memory.settle_delivery(
                delivery.id, False, _RECORDING_POLL_SECONDS, _RPC_SECONDS, kept()
            )
            return
        except DownstreamError as error:
            log.warning("call %s: record not ready: %s", delivery.id, describe(error))
            delivered = False
        if delivered:
            metrics.POST_CALL_DELIVERIES.labels("delivered").inc()
            await self._backends.memory.settle_delivery(delivery.id, True, 0, _RPC_SECONDS)
            return
        if age >= self._settings.POST_CALL_MAX_AGE_SECONDS:
            log.error(
                "call %s: post-call webhook abandoned after %d attempts over %.0f s",
                delivery.id,
                delivery.attempts + 1,
                age,
            )
            metrics.POST_CALL_DELIVERIES.labels("abandoned").inc()
            await self._backends.memory.settle_delivery(delivery.id, True, 0, _RPC_SECONDS)
            return
        metrics.POST_CALL_DELIVERIES.labels("failed").inc()
        first = self._settings.POST_CALL_RETRY_SECONDS
        wait = min(first * 2**delivery.attempts, _MAX_BACKOFF_SECONDS)
        # Jitter (not a secret): receivers that recover see no stampede.
        wait *= 0.5 + random.random() / 2  # noqa: S311
        await self._backends.memory.settle_delivery(delivery.id, False, wait, _RPC_SECONDS, kept())

    async def _body(self, delivery: Delivery, job: dict[str, Any], age: float) -> bytes:
        """The record to send; a summary it makes is kept in `job` for the retries.
        Raises RecordingPendingError while the call's recording is not yet done (for up to
        RECORDING_WAIT_SECONDS), so that the record carries its duration and media."""
        record = await self._backends.memory.transcript(delivery.id, TurnBudget(_RPC_SECONDS))
        # A call in which the caller said nothing has nothing to summarise.
        turns = record.turns if record is not None else ()
        if "summary" not in job and any(t.role == "user" for t in turns):
            try:
                job["summary"] = await self._backends.llm.summarize(
                    delivery.id, turns, _SUMMARY_SECONDS
                )
            except DownstreamError as error:
                if delivery.attempts + 1 < _SUMMARY_ATTEMPTS:
                    raise
                log.warning("call %s: sent without a summary: %s", delivery.id, describe(error))
        if pending(record) and age < RECORDING_WAIT_SECONDS:
            raise RecordingPendingError
        record_json = build_record(
            delivery.id, job, record, job.get("summary"), self._settings.languages[0]
        )
        return json.dumps(record_json, separators=(",", ":")).encode()

    async def _post(self, call_sid: str, body: bytes) -> bool:
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": call_sid,
            **signed_headers(self._settings.POST_CALL_WEBHOOK_SECRET, body),
        }
        try:
            response = await self._client.post(
                self._settings.POST_CALL_WEBHOOK_URL, content=body, headers=headers
            )
        except httpx.HTTPError as error:
            log.warning("call %s: post-call webhook failed: %s", call_sid, type(error).__name__)
            return False
        if response.is_success:
            log.info("call %s: post-call record delivered", call_sid)
            return True
        level = logging.ERROR if 400 <= response.status_code < 500 else logging.WARNING
        log.log(level, "call %s: post-call webhook answered %d", call_sid, response.status_code)
        return False
