"""Base settings: every service reads the environment and an optional `.env` the same way."""

from __future__ import annotations

import re
import socket
import sys
from importlib import metadata
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aura_common.grpc_security import GrpcSecurity

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class AuraSettings(BaseSettings):
    """Environment variables win over `.env`; unknown variables are ignored because the
    three services share one `.env` and each reads only its own names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    VOICE_MODE: Literal["gather", "relay", "realtime"] = Field(
        default="gather",
        description="gather: turn-based <Gather>. relay: Twilio ConversationRelay, answers "
        "streamed sentence by sentence over a WebSocket, and the caller can interrupt them "
        "(ConversationRelay must be enabled on the Twilio account). realtime: the caller "
        "talks straight to a speech-to-speech model (OpenAI Realtime, Gemini Live) over "
        "Twilio Media Streams; the llm service then needs a realtime provider.",
    )
    LANGUAGES: str = Field(
        default="",
        description="The languages callers may use, comma-separated BCP-47 tags, the first "
        "the default (e.g. en-US,es-ES). Each needs a phrase catalogue (English, Spanish, "
        "French and German ship with Aura). Empty: SPEECH_LANGUAGE alone (en-US).",
    )
    LOG_LEVEL: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    LOG_FORMAT: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="json (one object per line, with trace_id and span_id) for log "
        "collectors, text for people, or auto: text in a terminal.",
    )
    AI_ASSISTANT_NAME: str = Field(
        default="Aura",
        description="Who the assistant says it is ({assistant_name} in the greetings and "
        "the system prompt).",
    )
    METRICS_HOST: str = Field(
        default="0.0.0.0",
        description="Where each service serves Prometheus metrics (/metrics), each on a "
        "port of its own so that a policy can open it to scrapers without opening the "
        "service.",
    )
    MAX_CONVERSATION_LENGTH: int = Field(
        default=20,
        ge=1,
        description="Turns kept per call (older ones are pruned); telephony sends at most "
        "this many to the model.",
    )
    GRPC_AUTH_TOKEN: str = Field(
        default="",
        description="The gRPC hops between telephony and llm/memory: with a token set (the "
        "same in all three), every call must carry it; llm and memory refuse others "
        "(health checks excepted). Empty: none.",
    )
    GRPC_TLS_CERT_FILE: str = Field(
        default="", description="llm and memory serve TLS with this certificate (PEM)."
    )
    GRPC_TLS_KEY_FILE: str = Field(default="", description="The key of GRPC_TLS_CERT_FILE.")
    GRPC_TLS_CA_FILE: str = Field(
        default="", description="The CA telephony trusts for llm's and memory's certificates."
    )
    GRPC_REFLECTION: bool = Field(
        default=True, description="gRPC server reflection, for grpcurl; off in production."
    )

    @field_validator("LANGUAGES")
    @classmethod
    def _languages(cls, value: str) -> str:
        tags = list(dict.fromkeys(t.strip() for t in value.split(",") if t.strip()))
        wrong = [t for t in tags if not re.fullmatch(r"[a-zA-Z]{2,3}(-[A-Za-z0-9]{2,8})*", t)]
        if wrong:
            raise ValueError(f"not language tags such as es-ES: {wrong}")
        return ",".join(tags)

    @property
    def grpc_security(self) -> GrpcSecurity:
        return GrpcSecurity(
            token=self.GRPC_AUTH_TOKEN,
            cert_file=self.GRPC_TLS_CERT_FILE,
            key_file=self.GRPC_TLS_KEY_FILE,
            ca_file=self.GRPC_TLS_CA_FILE,
            reflection=self.GRPC_REFLECTION,
        )


class GrpcServiceSettings(AuraSettings):
    """What the two gRPC services (llm, memory) share."""

    GRACEFUL_SHUTDOWN_SECONDS: float = Field(
        default=5.0, ge=0, description="Seconds in-flight gRPC calls get to finish on SIGTERM."
    )


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """The settings, or exit 2 with one line per bad variable instead of a traceback."""
    try:
        return cls()
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        print("invalid configuration:\n" + "\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None


class ListenError(SystemExit):
    """A port could not be bound: one line that names the address and the setting that
    moves it, instead of a traceback."""

    def __init__(self, address: str, setting: str, reason: str) -> None:
        super().__init__(f"cannot listen on {address}: {reason}; set {setting} to another port")


def bind_socket(host: str, port: int, setting: str) -> socket.socket:
    """A TCP socket bound to host:port, or a ListenError naming `setting`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets
    # that say they are TCP, and accepted connections inherit this. With Nagle on, a
    # response written as headers then body waited for the client's delayed ACK: 40 ms
    # added to about one webhook in twelve under load.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ListenError(f"{host}:{port}", setting, error.strerror or str(error)) from None
    return sock


def package_version(distribution: str) -> str:
    """The installed version of one of Aura's distributions, e.g. `aura-telephony`."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"
