"""Telephony as a real process against clients that misbehave at the HTTP level: slow or
silent clients are cut off at the read deadlines, too many connections get 503, and a
SIGTERM lets a turn in flight finish."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from aura_dev.stack import Stack
from aura_phone.relay import welcome
from aura_phone.twilio import Twilio
from tests.support import eventually
from tests.support.fake_vendors import FakeOpenAI, Reply, serving_in_thread
from tests.support.twilio import TwilioPlayer, Twiml, new_call_sid

TOKEN = "limits-token"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(
        env={
            "TWILIO_AUTH_TOKEN": TOKEN,
            "HTTP_HEADER_TIMEOUT_SECONDS": "1",
            "HTTP_BODY_TIMEOUT_SECONDS": "1",
            "HTTP_MAX_CONNECTIONS": "20",
        },
        log_dir=tmp_path,
        cwd=tmp_path,
    )
    with stack.running():
        yield stack


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server closes the connection within 10 s (and sends nothing)."""
    sock.settimeout(10)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_slow_and_silent_clients_are_cut_off(stack: Stack) -> None:
    host, port = stack.host, stack.telephony_port
    silent = [socket.create_connection((host, port), timeout=5) for _ in range(5)]
    trickling = []
    for _ in range(5):
        sock = socket.create_connection((host, port), timeout=5)
        sock.sendall(b"POST /api/voice HTTP/1.1\r\nHost: x\r\n")  # the headers never end
        trickling.append(sock)
    slow_body = socket.create_connection((host, port), timeout=5)
    slow_body.sendall(
        b"POST /api/voice HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\nCallSid="
    )
    try:
        assert all(closed_by_server(s) for s in [*silent, *trickling])
        assert closed_by_server(slow_body)
        # Meanwhile, and afterwards, well-behaved requests are served.
        assert httpx.get(f"{stack.base_url}/health", timeout=5).status_code == 200
    finally:
        for sock in [*silent, *trickling, slow_body]:
            sock.close()


def test_connections_past_the_limit_get_503(stack: Stack) -> None:
    held = [socket.create_connection((stack.host, stack.telephony_port)) for _ in range(20)]
    try:
        response = httpx.get(f"{stack.base_url}/health", timeout=5)
        assert response.status_code == 503
    finally:
        for sock in held:
            sock.close()


def test_sigterm_lets_the_turn_in_flight_finish(tmp_path: Path) -> None:
    fake = FakeOpenAI()
    fake.default = Reply("We open at nine.", delay=1.5)  # slow enough to be mid-turn
    with serving_in_thread(fake):
        stack = Stack(
            env={
                "TWILIO_AUTH_TOKEN": TOKEN,
                "AI_PROVIDER": "openai",
                "OPENAI_API_KEY": "sk-local",
                "OPENAI_BASE_URL": f"{fake.base_url}/v1",
            },
            log_dir=tmp_path,
            cwd=tmp_path,
        )
        with stack.running(), httpx.Client(base_url=stack.base_url, timeout=20) as client:
            twilio = TwilioPlayer(client=client, auth_token=TOKEN)
            params = twilio.call_params(new_call_sid(), SpeechResult="when do you open")
            answers: list[httpx.Response] = []
            turn = threading.Thread(
                target=lambda: answers.append(twilio.post("/api/voice/process", params))
            )
            turn.start()
            eventually(lambda: len(fake.requests) == 1, what="the turn reaching the model")
            stack.processes["telephony"].send_signal(signal.SIGTERM)
            turn.join(timeout=30)
            assert stack.processes["telephony"].wait(timeout=30) == 0
    (answer,) = answers
    assert answer.status_code == 200
    assert Twiml(answer.text).spoken == "We open at nine."


def test_headers_past_the_bound_get_431_at_once(stack: Stack) -> None:
    """A client sending an endless header is refused as soon as it passes the bound, not
    buffered until the header deadline."""
    sock = socket.create_connection((stack.host, stack.telephony_port), timeout=5)
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: ")
        with contextlib.suppress(OSError):  # the server may close while we still send
            for _ in range(64):
                sock.sendall(b"a" * 16384)
        sock.settimeout(5)
        assert sock.recv(1024).startswith(b"HTTP/1.1 431 ")
    finally:
        sock.close()
    # Headers of an ordinary size are served as before.
    big_but_fine = {"X-Padding": "a" * 8000}
    assert httpx.get(f"{stack.base_url}/health", headers=big_but_fine).status_code == 200


# --- relay sockets --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def relay_model() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(script_summaries=False)
    with serving_in_thread(fake):
        yield fake


def relay_stack(tmp_path: Path, model: FakeOpenAI, **extra: str) -> Stack:
    env = {
        "TWILIO_AUTH_TOKEN": TOKEN,
        "VOICE_MODE": "relay",
        "AI_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-local",
        "OPENAI_BASE_URL": f"{model.base_url}/v1",
        "HTTP_MAX_CONNECTIONS": "20",
        "RELAY_SETUP_SECONDS": "1",
        "RELAY_SEND_SECONDS": "1",
        "DRAIN_SECONDS": "1",
        "MAX_CALLS_PER_NUMBER_PER_HOUR": "0",
        **extra,
    }
    return Stack(env=env, log_dir=tmp_path, cwd=tmp_path)


def open_session(
    stack: Stack, setup: bool = True, sock: socket.socket | None = None
) -> ClientConnection:
    """A signed relay socket on the URL a welcome issued, set up unless told not to."""
    twilio = Twilio(auth_token=TOKEN)
    call_sid = new_call_sid()
    url = welcome(stack.base_url, twilio, call_sid)
    target = url.replace(f"ws://{stack.host}:{stack.telephony_port}", stack.base_url, 1)
    socket_ = connect(
        target.replace("http", "ws", 1),
        additional_headers=twilio.signature(url, {}),
        open_timeout=10,
        sock=sock,
        max_size=None,
    )
    if setup:
        socket_.send(json.dumps({"type": "setup", "callSid": call_sid}))
    return socket_


