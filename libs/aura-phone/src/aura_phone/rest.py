"""Twilio's REST API for placing calls (POST /2010-04-01/Accounts/{Sid}/Calls.json), as
much of it as Aura uses, on a local port: point TWILIO_API_BASE_URL at it. It checks the
account's credentials and the numbers as Twilio does (with Twilio's error codes), answers
with the call resource, and hands each placed call to `on_call`, which can play the
callee with the phone simulator."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aura_phone.twilio import new_call_sid

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_CALLS = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})/Calls\.json$")


@dataclass(frozen=True)
class PlacedCall:
    """One call Aura asked Twilio to place."""

    sid: str
    params: dict[str, str]

    @property
    def answer_path(self) -> str:
        """The answer URL's path and query, to post to the deployment under test."""
        parts = urlsplit(self.params.get("Url", ""))
        return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass
class FakeTwilioRest:
    account_sid: str
    auth_token: str
    # Caller IDs the account may use (Twilio refuses others with 21210); empty: any.
    verified_numbers: tuple[str, ...] = ()
    on_call: Callable[[PlacedCall], None] = lambda call: None
    calls: list[PlacedCall] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: the simulator prints what matters

            def do_POST(self) -> None:
                status, body = fake.handle(self.path, self.headers.get("Authorization", ""), self)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://{host}:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def handle(
        self, path: str, authorization: str, request: BaseHTTPRequestHandler
    ) -> tuple[int, dict[str, Any]]:
        match = _CALLS.match(urlsplit(path).path)
        if match is None:
            return 404, _error(404, 20404, "The requested resource was not found")
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if authorization != f"Basic {expected}" or match["account"] != self.account_sid:
            return 401, _error(401, 20003, "Authenticate")
        length = int(request.headers.get("Content-Length") or 0)
        params = dict(parse_qsl(request.rfile.read(length).decode()))
        to, caller = params.get("To", ""), params.get("From", "")
        if not _E164.match(to):
            return 400, _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not params.get("Url") and not params.get("Twiml"):
            return 400, _error(400, 21205, "Url or Twiml is required")
        if self.verified_numbers and caller not in self.verified_numbers:
            message = (
                f"The source phone number provided, {caller}, is not yet verified for your account."
            )
            return 400, _error(400, 21210, message)
        placed = PlacedCall(new_call_sid(), params)
        self.calls.append(placed)
        threading.Thread(target=self.on_call, args=(placed,), daemon=True).start()
        return 201, {
            "sid": placed.sid,
            "account_sid": self.account_sid,
            "to": to,
            "from": caller,
            "status": "queued",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{placed.sid}.json",
        }


def _error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
