"""The simulator's TwiML handling, against deployments made up with httpx.MockTransport."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest
from twilio.request_validator import RequestValidator
from websockets.sync.server import ServerConnection, serve

from aura_phone.cli import main
from aura_phone.relay import Action, RelayError, RelayPlayer
from aura_phone.simulator import Call, CallError, Input, Turn
from aura_phone.twilio import Twilio

TOKEN = "phone-token"


def deployment(answers: dict[str, str], seen: list[tuple[str, dict[str, str]]]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        params = dict(parse_qsl(request.content.decode(), keep_blank_values=True))
        url = str(request.url)
        assert RequestValidator(TOKEN).validate(url, params, request.headers["X-Twilio-Signature"])
        seen.append(
            (
                request.url.path + ("?" + request.url.query.decode() if request.url.query else ""),
                params,
            )
        )
        return httpx.Response(200, text=answers.get(seen[-1][0], "<Response/>"))

    return httpx.Client(transport=httpx.MockTransport(handle))


def call(answers: dict[str, str], seen: list[tuple[str, dict[str, str]]]) -> Call:
    return Call("http://aura.test", TOKEN, client=deployment(answers, seen))


def always(choice: Input) -> Callable[[Turn], Input]:
    return lambda turn: choice


def test_follows_gather_redirect_and_hangup_then_reports_status() -> None:
    seen: list[tuple[str, dict[str, str]]] = []
    answers = {
        "/api/voice": '<Response><Gather input="speech dtmf" action="/api/voice/process?n=1">'
        "<Say>Hi</Say></Gather></Response>",
        "/api/voice/process?n=1": "<Response><Redirect>/api/voice/next</Redirect></Response>",
        "/api/voice/next": "<Response><Say>Bye</Say><Hangup/></Response>",
    }
    placed = call(answers, seen)
    placed.start(always(Input("speech", "hello")))
    assert [path for path, _ in seen] == [
        "/api/voice",
        "/api/voice/process?n=1",
        "/api/voice/next",
        "/api/voice/status",
    ]
    assert seen[1][1]["SpeechResult"] == "hello"
    assert seen[-1][1]["CallStatus"] == "completed"
    assert {p["CallSid"] for _, p in seen} == {placed.call_sid}
    assert [t.heard for t in placed.turns] == [["Hi"], [], ["Bye"]]
    assert placed.turns[-1].hung_up


def test_a_keypad_only_prompt_gets_the_prompt_key_and_leaves_the_script_alone() -> None:
    seen: list[tuple[str, dict[str, str]]] = []
    answers = {
        "/api/voice": '<Response><Gather input="dtmf" action="/notice"><Say>Recorded.</Say>'
        "</Gather></Response>",
        "/notice": '<Response><Gather input="speech" action="/x"><Say>Hi</Say></Gather></Response>',
        "/x": "<Response><Hangup/></Response>",
    }
    ended: list[str] = []
    placed = call(answers, seen)
    placed.prompt_key, placed.on_end = "9", ended.append
    spoken = iter([Input("speech", "hello")])
    placed.start(lambda turn: next(spoken))
    assert [p.get("Digits") for path, p in seen if path == "/notice"] == ["9"]
    assert [p.get("SpeechResult") for path, p in seen if path == "/x"] == ["hello"]
    assert ended == [placed.call_sid]


def test_silence_without_action_on_empty_result_falls_through() -> None:
    seen: list[tuple[str, dict[str, str]]] = []
    answers = {
        "/api/voice": '<Response><Gather input="speech" action="/x"><Say>Hi</Say>'
        "</Gather><Say>Nobody there?</Say><Hangup/></Response>"
    }
    placed = call(answers, seen)
    placed.start(always(Input("silence")))
    assert placed.turns[0].heard == ["Hi", "Nobody there?"]
    assert [path for path, _ in seen] == ["/api/voice", "/api/voice/status"]


def test_digits_and_dial() -> None:
    seen: list[tuple[str, dict[str, str]]] = []
    answers = {
        "/api/voice": '<Response><Gather input="dtmf speech" action="/k"><Say>Press</Say>'
        "</Gather></Response>",
        "/k": "<Response><Say>Connecting</Say><Dial>+15550001234</Dial></Response>",
    }
    placed = call(answers, seen)
    placed.start(always(Input("digits", "0")))
    assert seen[1][1]["Digits"] == "0"
    assert placed.turns[-1].dialed == "+15550001234"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ("not xml at all", "not TwiML"),
        ("<Html/>", "root element is <Html>"),
        ("<Response><Enqueue>q</Enqueue></Response>", "does not understand: ['Enqueue']"),
    ],
)
def test_unknown_answers_are_clear_errors(body: str, complaint: str) -> None:
    with pytest.raises(CallError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        call({"/api/voice": body}, []).start(always(Input("hangup")))


def test_forbidden_says_to_check_the_token() -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(403)))
    with pytest.raises(CallError, match="refused the signature"):
        Call("http://aura.test", "wrong", client=client).start(always(Input("hangup")))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hello there", Input("speech", "hello there")),
        ("#5", Input("digits", "5")),
        ("", Input("silence")),
        (None, Input("hangup")),
    ],
)
def test_interactive_syntax(line: str | None, expected: Input) -> None:
    assert Input.parse(line) == expected


@pytest.mark.parametrize(
    ("script", "complaint"),
    [
        ("steps: []", "steps: List should have at least 1 item"),
        ("steps:\n  - say: a\n    press: '1'", "steps.0: Value error, only one of"),
        ("steps:\n  - say: a\n  - shout: a", "steps.1.shout: Extra inputs are not permitted"),
        ("- say: a", "the file: Input should be a valid dictionary"),
        ("[", "cannot read"),
    ],
)
def test_malformed_scripts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], script: str, complaint: str
) -> None:
    path = tmp_path / "script.yaml"
    path.write_text(script)
    assert main(["--url", "http://127.0.0.1:9", "--script", str(path)]) == 1
    assert complaint in capsys.readouterr().err


@contextlib.contextmanager
def answering(seen: list[dict[str, str]]) -> Iterator[str]:
    """An HTTP deployment on loopback that greets and hangs up, keeping each form it got."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            seen.append(dict(parse_qsl(body, keep_blank_values=True)))
            answer = b"<Response><Say>How can I help?</Say><Hangup/></Response>"
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join(timeout=5)


