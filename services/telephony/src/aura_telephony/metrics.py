"""Telephony's metrics: RED metrics of every HTTP route, and what happens on calls.
Labels are bounded: route templates, status codes, event names; never a CallSid or a
phone number."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aura_common.metrics import LATENCY_BUCKETS

HTTP_REQUESTS = Counter(
    "aura_http_requests",
    "HTTP requests served, by route template, method and status code.",
    ["route", "method", "code"],
)
HTTP_SECONDS = Histogram(
    "aura_http_request_duration_seconds",
    "Time from a request's arrival to its response, by route template.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
TURN_SECONDS = Histogram(
    "aura_turn_duration_seconds",
    "Time from a Twilio webhook's arrival to its TwiML, by webhook (welcome or speech).",
    ["webhook"],
    buckets=LATENCY_BUCKETS,
)
CALLS_STARTED = Counter("aura_calls_started", "Calls welcomed.")
CALLS_ENDED = Counter("aura_calls_ended", "Calls ended, by final status.", ["status"])
CALL_EVENTS = Counter(
    "aura_call_events",
    "What turns led to: answered, goodbye, transfer, reprompt, low_confidence, keypad, "
    "holding, apology, refused, message (a message the caller left was saved), voicemail "
    "(an outbound call reached a machine), recording_refused (the caller said no to being "
    "recorded).",
    ["event"],
)
POST_CALL_DELIVERIES = Counter(
    "aura_post_call_deliveries",
    "Post-call webhook sends, by outcome: delivered, failed (retried later), abandoned "
    "(past POST_CALL_MAX_AGE_SECONDS).",
    ["outcome"],
)
POST_CALL_QUEUE = Gauge(
    "aura_post_call_queue_depth", "Post-call records waiting in the outbox (all replicas)."
)
POST_CALL_OLDEST = Gauge(
    "aura_post_call_oldest_seconds",
    "Age of the oldest post-call record not yet delivered (0 when none wait).",
)
for _outcome in ("delivered", "failed", "abandoned"):
    POST_CALL_DELIVERIES.labels(_outcome)
REPLAYS = Counter("aura_idempotent_replays", "Retried webhooks answered with the stored TwiML.")
SIGNATURE_REJECTIONS = Counter(
    "aura_signature_rejections",
    "Webhooks refused with 403, by reason: missing or invalid signature, account mismatch, "
    "a relay URL not issued here (relay_ticket), a setup for another call (call_mismatch).",
    ["reason"],
)

RELAY_SESSIONS = Gauge(
    "aura_relay_sessions",
    "Live call WebSocket sessions on this replica, ConversationRelay and realtime Media "
    "Streams together (what the autoscaler can follow).",
)
RELAY_FIRST_TOKEN = Histogram(
    "aura_relay_first_token_seconds",
    "Time from the caller's final prompt to the first sentence sent back, by provider.",
    ["provider"],
    buckets=LATENCY_BUCKETS,
)
HANGUPS_PENDING = Gauge(
    "aura_hangups_pending",
    "Ended calls whose end (and post-call record) memory could not take yet; retried.",
)
RELAY_EVENTS = Counter(
    "aura_relay_events",
    "What happened in relay sessions: interruption, preemption, filler; sessions closed "
    "without a setup in time (no_setup) or for not reading (stalled); sessions refused "
    "for a call that has one already (duplicate) or has ended (call_ended), or for want "
    "of room (full).",
    ["event"],
)
RELAY_ENDINGS = Counter(
    "aura_relay_endings",
    "Relay sessions ended, by reason: goodbye, transfer, handover, hangup.",
    ["reason"],
)

CALL_LANGUAGES = Counter(
    "aura_call_languages",
    "Calls by language: each call's first language at its welcome, then each change to "
    "another (only the deployment's LANGUAGES).",
    ["language"],
)
REALTIME_STREAMS = Gauge(
    "aura_realtime_streams",
    "Live Media Streams calls (VOICE_MODE=realtime) on this replica.",
)
REALTIME_FIRST_AUDIO = Histogram(
    "aura_realtime_first_audio_seconds",
    "From the caller's end of speech (as the model's voice activity detection reports it) "
    "to the answer's first audio sent to Twilio, by provider.",
    ["provider"],
    buckets=LATENCY_BUCKETS,
)
REALTIME_RELAY_SECONDS = Histogram(
    "aura_realtime_relay_seconds",
    "Aura's own share of the realtime path: a piece of assistant audio from the llm "
    "stream to Twilio's socket (telephony's part of each hop).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25),
)
REALTIME_EVENTS = Counter(
    "aura_realtime_events",
    "What happened in realtime calls: barge_in (Twilio's buffer cleared), late_audio "
    "(audio of a cut answer dropped), failover, fallback (no realtime provider left: the "
    "call went on in gather mode), no_start, stalled, duplicate, call_ended, full.",
    ["event"],
)
REALTIME_ENDINGS = Counter(
    "aura_realtime_endings",
    "Realtime streams ended, by reason: goodbye, transfer, handover, fallback, hangup.",
    ["reason"],
)

# Every value these label sets take: each series exists from the start, at zero.
CALL_EVENT_NAMES = (
    "answered",
    "goodbye",
    "transfer",
    "reprompt",
    "low_confidence",
    "keypad",
    "holding",
    "apology",
    "refused",
    "message",
    "voicemail",
    "recording_refused",
)
REJECTION_REASONS = ("missing", "invalid", "account_mismatch", "relay_ticket", "call_mismatch")
for _event in CALL_EVENT_NAMES:
    CALL_EVENTS.labels(_event)
RELAY_EVENT_NAMES = (
    "interruption",
    "preemption",
    "filler",
    "no_setup",
    "stalled",
    "duplicate",
    "call_ended",
    "full",
)
RELAY_ENDING_REASONS = ("goodbye", "transfer", "handover", "hangup")
for _reason in REJECTION_REASONS:
    SIGNATURE_REJECTIONS.labels(_reason)
for _event in RELAY_EVENT_NAMES:
    RELAY_EVENTS.labels(_event)
for _reason in RELAY_ENDING_REASONS:
    RELAY_ENDINGS.labels(_reason)


# Methods are labels as sent by anyone on the internet: only these are kept as they are.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """RED metrics per route template. Every label comes from a bounded set: unmatched
    paths share one value, and so do unknown methods, so that no request can add series."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "other"
            HTTP_REQUESTS.labels(template, method, str(status)).inc()
            HTTP_SECONDS.labels(template, method).observe(time.perf_counter() - started)


REALTIME_EVENT_NAMES = (
    "barge_in",
    "late_audio",
    "failover",
    "fallback",
    "no_start",
    "stalled",
    "duplicate",
    "call_ended",
    "full",
)
REALTIME_ENDING_REASONS = ("goodbye", "transfer", "handover", "fallback", "hangup")
for _event in REALTIME_EVENT_NAMES:
    REALTIME_EVENTS.labels(_event)
for _reason in REALTIME_ENDING_REASONS:
    REALTIME_ENDINGS.labels(_reason)

RECORDINGS = Counter(
    "aura_recordings",
    "Call recordings (CALL_RECORDING=on) through Twilio's REST API, by what happened: "
    "started, adopted (a retry found the recording its lost answer had started), stopped "
    "(the caller refused), declined (refused before it started), failed (Twilio refused or "
    "was unreachable: the call goes on unrecorded), completed (Twilio's callback).",
    ["event"],
)
RECORDING_EVENTS = ("started", "adopted", "stopped", "declined", "failed", "completed")
for _event in RECORDING_EVENTS:
    RECORDINGS.labels(_event)
