"""Twilio's REST API, as much of it as Aura uses, on a local port: point
TWILIO_API_BASE_URL at it. It checks the account's credentials as Twilio does (with
Twilio's error codes) and serves

- placing calls (POST .../Calls.json): the numbers are checked, the call resource
  answered, and each placed call handed to `on_call`, which can play the callee with the
  phone simulator;
- recording calls (POST .../Calls/{CallSid}/Recordings.json to start, GET it to list,
  POST .../Recordings/{Sid or Twilio.CURRENT}.json with Status=stopped to stop): each
  recording's status callbacks are posted signed with the auth token, as Twilio does
  (in-progress when asked, completed with a duration and media URL when it is stopped or
  its call ends: `end_call`). `fail_creates` loses the answers of the next starts (the
  recording is started all the same), as a network would."""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from aura_phone.twilio import Twilio, new_call_sid

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_ACCOUNT = r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})"
_CALLS = re.compile(_ACCOUNT + r"/Calls\.json$")
_RECORDINGS = re.compile(_ACCOUNT + r"/Calls/(?P<call>CA[0-9a-fA-F]{32})/Recordings\.json$")
_RECORDING = re.compile(
    _ACCOUNT
    + r"/Calls/(?P<call>CA[0-9a-fA-F]{32})/Recordings/(?P<sid>RE[0-9a-fA-F]{32}|Twilio\.CURRENT)"
    + r"\.json$"
)