def relay_sessions(stack: Stack) -> float:
    found = re.search(r"^aura_relay_sessions (\S+)$", stack.metrics("telephony"), re.MULTILINE)
    return float(found.group(1)) if found else -1.0


def until_closed(socket_: ClientConnection) -> tuple[list[dict[str, object]], int | None]:
    """What the server sends until it closes the socket (it must, within 10 s of each
    message): the messages, and the close code."""
    messages: list[dict[str, object]] = []
    try:
        while True:
            messages.append(json.loads(socket_.recv(timeout=10)))
    except ConnectionClosed as closed:
        return messages, closed.rcvd.code if closed.rcvd else None


def test_relay_sockets_leave_webhooks_and_health_their_capacity(
    tmp_path: Path, relay_model: FakeOpenAI
) -> None:
    stack = relay_stack(tmp_path, relay_model, RELAY_MAX_SESSIONS="30", RELAY_IDLE_SECONDS="60")
    with stack.running(), contextlib.ExitStack() as sockets:
        for _ in range(25):  # more than HTTP_MAX_CONNECTIONS, all set up and live
            sockets.enter_context(open_session(stack))
        eventually(lambda: relay_sessions(stack) == 25, what="25 live sessions")
        assert httpx.get(f"{stack.base_url}/health", timeout=5).status_code == 200
        twilio = Twilio(auth_token=TOKEN)
        assert welcome(stack.base_url, twilio, new_call_sid())  # POST /api/voice: 200
        # Past RELAY_MAX_SESSIONS a new upgrade is refused; the webhooks still answer.
        for _ in range(5):
            sockets.enter_context(open_session(stack))
        with pytest.raises(InvalidStatus):
            open_session(stack)
        assert httpx.get(f"{stack.base_url}/health", timeout=5).status_code == 200


def test_a_socket_without_setup_or_after_its_end_is_closed(
    tmp_path: Path, relay_model: FakeOpenAI
) -> None:
    stack = relay_stack(tmp_path, relay_model)
    with stack.running():
        silent = open_session(stack, setup=False)
        assert until_closed(silent) == ([], 1008)
        # A session told to end (here: the caller's goodbye) whose client keeps the
        # socket open is closed by the server, and stops counting as live.
        ended = open_session(stack)
        ended.send(json.dumps({"type": "prompt", "voicePrompt": "goodbye", "last": True}))
        messages, _ = until_closed(ended)
        assert messages[-1]["type"] == "end"
        eventually(lambda: relay_sessions(stack) == 0, what="no live sessions")


# Long sentences, so that an answer fills the socket's buffers when nobody reads it.
FLOOD = Reply(
    "",
    chunks=tuple(("word " * 20_000).strip() + ". " for _ in range(80)),
)


def frame(text: str) -> bytes:
    """One masked text frame, as a WebSocket client sends it (RFC 6455, section 5.2)."""
    payload = text.encode()
    mask = os.urandom(4)
    size = len(payload)
    head = bytes([0x81]) + (
        bytes([0x80 | size])
        if size < 126
        else bytes([0x80 | 126]) + size.to_bytes(2, "big")
        if size < 65536
        else bytes([0x80 | 127]) + size.to_bytes(8, "big")
    )
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def never_reading_session(stack: Stack) -> socket.socket:
    """A signed relay session by hand, on a socket with a tiny receive buffer that the
    test never reads from after the handshake (a WebSocket library would read ahead)."""
    twilio = Twilio(auth_token=TOKEN)
    call_sid = new_call_sid()
    url = welcome(stack.base_url, twilio, call_sid)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((stack.host, stack.telephony_port))
    headers = {
        "Host": f"{stack.host}:{stack.telephony_port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **twilio.signature(url, {}),
    }
    path = url.split(str(stack.telephony_port), 1)[1]
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(request.encode() + b"\r\n")
    sock.settimeout(10)
    assert sock.recv(12) == b"HTTP/1.1 101"
    sock.sendall(frame(json.dumps({"type": "setup", "callSid": call_sid})))
    sock.sendall(frame(json.dumps({"type": "prompt", "voicePrompt": "tell me", "last": True})))
    return sock


def test_a_client_that_never_reads_is_closed_and_does_not_block_shutdown(
    tmp_path: Path, relay_model: FakeOpenAI
) -> None:
    relay_model.default = FLOOD
    stack = relay_stack(tmp_path, relay_model, RELAY_IDLE_SECONDS="60")
    with stack.running():
        first = never_reading_session(stack)
        # Its sends stop being taken: past RELAY_SEND_SECONDS the session is closed.
        eventually(lambda: relay_events(stack, "stalled") == 1, what="the stalled session")
        eventually(lambda: relay_sessions(stack) == 0, what="no live sessions")
        # Another such session when the pod is stopped: the drain and the stop are bounded
        # (the drain, a send's deadline, the graceful stop), not waiting for the client.
        second = never_reading_session(stack)
        eventually(lambda: relay_sessions(stack) == 1, what="the second session live")
        stack.processes["telephony"].send_signal(signal.SIGTERM)
        assert stack.processes["telephony"].wait(timeout=30) == 0
        first.close()
        second.close()


def relay_events(stack: Stack, event: str) -> float:
    pattern = rf'^aura_relay_events_total\{{event="{event}"\}} (\S+)$'
    found = re.search(pattern, stack.metrics("telephony"), re.MULTILINE)
    return float(found.group(1)) if found else -1.0
