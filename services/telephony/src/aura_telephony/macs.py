"""Values this deployment puts in URLs it hands to Twilio (a relay ticket, a transfer's
number), with a MAC only it can make: keyed with the auth token, so every replica can
check what comes back, and nobody else can forge one."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from aura_telephony.config import Settings

# Unsigned mode (local development) has no shared secret: MACs hold for this process.
_DEVELOPMENT_KEY = secrets.token_bytes(32)


def value_mac(purpose: str, value: str, settings: Settings) -> str:
    """The MAC of `value` for `purpose` (relay, transfer)."""
    key = settings.TWILIO_AUTH_TOKEN.encode() or _DEVELOPMENT_KEY
    digest = hmac.new(key, f"aura-{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def value_signed(purpose: str, value: str, mac: str, settings: Settings) -> bool:
    """Whether `mac` is this deployment's for `value` (compared as bytes: a MAC from a URL
    may hold any character, which str comparison refuses)."""
    expected = value_mac(purpose, value, settings).encode()
    return hmac.compare_digest(mac.encode("utf-8", "replace"), expected)
