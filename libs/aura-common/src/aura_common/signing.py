"""How Aura signs what it sends to a business's own services (HTTP tools, post-call
webhooks), so that they can check it came from Aura and is fresh:

    X-Aura-Timestamp: <unix seconds>
    X-Aura-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Aura-Timestamp"
SIGNATURE_HEADER = "X-Aura-Signature"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Aura-Signature value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def signed_headers(secret: str, body: bytes) -> dict[str, str]:
    """The two headers for `body`, signed now."""
    timestamp = str(int(time.time()))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)}
