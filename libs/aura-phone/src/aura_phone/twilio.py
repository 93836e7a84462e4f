"""Twilio's side of a voice webhook, in one place: the parameters Twilio sends, the
signature it computes over the URL it calls, and its idempotency token. The simulator,
the test suites and the benchmark all play Twilio through this."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from twilio.request_validator import RequestValidator

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


def new_token() -> str:
    return secrets.token_hex(16)


def new_caller_number() -> str:
    """A caller's number of its own (in the 555 range no one is given): many calls from one
    number meet a deployment's MAX_CALLS_PER_NUMBER_PER_HOUR, as real callers do not."""
    return f"+1555{secrets.randbelow(10**7):07d}"


@dataclass(kw_only=True)
class Twilio:
    """Signs as Twilio does: for `public_base_url` + path when set (the URL Twilio calls),
    else for the URL actually requested. Without a token nothing is signed."""

    auth_token: str = ""
    public_base_url: str = ""
    account_sid: str = "AC" + "0" * 32
    caller: str = "+15551230000"
    callee: str = "+15559870000"

    def headers(self, base_url: str, path: str, params: Mapping[str, str]) -> dict[str, str]:
        """Headers of one delivery: form type, signature, a fresh idempotency token."""
        return {**self.signed(base_url, path, params), "I-Twilio-Idempotency-Token": new_token()}

    def signed(self, base_url: str, path: str, params: Mapping[str, str]) -> dict[str, str]:
        """The form type and the signature alone (a retry reuses its first token)."""
        url = (self.public_base_url or base_url).rstrip("/") + "/" + path.lstrip("/")
        return {**FORM, **self.signature(url, params)}

    def signature(self, url: str, params: Mapping[str, str]) -> dict[str, str]:
        """X-Twilio-Signature for `url` and `params` (none without a token). A WebSocket
        upgrade is signed over its wss:// URL with no parameters."""
        if not self.auth_token:
            return {}
        validator = RequestValidator(self.auth_token)
        return {"X-Twilio-Signature": validator.compute_signature(url, dict(params))}

    def call_params(self, call_sid: str, **extra: str) -> dict[str, str]:
        """The parameters Twilio sends with every voice webhook of an inbound call."""
        return {
            "CallSid": call_sid,
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "Direction": "inbound",
            "From": self.caller,
            "Caller": self.caller,
            "To": self.callee,
            "Called": self.callee,
            "CallStatus": "in-progress",
            "FromCountry": "US",
            "ToCountry": "US",
            **extra,
        }


def post_webhook(
    base_url: str, twilio: Twilio, path: str, params: Mapping[str, str], timeout: float = 10.0
) -> httpx.Response:
    """One webhook delivery to the deployment at `base_url`, signed as Twilio signs."""
    base_url = base_url.rstrip("/")
    return httpx.post(
        f"{base_url}{path}",
        data=dict(params),
        headers=twilio.headers(base_url, path, params),
        timeout=timeout,
    )


def ring(base_url: str, twilio: Twilio, call_sid: str, timeout: float = 10.0) -> httpx.Response:
    """Ring the deployment as Twilio does: a signed POST /api/voice for a new call."""
    return post_webhook(base_url, twilio, "/api/voice", twilio.call_params(call_sid), timeout)
