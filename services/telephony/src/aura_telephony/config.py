"""Telephony settings, read from the environment (and `.env`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from aura_common.settings import AuraSettings


class Settings(AuraSettings):
    HOST: str = Field(default="0.0.0.0", description="Where telephony listens.")
    PORT: int = Field(default=8000, ge=1, le=65535, description="Telephony's HTTP port.")
    TELEPHONY_METRICS_PORT: int = Field(
        default=9466, ge=1, le=65535, description="Telephony's Prometheus metrics port."
    )
    TWILIO_ACCOUNT_SID: str = Field(
        default="",
        description="When set, a webhook naming another AccountSid gets 403 (a second check "
        "beside the signature).",
    )
    TWILIO_AUTH_TOKEN: str = Field(
        default="",
        description="With it set, every webhook must carry a valid X-Twilio-Signature (403 "
        "otherwise). Empty only for local development: unsigned requests are accepted, "
        "with a loud warning at startup.",
    )
    TWILIO_PHONE_NUMBER: str = Field(
        default="", description="The Twilio number outbound calls are placed from."
    )
    PUBLIC_BASE_URL: str = Field(
        default="",
        description="The https URL Twilio calls (your ingress or tunnel), e.g. "
        "https://aura.example.com. Signatures are checked against it, so set it whenever "
        "TLS ends in front of Aura.",
    )
    AI_ASSISTANT_VOICE: str = Field(
        default="Polly.Joanna", description="The Twilio <Say> voice of gather mode."
    )
    AI_WELCOME_MESSAGE: str = Field(
        default="Hello! I'm {assistant_name}, your AI assistant. How can I help you today?",
        description="The greeting; {assistant_name} is filled in.",
    )
    SPEECH_TIMEOUT: str = Field(
        default="auto",
        description="How long Twilio waits after the caller stops speaking: auto or whole "
        "seconds. Twilio does not support auto together with SPEECH_MODEL (warned at "
        "startup).",
    )
    SPEECH_LANGUAGE: str = Field(
        default="en-US", description="The language tag speech is recognised and spoken in."
    )
    SPEECH_MODEL: str = Field(default="", description="<Gather>'s speech model; empty: Twilio's.")
    PHRASES_PATH: Path | None = Field(
        default=None,
        examples=["/etc/aura/phrases"],
        description="A directory of the operator's phrase catalogues (es.yaml, es-MX.yaml, "
        "...): they add languages, or replace the shipped lines they name. Unset: the "
        "shipped catalogues.",
    )
    LANGUAGE_VOICES: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        examples=['{"es-ES": {"say": "Polly.Conchita", "relay_tts_provider": "Google"}}'],
        description="Per language (JSON), the voice and speech settings that differ from "
        "its catalogue's: say (gather's <Say> voice), relay_tts_provider, relay_voice, "
        "relay_transcription_provider, relay_speech_model. The first language's also come "
        "from AI_ASSISTANT_VOICE and the RELAY_* settings.",
    )
    SPEECH_HINTS: str = Field(
        default="", description="Comma-separated words the caller is likely to say."
    )
    SPEECH_PROFANITY_FILTER: bool = Field(default=True, description="<Gather>'s profanity filter.")
    SPEECH_MIN_CONFIDENCE: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="Below this transcription confidence the caller is asked to repeat; 0 "
        "turns it off. A confidence of exactly 0, which some speech models send when they "
        "score nothing, is ignored.",
    )
    MAX_REPROMPTS: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Silent or unclear turns in a row before a polite goodbye and hang-up.",
    )
    TRANSFER_NUMBER: str = Field(
        default="",
        description="Pressing 0, or asking for an agent, a human, a representative or an "
        "operator, transfers the call here (E.164 number or sip: URI). Empty: the caller "
        "hears that nobody is available.",
    )
    TRANSFER_MODE: Literal["warm", "cold"] = Field(
        default="warm",
        description="warm: the person who answers a transfer first hears who is calling and "
        "what they want (a summary written by the model) and takes the call with 1; if they "
        "do not, the caller is back with the assistant. cold: the call is put straight "
        "through.",
    )
    TRANSFER_SUMMARY_SECONDS: float = Field(
        default=2.0,
        gt=0,
        le=10,
        description="The most the transfer summary may take; past it (or with no model) "
        "the whisper says the caller's number and their last request.",
    )
    CALL_RECORDING: Literal["off", "on"] = Field(
        default="off",
        description="on: every call is recorded through Twilio's REST API (both channels), "
        "after the caller hears RECORDING_NOTICE; a caller who says they do not want it, or "
        "presses RECORDING_OPT_OUT_KEY, stops it for the rest of the call. Consent rules "
        "differ by place: the operator owns them.",
    )
    RECORDING_NOTICE: str | None = Field(
        default=None,
        max_length=500,
        description="What a caller hears before the recording starts, in the first "
        "language (the other languages' notices are in their catalogues). Unset: the "
        "catalogue's notice; set, it must not be empty while CALL_RECORDING=on. "
        "{digit} is RECORDING_OPT_OUT_KEY.",
    )
    RECORDING_OPT_OUT_KEY: str = Field(
        default="9",
        pattern=r"^[1-9*#]$",
        description="The key that stops the recording (the notice offers it). Not 0 "
        "(a person) nor a language's key.",
    )
    TRUST_PROXY_HEADERS: bool = Field(
        default=False,
        description="Without PUBLIC_BASE_URL, rebuild the signed URL from "
        "X-Forwarded-Proto/X-Forwarded-Host. Only behind a proxy that overwrites those "
        "headers: anyone else can forge them.",
    )
    IDEMPOTENCY_TTL_SECONDS: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="How long a webhook's answer is kept to replay to Twilio's retries of it.",
    )
    MAX_REQUEST_BODY_BYTES: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Larger requests get 413 (Twilio's are a few kilobytes).",
    )
    HTTP_HEADER_TIMEOUT_SECONDS: float = Field(
        default=10.0,
        gt=0,
        description="A request's headers must arrive within this, or the connection is closed.",
    )
    HTTP_BODY_TIMEOUT_SECONDS: float = Field(
        default=10.0,
        gt=0,
        description="A request's body must arrive within this, or the connection is closed.",
    )
    HTTP_MAX_CONNECTIONS: int = Field(
        default=1000,
        ge=1,
        description="HTTP connections at once (relay sockets are not counted); beyond, new "
        "requests get 503.",
    )
    HTTP_MAX_HEADER_BYTES: int = Field(
        default=32 * 1024,
        ge=4096,
        le=1024 * 1024,
        description="A request's first line and headers together; larger ones get 431.",
    )
    HTTP_KEEP_ALIVE_SECONDS: int = Field(
        default=5, ge=1, description="Idle keep-alive connections close after this."
    )
    MAX_SPEECH_CHARS: int = Field(
        default=500,
        ge=10,
        description="What a caller said is cut to this many characters before it reaches "
        "the model.",
    )
    ADMIN_API_TOKEN: str = Field(
        default="",
        description="Bearer token of the admin API (POST /api/calls, GET "
        "/api/calls/{CallSid}/transcript). Empty: no admin API.",
    )
    OUTBOUND_ALLOWED_PREFIXES: str = Field(
        default="",
        description="Outbound calls (POST /api/calls): the E.164 prefixes a number called "
        "must start with, comma-separated, e.g. +1555,+4420. Empty: outbound calls are off.",
    )
    MAX_OUTBOUND_CALLS_PER_MINUTE: int = Field(
        default=10,
        ge=1,
        le=10000,
        description="Outbound calls placed per minute, by all replicas together.",
    )
    AI_OUTBOUND_GREETING: str = Field(
        default="Hello! This is {assistant_name}, an automated assistant, calling about {purpose}.",
        description="An outbound call's greeting; {assistant_name} and {purpose} are filled in.",
    )
    TWILIO_API_BASE_URL: str = Field(
        default="",
        description="Where the twilio SDK sends REST requests (a gateway, or aura-call "
        "--answer-calls). Empty: Twilio's own API.",
    )
    POST_CALL_WEBHOOK_URL: str = Field(
        default="",
        description="Post-call webhooks: each call's record is POSTed here as JSON, signed "
        "with POST_CALL_WEBHOOK_SECRET (X-Aura-Timestamp, X-Aura-Signature), at least "
        "once. Empty: none are sent.",
    )
    POST_CALL_WEBHOOK_SECRET: str = Field(
        default="", description="Signs post-call records; required with the URL."
    )
    POST_CALL_WEBHOOK_TIMEOUT_SECONDS: float = Field(
        default=10.0, gt=0, le=60, description="The deadline of one post-call send."
    )
    POST_CALL_RETRY_SECONDS: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="The first retry after a failed send; each later one waits twice as "
        "long, up to 30 minutes.",
    )
    POST_CALL_MAX_AGE_SECONDS: float = Field(
        default=86400.0,
        gt=0,
        description="A record not delivered within this long is given up (logged at ERROR).",
    )
    POST_CALL_POLL_SECONDS: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="How often each replica looks in the outbox when nothing new arrives.",
    )
    MAX_CALLS_PER_NUMBER_PER_HOUR: int = Field(
        default=30,
        ge=0,
        description="Calls one number may start per hour, across all replicas; more hear a "
        "refusal. 0: no limit.",
    )
    RELAY_TTS_PROVIDER: str = Field(
        default="", description="ConversationRelay's text-to-speech provider; empty: Twilio's."
    )
    RELAY_VOICE: str = Field(default="", description="ConversationRelay's voice; empty: Twilio's.")
    RELAY_TRANSCRIPTION_PROVIDER: str = Field(
        default="", description="ConversationRelay's speech recogniser; empty: Twilio's."
    )
    RELAY_SPEECH_MODEL: str = Field(
        default="", description="ConversationRelay's speech model; empty: Twilio's."
    )
    RELAY_INTERRUPT_SENSITIVITY: Literal["", "low", "medium", "high"] = Field(
        default="",
        description="How readily the caller's voice interrupts an answer: low, medium or "
        "high; empty: Twilio's.",
    )
    RELAY_IDLE_SECONDS: float = Field(
        default=8.0,
        gt=0,
        description="Silence after an answer before the caller is asked again "
        "(MAX_REPROMPTS applies).",
    )
    RELAY_FILLER_SECONDS: float = Field(
        default=1.5,
        gt=0,
        description='With no sentence ready this long after the caller spoke, "One moment." '
        "is said.",
    )
    RELAY_MAX_SESSIONS: int = Field(
        default=500,
        ge=1,
        description="Relay sessions one pod holds at once; beyond, the upgrade is refused "
        "(Twilio falls back to gather). Webhooks keep their own capacity.",
    )
    RELAY_SETUP_SECONDS: float = Field(
        default=5.0,
        gt=0,
        description="A relay socket must send setup this soon after it opens, or it is closed.",
    )
    RELAY_SEND_SECONDS: float = Field(
        default=5.0,
        gt=0,
        description="A message Twilio's side does not take this long (a client that does "
        "not read) closes the session.",
    )
    DRAIN_SECONDS: float = Field(
        default=20.0,
        ge=0,
        description="On SIGTERM, live relay calls go on this long, then are handed to other "
        "replicas (Twilio reconnects; the conversation continues from memory).",
    )
    REALTIME_BATCH_MS: int = Field(
        default=40,
        ge=20,
        le=200,
        description="VOICE_MODE=realtime: the caller's 20 ms audio frames go to the llm "
        "service in batches of this much (fewer messages per second for each call, at most "
        "this much later).",
    )
    REALTIME_MAX_CALL_SECONDS: float = Field(
        default=4 * 3600.0,
        gt=0,
        description="VOICE_MODE=realtime: the deadline of a call's conversation with the "
        "llm service; a call longer than this is handed over to a new one.",
    )
    LLM_SERVICE_ADDRESS: str = Field(
        default="localhost:50051", description="Where telephony finds the llm service."
    )
    MEMORY_SERVICE_ADDRESS: str = Field(
        default="localhost:50052", description="Where telephony finds the memory service."
    )
    TURN_BUDGET_SECONDS: float = Field(
        default=8.0,
        gt=0,
        le=14,
        description="Time for a whole turn (history, answer, storing it); every gRPC "
        "deadline is cut from it. Twilio gives up after 15 s.",
    )
    MEMORY_TIMEOUT_SECONDS: float = Field(
        default=1.0, gt=0, description="The deadline of each memory-service call."
    )

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
    def _recording(self) -> Settings:
        notice = self.RECORDING_NOTICE
        if self.CALL_RECORDING == "on" and notice is not None and not notice.strip():
            raise ValueError(
                "RECORDING_NOTICE must not be empty while CALL_RECORDING=on: callers "
                "must hear that they are recorded (unset it for the standard notice)"
            )
        credentials = self.TWILIO_ACCOUNT_SID and self.TWILIO_AUTH_TOKEN
        if self.CALL_RECORDING == "on" and not credentials:
            raise ValueError(
                "CALL_RECORDING=on records through Twilio's REST API: set TWILIO_ACCOUNT_SID "
                "and TWILIO_AUTH_TOKEN"
            )
        key, languages = self.RECORDING_OPT_OUT_KEY, len(self.languages)
        choosing = languages > 1 and key.isdigit() and int(key) <= languages
        if self.CALL_RECORDING == "on" and choosing:
            raise ValueError(
                f"RECORDING_OPT_OUT_KEY={key} is a language's key with LANGUAGES="
                f"{self.LANGUAGES}: choose a key after the last language"
            )
        return self

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
    def languages(self) -> list[str]:
        """LANGUAGES, or SPEECH_LANGUAGE alone; the first is the default."""
        return self.LANGUAGES.split(",") if self.LANGUAGES else [self.SPEECH_LANGUAGE or "en-US"]

    @property
    def welcome_message(self) -> str:
        return self.AI_WELCOME_MESSAGE.replace("{assistant_name}", self.AI_ASSISTANT_NAME)
