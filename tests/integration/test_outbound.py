"""An outbound call through real processes: `aura-call --answer-calls` serves Twilio's REST
API, the deployment places a call with the twilio SDK through it, and the simulator
answers as a person (running a script) or as an answering machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from aura_dev.stack import Stack, free_port
from aura_phone.rest import FakeTwilioRest, PlacedCall
from aura_phone.simulator import Call, Input
from tests.support import eventually

TOKEN = "outbound-token"
ACCOUNT = "AC" + "1" * 32
ADMIN = {"Authorization": "Bearer admin-token"}
SCRIPT = Path(__file__).resolve().parents[1] / "e2e" / "scripts" / "bakery-outbound.yaml"


def outbound_stack(tmp_path: Path, api_port: int) -> Stack:
    port = free_port()
    env = {
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_PHONE_NUMBER": "+15559870000",
        "TWILIO_API_BASE_URL": f"http://127.0.0.1:{api_port}",
        "OUTBOUND_ALLOWED_PREFIXES": "+1555",
        "ADMIN_API_TOKEN": "admin-token",
        # Twilio calls back on the public URL; here that is the stack's own address.
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    }
    return Stack(env=env, telephony_port=port, log_dir=tmp_path, cwd=tmp_path)


@pytest.fixture
def api_port() -> int:
    return free_port()


def place(stack: Stack, **body: str) -> httpx.Response:
    request = {"to": "+15550100999", "purpose": "your birthday cake, which is ready", **body}
    return httpx.post(f"{stack.base_url}/api/calls", json=request, headers=ADMIN, timeout=20)


def test_aura_call_answers_an_outbound_call_as_a_person(tmp_path: Path, api_port: int) -> None:
    stack = outbound_stack(tmp_path, api_port)
    with stack.running():
        callee = subprocess.Popen(
            [
                Path(sys.executable).with_name("aura-call"),
                "--url",
                stack.base_url,
                "--token",
                TOKEN,
                "--answer-calls",
                "human",
                "--twilio-api-port",
                str(api_port),
                "--script",
                str(SCRIPT),
            ],
            env={"TWILIO_ACCOUNT_SID": ACCOUNT, "PATH": ""},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:

            def listening() -> bool:
                try:
                    return httpx.post(f"http://127.0.0.1:{api_port}/").status_code == 404
                except httpx.HTTPError:
                    return False

            eventually(listening, what="aura-call's Twilio REST API")
            response = place(stack)
            assert response.status_code == 201, response.text
            out, err = callee.communicate(timeout=60)
        finally:
            callee.kill()
    assert callee.returncode == 0, err
    assert "[script passed: 3 steps" in out


def test_an_answering_machine_gets_the_voicemail_message(tmp_path: Path, api_port: int) -> None:
    stack = outbound_stack(tmp_path, api_port)
    heard: list[str] = []
    answered: list[PlacedCall] = []

    def answer_as_a_machine(placed: PlacedCall) -> None:
        call = Call(
            stack.base_url,
            TOKEN,
            caller=placed.params["From"],
            callee=placed.params["To"],
            call_sid=placed.sid,
            account_sid=ACCOUNT,
            on_say=heard.append,
        )
        call.pick_up(placed.answer_path, lambda turn: Input("hangup"), "machine_end_beep")
        answered.append(placed)

    rest = FakeTwilioRest(ACCOUNT, TOKEN, on_call=answer_as_a_machine)
    rest.start(port=api_port)
    try:
        with stack.running():
            message = "Hello, your birthday cake is ready. Call us back at any time!"
            assert place(stack, voicemail_message=message).status_code == 201
            eventually(lambda: bool(answered), what="the machine to answer")
    finally:
        rest.stop()
    assert heard == [message]
    assert rest.calls[0].params["MachineDetection"] == "DetectMessageEnd"
