"""Telephony settings, read from the environment (and `.env`)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from aura_common.settings import AuraSettings


class Settings(AuraSettings):
    # gather: turn-based <Gather>. relay: Twilio ConversationRelay, answers streamed over a
    # WebSocket sentence by sentence, and the caller can interrupt them.
    VOICE_MODE: Literal["gather", "relay"] = "gather"
    HOST: str = "0.0.0.0"
    PORT: int = Field(default=8000, ge=1, le=65535)
    # Prometheus metrics at http://METRICS_HOST:TELEPHONY_METRICS_PORT/metrics: a port of
    # their own, so that a policy can open it to scrapers without opening the webhooks.
    METRICS_HOST: str = "0.0.0.0"
    TELEPHONY_METRICS_PORT: int = Field(default=9466, ge=1, le=65535)
    TWILIO_ACCOUNT_SID: str = ""
    TWILIO_AUTH_TOKEN: str = ""
    TWILIO_PHONE_NUMBER: str = ""
    # The https URL Twilio calls, e.g. https://aura.example.com; signatures are computed on it.
    PUBLIC_BASE_URL: str = ""
    AI_ASSISTANT_NAME: str = "Aura"
    AI_ASSISTANT_VOICE: str = "Polly.Joanna"
    AI_WELCOME_MESSAGE: str = (
        "Hello! I'm {assistant_name}, your AI assistant. How can I help you today?"
    )
    SPEECH_TIMEOUT: str = "auto"
    # <Gather> speech options; empty means Twilio's default.
    SPEECH_LANGUAGE: str = "en-US"
    SPEECH_MODEL: str = ""
    SPEECH_HINTS: str = ""
    SPEECH_PROFANITY_FILTER: bool = True
    # Below this transcription confidence the caller is asked to repeat; 0 turns it off.
    SPEECH_MIN_CONFIDENCE: float = Field(default=0.3, ge=0, le=1)
    # Silent or unclear turns in a row before a polite goodbye.
    MAX_REPROMPTS: int = Field(default=2, ge=0, le=10)
    # Where pressing 0 or asking for a person transfers the call (E.164); empty: nobody.
    TRANSFER_NUMBER: str = ""
    # Rebuild the signed URL from X-Forwarded-Proto/-Host when PUBLIC_BASE_URL is unset.
    # Only behind a proxy that overwrites those headers: clients can forge them.
    TRUST_PROXY_HEADERS: bool = False
    # How long a webhook's answer is kept to replay to Twilio's retries of it.
    IDEMPOTENCY_TTL_SECONDS: float = Field(default=300.0, gt=0, le=86400)
    MAX_REQUEST_BODY_BYTES: int = Field(default=64 * 1024, ge=1024)
    # Slow clients: a request's headers, then its body, must arrive within these, or the
    # connection is closed; beyond HTTP_MAX_CONNECTIONS connections and requests at once,
    # new requests get 503. Idle keep-alive connections close after HTTP_KEEP_ALIVE_SECONDS.
    HTTP_HEADER_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    HTTP_BODY_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    HTTP_MAX_CONNECTIONS: int = Field(default=1000, ge=1)
    # A request's first line and headers together; larger ones get 431.
    HTTP_MAX_HEADER_BYTES: int = Field(default=32 * 1024, ge=4096, le=1024 * 1024)
    HTTP_KEEP_ALIVE_SECONDS: int = Field(default=5, ge=1)
    # What a caller said is cut to this length before it reaches the model.
    MAX_SPEECH_CHARS: int = Field(default=500, ge=10)
    # Bearer token for the admin API (call transcripts); empty disables it.
    ADMIN_API_TOKEN: str = ""
    # Outbound calls (POST /api/calls): the E.164 prefixes a number called must start with,
    # comma-separated (e.g. "+1555,+4420"). Empty: outbound calls are off.
    OUTBOUND_ALLOWED_PREFIXES: str = ""
    # Outbound calls placed per minute, by all replicas together.
    MAX_OUTBOUND_CALLS_PER_MINUTE: int = Field(default=10, ge=1, le=10000)
    # What an outbound call's greeting says; {purpose} is the call's purpose.
    AI_OUTBOUND_GREETING: str = (
        "Hello! This is {assistant_name}, an automated assistant, calling about {purpose}."
    )
    # Where the twilio SDK sends REST requests; empty: Twilio's own (https://api.twilio.com).
    TWILIO_API_BASE_URL: str = ""
    # Post-call webhooks: after every call its record is POSTed here (JSON, signed with
    # POST_CALL_WEBHOOK_SECRET like tool calls), at least once. Empty: none are sent.
    POST_CALL_WEBHOOK_URL: str = ""
    POST_CALL_WEBHOOK_SECRET: str = ""
    POST_CALL_WEBHOOK_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0, le=60)
    # The first retry of a failed send; later ones wait twice as long each, up to 30 min.
    POST_CALL_RETRY_SECONDS: float = Field(default=5.0, gt=0, le=600)
    # A record not delivered within this long is given up (and logged at ERROR).
    POST_CALL_MAX_AGE_SECONDS: float = Field(default=86400.0, gt=0)
    # How often each replica looks in the outbox when nothing is new.
    POST_CALL_POLL_SECONDS: float = Field(default=2.0, gt=0, le=60)
    # Calls one number may start per hour (shared by all replicas); 0 turns the limit off.
    MAX_CALLS_PER_NUMBER_PER_HOUR: int = Field(default=30, ge=0)
    # ConversationRelay (VOICE_MODE=relay); empty means Twilio's default. SPEECH_LANGUAGE
    # and SPEECH_HINTS apply too.
    RELAY_TTS_PROVIDER: str = ""
    RELAY_VOICE: str = ""
    RELAY_TRANSCRIPTION_PROVIDER: str = ""
    RELAY_SPEECH_MODEL: str = ""
    RELAY_INTERRUPT_SENSITIVITY: Literal["", "low", "medium", "high"] = ""
    # Silence after an answer before the caller is asked again (MAX_REPROMPTS applies).
    RELAY_IDLE_SECONDS: float = Field(default=8.0, gt=0)
    # With no sentence ready this long after the caller spoke, a short filler is spoken.
    RELAY_FILLER_SECONDS: float = Field(default=1.5, gt=0)
    # Relay sessions one pod holds at once; past it the upgrade is refused (Twilio then
    # falls back to gather through the action URL). Webhooks keep their own capacity.
    RELAY_MAX_SESSIONS: int = Field(default=500, ge=1)
    # A socket must send `setup` this soon after it opens, or it is closed.
    RELAY_SETUP_SECONDS: float = Field(default=5.0, gt=0)
    # A message to Twilio not taken this long (a client that does not read) closes the session.
    RELAY_SEND_SECONDS: float = Field(default=5.0, gt=0)
    # On SIGTERM, live sessions may go on this long before they are handed to another
    # replica (Twilio reconnects the caller; the conversation continues from memory).
    DRAIN_SECONDS: float = Field(default=20.0, ge=0)
    LLM_SERVICE_ADDRESS: str = "localhost:50051"
    MEMORY_SERVICE_ADDRESS: str = "localhost:50052"
    # The whole turn must finish well inside Twilio's 15 s webhook timeout.
    TURN_BUDGET_SECONDS: float = Field(default=8.0, gt=0, le=14)
    MEMORY_TIMEOUT_SECONDS: float = Field(default=1.0, gt=0)

    @field_validator("SPEECH_TIMEOUT")
    @classmethod
    def _speech_timeout(cls, value: str) -> str:
        value = value.strip().lower()
        if value != "auto" and not (value.isdigit() and int(value) > 0):
            raise ValueError("SPEECH_TIMEOUT must be 'auto' or a whole number of seconds")
        return value

    @field_validator("PUBLIC_BASE_URL")
    @classmethod
    def _public_base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("PUBLIC_BASE_URL must start with https:// (or http://)")
        return value

    @model_validator(mode="after")
    def _post_call_secret(self) -> Settings:
        if self.POST_CALL_WEBHOOK_URL and not self.POST_CALL_WEBHOOK_SECRET:
            raise ValueError(
                "POST_CALL_WEBHOOK_URL needs POST_CALL_WEBHOOK_SECRET, to sign the records"
            )
        if self.POST_CALL_WEBHOOK_URL and not self.POST_CALL_WEBHOOK_URL.startswith(
            ("https://", "http://")
        ):
            raise ValueError("POST_CALL_WEBHOOK_URL must start with https:// (or http://)")
        return self

    @field_validator("OUTBOUND_ALLOWED_PREFIXES")
    @classmethod
    def _prefixes(cls, value: str) -> str:
        prefixes = [p.strip() for p in value.split(",") if p.strip()]
        wrong = [p for p in prefixes if not re.fullmatch(r"\+[0-9]{1,14}", p)]
        if wrong:
            raise ValueError(f"prefixes must look like +1555: {wrong}")
        return ",".join(prefixes)

    @field_validator("TWILIO_API_BASE_URL")
    @classmethod
    def _api_base(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("TWILIO_API_BASE_URL must start with https:// (or http://)")
        return value.rstrip("/")

    @property
    def outbound_prefixes(self) -> tuple[str, ...]:
        return tuple(p for p in self.OUTBOUND_ALLOWED_PREFIXES.split(",") if p)

    def outbound_greeting(self, purpose: str) -> str:
        return self.AI_OUTBOUND_GREETING.replace(
            "{assistant_name}", self.AI_ASSISTANT_NAME
        ).replace("{purpose}", purpose.rstrip(". "))

    @field_validator("TRANSFER_NUMBER")
    @classmethod
    def _transfer_number(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"\+?[0-9]{3,15}|sip:\S+", value):
            raise ValueError("TRANSFER_NUMBER must be a phone number (E.164) or a sip: URI")
        return value

    def warnings(self) -> list[str]:
        """Combinations Twilio accepts but handles badly; logged at startup."""
        found = []
        if self.SPEECH_MODEL and self.SPEECH_TIMEOUT == "auto":
            found.append(
                f"SPEECH_TIMEOUT=auto with SPEECH_MODEL={self.SPEECH_MODEL}: Twilio does not "
                "support speechTimeout auto once a speech model is set (warning 13335); "
                "set SPEECH_TIMEOUT to a number of seconds"
            )
        if self.SPEECH_LANGUAGE and not re.fullmatch(
            r"[a-z]{2,3}-[A-Za-z0-9]{2,4}", self.SPEECH_LANGUAGE
        ):
            found.append(
                f"SPEECH_LANGUAGE={self.SPEECH_LANGUAGE} is not a language tag such as en-US; "
                "Twilio fails the <Gather> (warning 13331)"
            )
        if not self.TWILIO_AUTH_TOKEN:
            found.append(
                "TWILIO_AUTH_TOKEN is not set: webhook signatures are NOT checked and anyone "
                "who can reach this service can drive calls. Local development only."
            )
        elif not self.PUBLIC_BASE_URL and not self.TRUST_PROXY_HEADERS:
            found.append(
                "PUBLIC_BASE_URL is not set: signatures are checked against the URL this "
                "service sees, which behind an ingress is not the one Twilio signed"
            )
        return found

    @property
    def welcome_message(self) -> str:
        return self.AI_WELCOME_MESSAGE.replace("{assistant_name}", self.AI_ASSISTANT_NAME)
