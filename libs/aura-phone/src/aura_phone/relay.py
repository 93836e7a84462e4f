"""Plays Twilio's side of a ConversationRelay session: opens the WebSocket that a
<Connect><ConversationRelay> names, signed like Twilio signs it, sends `setup`, then the
caller's `prompt`s, `dtmf` keys and `interrupt`s, and reads the answer's `text` tokens as
they stream, until the deployment sends `end` or the caller hangs up."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit
from xml.etree import ElementTree

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from aura_phone.twilio import Twilio, ring

RELAY_PATH = "/api/voice/relay"


@dataclass
class Heard:
    """One thing the assistant said in the session: its tokens, and how long the first
    took to arrive after the caller finished speaking."""

    tokens: list[str] = field(default_factory=list)
    first_token_seconds: float | None = None
    interrupted: bool = False

    @property
    def text(self) -> str:
        return "".join(self.tokens).strip()


@dataclass
class Outcome:
    """How the session ended: the handoffData of `end`, or none when the caller hung up."""

    handoff: str = ""
    hung_up: bool = False


class RelayError(Exception):
    """The deployment refused the WebSocket, closed it unexpectedly, or went silent."""


def welcome(base_url: str, twilio: Twilio, call_sid: str, timeout: float = 10.0) -> str:
    """Ring the deployment as Twilio does (a signed POST /api/voice) and return the relay
    URL its answer issued for this call (each call gets its own)."""
    response = ring(base_url, twilio, call_sid, timeout)
    if response.status_code != 200:
        raise RelayError(f"the welcome answered HTTP {response.status_code}")
    relay = ElementTree.fromstring(response.text).find("Connect/ConversationRelay")  # noqa: S314
    if relay is None or not relay.get("url"):
        raise RelayError("the welcome did not connect to ConversationRelay: is VOICE_MODE=relay?")
    return relay.get("url", "")


Kind = Literal["speech", "digits", "silence", "hangup"]


@dataclass(frozen=True)
class Action:
    """What the caller does next in a relay session."""

    kind: Kind
    value: str = ""
    interrupt_after: int = 0  # speak, then cut the answer short after this many tokens


class RelayPlayer:
    def __init__(
        self,
        base_url: str,
        twilio: Twilio,
        call_sid: str,
        *,
        on_token: Callable[[str, float], None] = lambda token, seconds: None,
        silence_seconds: float = 30.0,
        language: str = "en-US",
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._twilio = twilio
        self._call_sid = call_sid
        self._on_token = on_token
        self._silence = silence_seconds
        self._interrupt_after = 0  # of the answer now streaming, from the caller's last step
        self._held: list[str | bytes] = []  # a message read ahead, not yet handled
        self.heard: list[Heard] = []
        # The language the caller speaks in: sent as the recogniser's `lang` with each
        # prompt (a deployment that speaks it switches to it), and changed by `language`.
        self.language = language

    def connect(self, url: str) -> ClientConnection:
        """Open `url`'s path on the deployment, signed for `url` itself (the public wss://
        URL in the TwiML), as Twilio does."""
        parts = urlsplit(url)
        target = self._base_url.replace("http", "ws", 1) + parts.path
        if parts.query:
            target += f"?{parts.query}"
        headers = self._twilio.signature(url, {})
        try:
            return connect(target, additional_headers=headers, open_timeout=10)
        except InvalidStatus as error:
            status = error.response.status_code
            raise RelayError(f"{target} refused the WebSocket (HTTP {status})") from error
        except OSError as error:
            raise RelayError(f"cannot reach {target}: {error}") from error

    def play(
        self,
        url: str,
        greeting: str,
        decide: Callable[[Heard], Action] | None = None,
        typed: queue.Queue[Action] | None = None,
    ) -> Outcome:
        """Run a session. `decide` says what the caller does after each complete answer
        (scripts); `typed` delivers what a person types, at any moment (interactive),
        which interrupts an answer still streaming."""
        socket = self.connect(url)
        with socket:
            try:
                return self._session(socket, greeting, decide, typed)
            except _HungUp:
                return Outcome(hung_up=True)
            except ConnectionClosed as error:  # a send, after the deployment went away
                message = f"the connection to the deployment was lost: {_why(error)}"
                raise RelayError(message) from None

    def _session(
        self,
        socket: ClientConnection,
        greeting: str,
        decide: Callable[[Heard], Action] | None,
        typed: queue.Queue[Action] | None,
    ) -> Outcome:
        socket.send(json.dumps(self._setup()))
        # Twilio speaks the greeting itself; after it (or at once, on a reconnected call
        # that has none) it is the caller's turn.
        current = Heard(tokens=[greeting] if greeting else [])
        if greeting:
            self.heard.append(current)
            self._on_token(greeting, 0.0)
        current = self._next_step(socket, current, decide)
        asked = time.perf_counter()
        waited = 0.0
        while True:
            if typed is not None:
                try:
                    action = typed.get_nowait()
                except queue.Empty:
                    pass
                else:
                    if current.tokens:
                        self._interrupt(socket, current)
                    self._act(socket, action)
                    current, asked, waited = Heard(), time.perf_counter(), 0.0
            try:
                raw = self._held.pop() if self._held else socket.recv(timeout=0.05)
            except TimeoutError:
                waited += 0.05
                if waited > self._silence:
                    raise RelayError(
                        f"nothing from the deployment for {self._silence:.0f} s"
                    ) from None
                continue
            except ConnectionClosed as error:
                # Twilio's sessions end with `end` (or the caller's hang-up), never like this.
                raise RelayError(
                    f"the deployment closed the connection without ending the session: "
                    f"{_why(error)}"
                ) from None
            waited = 0.0
            message = json.loads(raw)
            if message.get("type") == "end":
                return Outcome(handoff=str(message.get("handoffData", "")))
            if message.get("type") == "language":
                # Twilio speaks and listens in another language from here: so does the caller.
                self.language = str(message.get("ttsLanguage") or self.language)
                self._on_token(f"[language: {self.language}] ", time.perf_counter() - asked)
                continue
            if message.get("type") != "text":
                continue
            token = str(message.get("token", ""))
            if token:
                if not current.tokens:
                    current.first_token_seconds = time.perf_counter() - asked
                    self.heard.append(current)
                current.tokens.append(token)
                self._on_token(token, time.perf_counter() - asked)
            if self._interrupt_after and len(current.tokens) >= self._interrupt_after:
                self._interrupt(socket, current)
                current = self._next_step(socket, current, decide)
                asked = time.perf_counter()
            elif message.get("last") and current.tokens:
                # (A bare `last` with nothing before it closes an answer cut short.)
                if self._ends_now(socket):
                    continue  # a farewell: the `end` is next, nothing is asked of the caller
                current = self._next_step(socket, current, decide)
                asked = time.perf_counter()

    def _ends_now(self, socket: ClientConnection) -> bool:
        """Whether the deployment ends the session right after this answer (it sends `end`
        on the heels of a farewell); a caller takes a moment before speaking anyway."""
        try:
            raw = socket.recv(timeout=0.5)
        except (TimeoutError, ConnectionClosed):
            return False
        self._held.append(raw)
        return bool(json.loads(raw).get("type") == "end")

    def _next_step(
        self,
        socket: ClientConnection,
        current: Heard,
        decide: Callable[[Heard], Action] | None,
    ) -> Heard:
        """After an answer (or the part of it heard): what the caller does next, when a
        script decides; a person types instead, at any moment."""
        self._interrupt_after = 0
        if decide is not None:
            action = decide(current)
            self._act(socket, action)
            self._interrupt_after = action.interrupt_after
        return Heard()

    def _act(self, socket: ClientConnection, action: Action) -> None:
        if action.kind == "hangup":
            socket.close()
            raise _HungUp
        if action.kind == "speech":
            socket.send(
                json.dumps(
                    {
                        "type": "prompt",
                        "voicePrompt": action.value,
                        "lang": self.language,
                        "last": True,
                    }
                )
            )
        elif action.kind == "digits":
            for digit in action.value:
                socket.send(json.dumps({"type": "dtmf", "digit": digit}))
        # silence: nothing to send, the deployment speaks when it will

    def _interrupt(self, socket: ClientConnection, current: Heard) -> None:
        current.interrupted = True
        socket.send(
            json.dumps(
                {
                    "type": "interrupt",
                    "utteranceUntilInterrupt": current.text,
                    "durationUntilInterruptMs": 500,
                }
            )
        )

    def _setup(self) -> dict[str, Any]:
        params = self._twilio.call_params(self._call_sid)
        return {
            "type": "setup",
            "sessionId": "VX" + self._call_sid[2:],
            "accountSid": params["AccountSid"],
            "callSid": self._call_sid,
            "from": params["From"],
            "to": params["To"],
            "direction": "inbound",
            "callStatus": "in-progress",
            "customParameters": {},
        }


def _why(error: ConnectionClosed) -> str:
    """What the close said, in a line: its code and reason, or that there was no close."""
    close = error.rcvd
    if close is None:
        return "no close frame (the connection dropped)"
    return f"closed with code {close.code}" + (f" ({close.reason})" if close.reason else "")


class _HungUp(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The caller hung up from inside a step."""