@dataclass
class FakeRecording:
    """One recording Aura started: what it asked for, and what became of it."""

    sid: str
    call_sid: str
    params: dict[str, list[str]]
    status: str = "in-progress"
    started: float = field(default_factory=time.monotonic)
    duration: int = 0

    @property
    def callback(self) -> str:
        return (self.params.get("RecordingStatusCallback") or [""])[0]

    @property
    def events(self) -> set[str]:
        # Sent as repeated parameters by the SDK, or space-separated as Twilio documents.
        asked = " ".join(self.params.get("RecordingStatusCallbackEvent") or ["completed"])
        return set(asked.split())


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
    recordings: list[FakeRecording] = field(default_factory=list)
    # Starts whose answer is lost (the recording is started all the same).
    fail_creates: int = 0
    # Where recording callbacks are posted, when not to their own URL (which is what is
    # signed): the deployment's address as this machine reaches it.
    callback_base: str = ""
    # False: callbacks are only kept in `callbacks` (url, params), for a test to deliver.
    post_callbacks: bool = True
    callbacks: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""  # where it listens, once started
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: the simulator prints what matters

            def do_GET(self) -> None:
                self.do_POST()

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
        self.url = f"http://{host}:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def handle(
        self, path: str, authorization: str, request: BaseHTTPRequestHandler
    ) -> tuple[int, dict[str, Any]]:
        target = urlsplit(path).path
        match = _CALLS.match(target) or _RECORDINGS.match(target) or _RECORDING.match(target)
        if match is None:
            return 404, _error(404, 20404, "The requested resource was not found")
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if authorization != f"Basic {expected}" or match["account"] != self.account_sid:
            return 401, _error(401, 20003, "Authenticate")
        length = int(request.headers.get("Content-Length") or 0)
        form = parse_qs(request.rfile.read(length).decode())
        if match.re is _RECORDINGS:
            if request.command == "GET":
                return 200, self._listed(match["call"])
            return self._start(match["call"], form)
        if match.re is _RECORDING:
            return self._update(match["call"], match["sid"], form)
        return self._place({k: v[-1] for k, v in form.items()})

    def _place(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
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

    # --- recordings ---------------------------------------------------------------

    def _start(self, call_sid: str, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        channels = (form.get("RecordingChannels") or ["mono"])[0]
        if channels not in ("mono", "dual"):
            return 400, _error(400, 21626, f"Invalid RecordingChannels {channels}")
        with self._lock:  # a second start makes a second recording, as with Twilio
            recording = FakeRecording("RE" + secrets.token_hex(16), call_sid, form)
            self.recordings.append(recording)
            lost = self.fail_creates > 0
            self.fail_creates -= 1 if lost else 0
        if "in-progress" in recording.events:
            self._callback(recording)
        if lost:
            return 500, _error(500, 20500, "Internal Server Error")
        return 201, self._resource(recording)

    def _listed(self, call_sid: str) -> dict[str, Any]:
        with self._lock:
            mine = [self._resource(r) for r in self.recordings if r.call_sid == call_sid]
        return {"recordings": mine, "page": 0, "page_size": 50, "next_page_uri": None}

    def _update(
        self, call_sid: str, sid: str, form: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        status = (form.get("Status") or [""])[0]
        if status not in ("stopped", "paused", "in-progress"):
            return 400, _error(400, 21626, f"Invalid Status {status}")
        with self._lock:
            found = [
                r
                for r in self.recordings
                if r.call_sid == call_sid
                and (r.sid == sid or (sid == "Twilio.CURRENT" and r.status == "in-progress"))
            ]
        if not found or found[-1].status != "in-progress":
            return 404, _error(404, 20404, "The requested resource was not found")
        recording = found[-1]
        if status == "stopped":
            self._complete(recording)
        return 200, self._resource(recording)

    def end_call(self, call_sid: str) -> None:
        """The call ended: its recording is done, and Twilio says so (posted before this
        returns, so that a simulator that exits next does not lose it)."""
        for recording in [r for r in self.recordings if r.call_sid == call_sid]:
            if recording.status == "in-progress":
                self._complete(recording, wait=True)

    def _complete(self, recording: FakeRecording, wait: bool = False) -> None:
        recording.status = "completed"
        recording.duration = max(1, round(time.monotonic() - recording.started))
        if "completed" in recording.events:
            self._callback(recording, wait)

    def media_url(self, recording: FakeRecording) -> str:
        return (
            f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}"
            f"/Recordings/{recording.sid}"
        )

    def _resource(self, recording: FakeRecording) -> dict[str, Any]:
        dual = (recording.params.get("RecordingChannels") or ["mono"])[0] == "dual"
        return {
            "sid": recording.sid,
            "account_sid": self.account_sid,
            "call_sid": recording.call_sid,
            "status": recording.status,
            "channels": 2 if dual else 1,
            "duration": str(recording.duration) if recording.status == "completed" else "-1",
            "source": "StartCallRecordingAPI",
            "track": "both",
            "api_version": "2010-04-01",
            "uri": (
                f"/2010-04-01/Accounts/{self.account_sid}/Calls/{recording.call_sid}"
                f"/Recordings/{recording.sid}.json"
            ),
        }

    def _callback(self, recording: FakeRecording, wait: bool = False) -> None:
        resource = self._resource(recording)
        params = {
            "AccountSid": self.account_sid,
            "CallSid": recording.call_sid,
            "RecordingSid": recording.sid,
            "RecordingStatus": recording.status,
            "RecordingUrl": self.media_url(recording),
            "RecordingChannels": str(resource["channels"]),
            "RecordingSource": "StartCallRecordingAPI",
            "RecordingTrack": "both",
            "RecordingStartTime": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
        }
        if recording.status == "completed":
            params["RecordingDuration"] = str(recording.duration)
        url = recording.callback
        self.callbacks.append((url, params))
        if self.post_callbacks and url:
            post = threading.Thread(target=self._post_callback, args=(url, params), daemon=True)
            post.start()
            if wait:
                post.join()

    def _post_callback(self, url: str, params: dict[str, str]) -> None:
        parts = urlsplit(url)
        target = (self.callback_base.rstrip("/") + parts.path) if self.callback_base else url
        headers = Twilio(auth_token=self.auth_token).signature(url, params)
        try:
            httpx.post(target, data=params, headers=headers, timeout=10.0)
        except httpx.HTTPError:
            return  # Twilio does not retry a recording callback either


def _error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
