"""Plays Twilio's side of one call: posts signed webhooks with Twilio's parameters and
follows the TwiML that comes back (<Say>, <Gather>, <Redirect>, <Dial>, <Hangup>, <Pause>,
<Play>), then sends the status callback when the call ends."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit
from xml.etree import ElementTree

import httpx

from aura_phone.relay import RELAY_PATH, Action, Heard, Kind, RelayError, RelayPlayer
from aura_phone.twilio import Twilio, new_call_sid

UNDERSTOOD = {
    "Say",
    "Gather",
    "Redirect",
    "Dial",
    "Hangup",
    "Pause",
    "Play",
    "Reject",
    "Connect",
    "ConversationRelay",
    "Language",
    "Parameter",
}


class CallError(Exception):
    """The deployment could not be reached, refused the call, or answered something that
    is not TwiML this simulator understands. The message says which."""


@dataclass(frozen=True)
class Input:
    """What the caller does at a <Gather>: speak, press keys, or stay silent."""

    kind: Kind
    value: str = ""
    interrupt_after: int = 0  # relay: cut the answer short after this many tokens

    @classmethod
    def parse(cls, line: str | None) -> Input:
        """Interactive syntax: text is speech, `#5` presses 5, an empty line is silence."""
        if line is None:
            return cls("hangup")
        line = line.strip()
        if not line:
            return cls("silence")
        if line.startswith("#") and len(line) > 1:
            return cls("digits", line[1:].strip())
        return cls("speech", line)


@dataclass
class Turn:
    """One request and what the caller heard in reply."""

    path: str
    heard: list[str]
    seconds: float
    hung_up: bool = False
    dialed: str = ""


@dataclass
class Call:
    base_url: str
    auth_token: str = ""
    public_url: str = ""  # the URL Twilio would call, when it differs from base_url
    caller: str = "+15551230000"
    callee: str = "+15559870000"
    account_sid: str = "AC" + "0" * 32  # the deployment's TWILIO_ACCOUNT_SID, when it sets one
    timeout: float = 15.0  # Twilio's own webhook timeout
    call_sid: str = field(default_factory=new_call_sid)
    client: httpx.Client | None = None
    on_say: Callable[[str], None] = lambda text: None
    # Relay sessions: each token as it streams (with seconds since the caller spoke), and
    # what a person types at any moment (which interrupts an answer still streaming).
    on_token: Callable[[str, float], None] | None = None
    typed: queue.Queue[Action] | None = None
    relay: bool = False  # expect ConversationRelay: a <Gather> is then an error
    # The caller's language (a BCP-47 tag): chosen by key when the welcome offers it, and
    # what the caller speaks over ConversationRelay. Empty: the deployment's first.
    language: str = ""
    # A warm transfer: whether the person who answers takes the call (presses 1), and
    # every whisper they heard; the number the call was last put through to.
    takes_transfers: bool = True
    whispers: list[str] = field(default_factory=list)
    dialed: str = ""
    # A keypad-only prompt (the recording notice): the key the caller presses there, if
    # any; the script's steps are for the conversation after it.
    prompt_key: str = ""
    # Told the CallSid once the call has ended (e.g. a fake REST API's end_call).
    on_end: Callable[[str], None] = lambda call_sid: None
    turns: list[Turn] = field(default_factory=list)
    ended: bool = False
    _started: float = field(default_factory=time.monotonic)
    _chose: bool = False
    _twilio: Twilio = field(init=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._twilio = Twilio(
            auth_token=self.auth_token,
            public_base_url=self.public_url,
            caller=self.caller,
            callee=self.callee,
            account_sid=self.account_sid,
        )
        if self.client is None:
            self.client = httpx.Client(timeout=self.timeout)

    @property
    def twilio(self) -> Twilio:
        """How this call's webhooks are signed (and its WebSockets, for a stream)."""
        return self._twilio

    def params(self, **extra: str) -> dict[str, str]:
        """The parameters Twilio sends with every voice webhook of this call."""
        return self._twilio.call_params(self.call_sid, **extra)

    def _post(self, path: str, params: Mapping[str, str]) -> tuple[httpx.Response, float]:
        assert self.client is not None
        headers = self._twilio.headers(self.base_url, path, params)
        url = urljoin(self.base_url + "/", path.lstrip("/"))
        started = time.perf_counter()
        try:
            response = self.client.post(url, data=dict(params), headers=headers)
        except httpx.HTTPError as error:
            raise CallError(f"cannot reach {url}: {error}") from error
        elapsed = time.perf_counter() - started
        if response.status_code == 403:
            raise CallError(
                f"{url} refused the signature (403): check the auth token, and --public-url "
                "if the deployment checks signatures against another URL"
            )
        if response.status_code != 200:
            raise CallError(f"{url} answered HTTP {response.status_code}: {response.text[:200]}")
        return response, elapsed

    def _document(self, response: httpx.Response) -> ElementTree.Element:
        try:
            root = ElementTree.fromstring(response.text)  # noqa: S314 (the deployment under test)
        except ElementTree.ParseError as error:
            raise CallError(f"the answer is not TwiML: {response.text[:200]!r}") from error
        if root.tag != "Response":
            raise CallError(f"the answer is not TwiML: the root element is <{root.tag}>")
        unknown = {child.tag for child in root.iter()} - UNDERSTOOD - {"Response", "Number"}
        if unknown:
            raise CallError(f"TwiML this simulator does not understand: {sorted(unknown)}")
        return root

    def start(self, answer: Callable[[Turn], Input]) -> None:
        """Place the call and follow it until it ends; `answer` decides what the caller does
        at each <Gather>, having seen the turn that asked."""
        self._follow("/api/voice", self.params(CallStatus="ringing"), answer)

    def follow(self, path: str, answer: Callable[[Turn], Input]) -> None:
        """Post `path` as a webhook of this call (e.g. a <Connect action> when a stream
        ended) and follow the call from there."""
        self._follow(path, self.params(), answer)

    def pick_up(
        self, answer_path: str, answer: Callable[[Turn], Input], answered_by: str = "human"
    ) -> None:
        """Answer a call the deployment placed: post its answer URL (path and query) as
        Twilio does once machine detection has decided (`answered_by`: human,
        machine_end_beep, ...), then follow the call as `start` does. `caller` is then the
        deployment's number and `callee` the one it rang."""
        params = self.params(
            CallStatus="in-progress", Direction="outbound-api", AnsweredBy=answered_by
        )
        self._follow(answer_path, params, answer)

    def _follow(self, path: str, params: dict[str, str], answer: Callable[[Turn], Input]) -> None:
        while not self.ended:
            response, elapsed = self._post(path, params)
            turn = Turn(path=urlsplit(path).path, heard=[], seconds=elapsed)
            self.turns.append(turn)
            next_request = self._play(self._document(response), turn, answer)
            if next_request is None:
                self.hang_up()
                return
            path, params = next_request

    def _play(
        self, root: ElementTree.Element, turn: Turn, answer: Callable[[Turn], Input]
    ) -> tuple[str, dict[str, str]] | None:
        """Run one TwiML document; the next request to make, or None when the call ends."""
        for verb in root:
            if verb.tag == "Say":
                self._say(verb, turn)
            elif verb.tag == "Gather":
                offered = verb.findall("Say")
                for nested in offered:
                    self._say(nested, turn)
                inputs = verb.get("input", "dtmf").split()
                action = verb.get("action") or turn.path
                if inputs == ["dtmf"]:
                    # A keypad-only prompt, such as a recording notice, in any voice mode.
                    if self.prompt_key:
                        self.on_say(f"[pressing {self.prompt_key}]")
                    return action, self.params(Digits=self.prompt_key)
                if self.relay:
                    raise CallError(
                        "the deployment answered with <Gather>, not ConversationRelay: "
                        "is it running with VOICE_MODE=relay?"
                    )
                digit = self._offer(offered)
                if digit:
                    self.on_say(f"[choosing {self.language}: pressing {digit}]")
                    return verb.get("action") or turn.path, self.params(Digits=digit)
                choice = answer(turn)
                if choice.kind == "hangup":
                    return None
                if choice.kind == "speech" and "speech" in inputs:
                    return action, self.params(SpeechResult=choice.value, Confidence="0.92")
                if choice.kind == "digits" and "dtmf" in inputs:
                    return action, self.params(Digits=choice.value)
                if verb.get("actionOnEmptyResult") == "true":
                    return action, self.params(SpeechResult="")
                # Twilio moves on to the verbs after <Gather> when nothing was gathered.
            elif verb.tag == "Connect":
                return self._connect(verb, turn, answer)
            elif verb.tag == "Redirect":
                return (verb.text or "").strip() or turn.path, self.params()
            elif verb.tag == "Dial":
                number = (verb.findtext("Number") or verb.text or "").strip()
                turn.dialed = self.dialed = number
                self.on_say(f"[transferring the call to {number}]")
                screen = verb.find("Number")
                if screen is None or not screen.get("url"):
                    return None
                # A warm transfer: the person who answers hears the whisper first.
                taken = self._answer_transfer(screen.get("url", ""), number)
                if not verb.get("action"):
                    return None
                status = "completed" if taken else "no-answer"
                return verb.get("action", ""), self.params(DialCallStatus=status)
            elif verb.tag in ("Hangup", "Reject"):
                turn.hung_up = True
                return None
        return None  # Twilio hangs up at the end of a document

    def _offer(self, says: list[ElementTree.Element]) -> str:
        """The key that chooses the caller's language, when this <Gather> offers it (the
        welcome offers each other language, in it, after its own greeting), else ""."""
        if not self.language or self._chose:
            return ""
        for index, say in enumerate(says[1:], start=2):
            if (say.get("language") or "").lower() == self.language.lower():
                self._chose = True
                return str(index)
        return ""

    def _connect(
        self, verb: ElementTree.Element, turn: Turn, answer: Callable[[Turn], Input]
    ) -> tuple[str, dict[str, str]] | None:
        """A ConversationRelay session; then the <Connect action> webhook, as Twilio posts
        it when the session ends (the answer to it continues the call)."""
        relay = verb.find("ConversationRelay")
        if relay is None or not relay.get("url"):
            raise CallError("<Connect> without a <ConversationRelay url=...>")

        def decide(heard: Heard) -> Action:
            step = Turn(path=RELAY_PATH, heard=[heard.text], seconds=heard.first_token_seconds or 0)
            self.turns.append(step)
            choice = answer(step)
            return Action(choice.kind, choice.value, choice.interrupt_after)

        player = RelayPlayer(
            self.base_url,
            self._twilio,
            self.call_sid,
            on_token=self.on_token or (lambda token, seconds: None),
            language=self.language or "en-US",
        )
        try:
            outcome = player.play(
                relay.get("url", ""),
                relay.get("welcomeGreeting", ""),
                decide=None if self.typed is not None else decide,
                typed=self.typed,
            )
        except RelayError as error:
            raise CallError(str(error)) from error
        decided = sum(1 for t in self.turns if t.path == RELAY_PATH)
        for heard in player.heard[decided:]:  # what was said last, with nothing asked after
            self.turns.append(Turn(RELAY_PATH, [heard.text], heard.first_token_seconds or 0))
        if outcome.hung_up or not verb.get("action"):
            return None
        status = "ended" if outcome.handoff else "completed"
        return verb.get("action", ""), self.params(
            SessionId="VX" + self.call_sid[2:], SessionStatus=status, HandoffData=outcome.handoff
        )

    def _answer_transfer(self, url: str, number: str) -> bool:
        """Play the person who answers a warm transfer: their leg (a child call of this
        one) asks for the whisper, hears it, and presses 1 (`takes_transfers`) or not.
        Whether they took the call."""
        child = new_call_sid()
        leg = self._twilio.call_params(
            child,
            ParentCallSid=self.call_sid,
            Direction="outbound-dial",
            From=self.callee,
            To=number,
            CallStatus="in-progress",
        )
        response, _ = self._post(url, leg)
        gather = self._document(response).find("Gather")
        if gather is None:
            return False
        heard = " ".join((say.text or "") for say in gather.findall("Say"))
        self.whispers.append(heard)
        self.on_say(f"[{number} hears: {heard}]")
        digits = "1" if self.takes_transfers else ""
        answer, _ = self._post(gather.get("action", url), {**leg, "Digits": digits})
        taken = self.takes_transfers and self._document(answer).find("Hangup") is None
        self.on_say(f"[{number} {'takes the call' if taken else 'does not take the call'}]")
        return taken

    def _say(self, verb: ElementTree.Element, turn: Turn) -> None:
        text = verb.text or ""
        turn.heard.append(text)
        self.on_say(text)

    def hang_up(self, status: str = "completed") -> None:
        """End the call and send the status callback, as Twilio does."""
        if self.ended:
            return
        self.ended = True
        duration = str(max(1, round(time.monotonic() - self._started)))
        self._post("/api/voice/status", self.params(CallStatus=status, CallDuration=duration))
        self.on_end(self.call_sid)
