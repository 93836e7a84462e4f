"""Plays Twilio in tests: form-encoded webhooks signed with the `twilio` library."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from xml.etree import ElementTree

import httpx
from twilio.request_validator import RequestValidator

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


def new_token() -> str:
    return secrets.token_hex(16)


@dataclass
class Twiml:
    """A parsed TwiML answer."""

    xml: str
    root: ElementTree.Element = field(init=False)

    def __post_init__(self) -> None:
        self.root = ElementTree.fromstring(self.xml)
        assert self.root.tag == "Response", self.xml

    @property
    def verbs(self) -> list[str]:
        return [child.tag for child in self.root]

    @property
    def gather(self) -> ElementTree.Element | None:
        return self.root.find("Gather")

    @property
    def spoken(self) -> str:
        """What the caller hears first: the <Say> in the Gather, else the first <Say>."""
        say = self.root.find("Gather/Say")
        if say is None:
            say = self.root.find("Say")
        return (say.text or "") if say is not None else ""

    @property
    def hangs_up(self) -> bool:
        return self.gather is None and "Hangup" in self.verbs


@dataclass(kw_only=True)
class TwilioSigner:
    """Signs webhooks as Twilio does: for `public_base_url` when set, else the client's URL."""

    auth_token: str = ""
    public_base_url: str = ""
    account_sid: str = "AC" + "0" * 32

    def _headers(self, base_url: str, path: str, params: Mapping[str, str]) -> dict[str, str]:
        headers = dict(FORM)
        if self.auth_token:
            url = (self.public_base_url or base_url.rstrip("/")) + path
            validator = RequestValidator(self.auth_token)
            headers["X-Twilio-Signature"] = validator.compute_signature(url, dict(params))
        return headers

    def call_params(self, call_sid: str, **extra: str) -> dict[str, str]:
        return {
            "CallSid": call_sid,
            "AccountSid": self.account_sid,
            "From": "+15551230001",
            "To": "+15559870002",
            "Direction": "inbound",
            "CallStatus": "in-progress",
            "ApiVersion": "2010-04-01",
            **extra,
        }


@dataclass(kw_only=True)
class TwilioPlayer(TwilioSigner):
    client: httpx.Client

    def sign(self, path: str, params: Mapping[str, str]) -> dict[str, str]:
        return self._headers(str(self.client.base_url), path, params)

    def post(self, path: str, params: Mapping[str, str]) -> httpx.Response:
        """One webhook delivery, with a fresh idempotency token as Twilio sends."""
        headers = {**self.sign(path, params), "I-Twilio-Idempotency-Token": new_token()}
        return self.client.post(path, data=dict(params), headers=headers)


@dataclass(kw_only=True)
class AsyncTwilioPlayer(TwilioSigner):
    client: httpx.AsyncClient

    def sign(self, path: str, params: Mapping[str, str]) -> dict[str, str]:
        return self._headers(str(self.client.base_url), path, params)

    async def post(self, path: str, params: Mapping[str, str]) -> httpx.Response:
        """One webhook delivery, with a fresh idempotency token as Twilio sends."""
        headers = {**self.sign(path, params), "I-Twilio-Idempotency-Token": new_token()}
        return await self.client.post(path, data=dict(params), headers=headers)
