"""Telephony settings, read from the environment (and `.env`)."""

from __future__ import annotations

from pydantic import Field, field_validator

from aura_common.settings import AuraSettings


class Settings(AuraSettings):
    HOST: str = "0.0.0.0"
    PORT: int = Field(default=8000, ge=1, le=65535)
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

    @property
    def welcome_message(self) -> str:
        return self.AI_WELCOME_MESSAGE.replace("{assistant_name}", self.AI_ASSISTANT_NAME)