def test_the_command_lines_numbers_win_over_the_scripts(tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text('from: "+15551230000"\nto: "+15559870000"\nsteps:\n  - hear: help\n')
    seen: list[dict[str, str]] = []
    with answering(seen) as url:
        assert main(["--url", url, "--script", str(script), "--quiet"]) == 0
        assert (
            main(["--url", url, "--script", str(script), "--quiet", "--from", "+15550001111"]) == 0
        )
    rung = [
        (form["From"], form["To"]) for form in seen if "CallStatus" in form and form.get("From")
    ]
    assert rung[0] == ("+15551230000", "+15559870000")
    assert ("+15550001111", "+15559870000") in rung


# --- a relay deployment that goes away ------------------------------------------------------


@contextlib.contextmanager
def relay_server(behave: Callable[[ServerConnection], None]) -> Iterator[str]:
    """A WebSocket server on loopback that reads the session's `setup`, then `behave`s."""

    def handler(connection: ServerConnection) -> None:
        connection.recv(timeout=5)  # setup
        behave(connection)

    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        host, port = server.socket.getsockname()[:2]
        try:
            yield f"ws://{host}:{port}"
        finally:
            server.shutdown()
            thread.join(timeout=5)


def closes(connection: ServerConnection) -> None:
    connection.close(code=1011, reason="boom")


def drops(connection: ServerConnection) -> None:
    connection.send(json.dumps({"type": "text", "token": "Hello!", "last": True}))
    connection.socket.shutdown(socket.SHUT_RDWR)  # no close frame


@pytest.mark.parametrize(
    ("behave", "said"),
    [
        # Whether the close meets the caller reading or sending, it is reported with its
        # code and reason.
        (closes, "closed with code 1011 (boom)"),
        (drops, "no close frame"),
    ],
)
def test_a_relay_socket_the_deployment_drops_is_reported_plainly(
    behave: Callable[[ServerConnection], None], said: str
) -> None:
    with relay_server(behave) as base:
        player = RelayPlayer(base.replace("ws", "http", 1), Twilio(auth_token=TOKEN), "CA1")
        steps = iter([Action("speech", "hello"), Action("speech", "and?"), Action("hangup")])
        with pytest.raises(RelayError, match=re.escape(said)):
            player.play(f"{base}/api/voice/relay", "", lambda heard: next(steps))
