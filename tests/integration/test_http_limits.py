"""Telephony as a real process against clients that misbehave at the HTTP level: slow or
silent clients are cut off at the read deadlines, too many connections get 503, and a
SIGTERM lets a turn in flight finish."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aura_dev.stack import Stack
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
