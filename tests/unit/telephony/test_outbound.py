"""Outbound calls: POST /api/calls places the call with the real `twilio` SDK against a
local fake of Twilio's REST API (TWILIO_API_BASE_URL); the callee is then played as
Twilio would: a person (the greeting says why we call, the model knows it) or a machine
(the voicemail message, then a hang-up)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from aura_llm.providers import Completion, Prompt, Provider
from aura_phone.rest import FakeTwilioRest, PlacedCall
from aura_telephony import phrases
from tests.support.twilio import Twiml
from tests.unit.telephony.conftest import Rig, RigFactory

ACCOUNT = "AC" + "0" * 32
ADMIN = {"Authorization": "Bearer admin-secret"}
OURS = "+15559870000"
PURPOSE = "your cake order, which is ready to collect"


class Recording(Provider):
    name = "recording"
    model = "r1"
    min_attempt_seconds = 0.05

    def __init__(self) -> None:
        self.prompts: list[Prompt] = []

    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        self.prompts.append(prompt)
        return Completion("We close at six today.")


@pytest.fixture
def rest() -> Iterator[FakeTwilioRest]:
    fake = FakeTwilioRest(ACCOUNT, "test-auth-token")
    fake.start()
    yield fake
    fake.stop()


def outbound_settings(rest: FakeTwilioRest, **overrides: Any) -> dict[str, Any]:
    return {
        "ADMIN_API_TOKEN": "admin-secret",
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_PHONE_NUMBER": OURS,
        "TWILIO_API_BASE_URL": rest.url,
        "OUTBOUND_ALLOWED_PREFIXES": "+1555,+4420",
        **overrides,
    }


async def place(rig: Rig, **body: Any) -> Any:
    request = {"to": "+15550100999", "purpose": PURPOSE, **body}
    return await rig.client.post("/api/calls", json=request, headers=ADMIN)


async def pick_up(rig: Rig, placed: PlacedCall, answered_by: str) -> Twiml:
    params = rig.twilio.call_params(
        placed.sid,
        Direction="outbound-api",
        AnsweredBy=answered_by,
        From=placed.params["From"],
        To=placed.params["To"],
    )
    response = await rig.twilio.post(placed.answer_path, params)
    assert response.status_code == 200, response.text
    return Twiml(response.text)


async def test_a_call_is_placed_with_the_answer_url_and_machine_detection(
    make_rig: RigFactory, rest: FakeTwilioRest
) -> None:
    rig = await make_rig(**outbound_settings(rest))
    response = await place(rig, voicemail_message="Your order is ready. Call us back!")
    assert response.status_code == 201, response.text
    [placed] = rest.calls
    assert response.json() == {"call_sid": placed.sid, "to": "+15550100999", "status": "queued"}
    params = placed.params
    assert (params["To"], params["From"]) == ("+15550100999", OURS)
    assert params["Url"].startswith("https://aura.example.com/api/voice?purpose=your+cake+order")
    assert "voicemail=Your+order+is+ready" in params["Url"]
    assert params["StatusCallback"] == "https://aura.example.com/api/voice/status"
    assert params["MachineDetection"] == "DetectMessageEnd"


async def test_without_a_voicemail_message_there_is_no_machine_detection(
    make_rig: RigFactory, rest: FakeTwilioRest
) -> None:
    rig = await make_rig(**outbound_settings(rest))
    assert (await place(rig, **{"from": "+15559870001"})).status_code == 201
    assert (await place(rig, machine_detection=True)).status_code == 201
    first, second = rest.calls
    assert "MachineDetection" not in first.params
    assert first.params["From"] == "+15559870001"
    assert second.params["MachineDetection"] == "DetectMessageEnd"


async def test_a_person_hears_why_we_call_and_the_model_knows_it(
    make_rig: RigFactory, rest: FakeTwilioRest
) -> None:
    model = Recording()
    rig = await make_rig(provider=model, **outbound_settings(rest))
    assert (await place(rig)).status_code == 201
    [placed] = rest.calls
    greeting = await pick_up(rig, placed, "human")
    assert (
        greeting.spoken == f"Hello! This is Aura, an automated assistant, calling about {PURPOSE}."
    )
    assert greeting.gather is not None
    params = rig.twilio.call_params(placed.sid, SpeechResult="when do you close", Confidence="0.9")
    answer = Twiml((await rig.twilio.post("/api/voice/process", params)).text)
    assert answer.spoken == "We close at six today."
    assert PURPOSE in model.prompts[0].system_prompt
    transcript = await rig.client.get(f"/api/calls/{placed.sid}/transcript", headers=ADMIN)
    body = transcript.json()
    assert (body["direction"], body["purpose"]) == ("outbound", PURPOSE)
    assert body["callee"] == "*******0999"  # the person we rang, masked


@pytest.mark.parametrize("answered_by", ["machine_end_beep", "machine_end_silence", "fax"])
async def test_a_machine_gets_the_voicemail_message_then_a_hang_up(
    make_rig: RigFactory, rest: FakeTwilioRest, answered_by: str
) -> None:
    rig = await make_rig(**outbound_settings(rest))
    await place(rig, voicemail_message="Your order is ready. Call us back!")
    left = await pick_up(rig, rest.calls[0], answered_by)
    assert left.verbs == ["Say", "Hangup"]
    assert left.spoken == "Your order is ready. Call us back!"


@pytest.mark.parametrize(
    ("settings", "body", "status", "detail"),
    [
        ({"OUTBOUND_ALLOWED_PREFIXES": ""}, {}, 403, "outbound calls are off"),
        ({}, {"to": "+19005550100"}, 403, "not in OUTBOUND_ALLOWED_PREFIXES"),
        ({}, {"to": "555 0100"}, 422, "String should match pattern"),
        ({}, {"purpose": ""}, 422, "at least 1 character"),
        ({"TWILIO_PHONE_NUMBER": ""}, {}, 422, "give `from` or set TWILIO_PHONE_NUMBER"),
    ],
)
async def test_what_is_not_allowed_is_refused_before_twilio_is_asked(
    make_rig: RigFactory,
    rest: FakeTwilioRest,
    settings: dict[str, str],
    body: dict[str, str],
    status: int,
    detail: str,
) -> None:
    rig = await make_rig(**outbound_settings(rest, **settings))
    response = await place(rig, **body)
    assert response.status_code == status
    assert detail in response.text
    assert rest.calls == []


async def test_twilios_refusals_come_back_with_its_code(
    make_rig: RigFactory, rest: FakeTwilioRest
) -> None:
    rest.verified_numbers = (OURS,)
    rig = await make_rig(**outbound_settings(rest))
    unverified = await place(rig, **{"from": "+15559870001"})
    assert unverified.status_code == 422
    assert unverified.json()["detail"]["twilio_code"] == 21210
    rest.auth_token = "another-token"  # our credentials are wrong
    refused = await place(rig)
    assert refused.status_code == 502
    assert refused.json()["detail"]["twilio_code"] == 20003


async def test_twilio_unreachable_is_a_502_and_the_rate_is_limited(
    make_rig: RigFactory, rest: FakeTwilioRest
) -> None:
    rig = await make_rig(**outbound_settings(rest, MAX_OUTBOUND_CALLS_PER_MINUTE=2))
    assert (await place(rig)).status_code == 201
    rest.stop()
    down = await place(rig)
    assert down.status_code == 502
    assert "could not be reached" in down.text
    limited = await place(rig)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "60"


async def test_placing_calls_needs_the_admin_token(
    make_rig: RigFactory, rest: FakeTwilioRest
) -> None:
    rig = await make_rig(**outbound_settings(rest))
    body = {"to": "+15550100999", "purpose": PURPOSE}
    assert (await rig.client.post("/api/calls", json=body)).status_code == 401
    wrong = await rig.client.post("/api/calls", json=body, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401
    assert rest.calls == []
    no_admin = await make_rig(**outbound_settings(rest, ADMIN_API_TOKEN=""))
    assert (await no_admin.client.post("/api/calls", json=body)).status_code == 404


async def test_a_forged_answer_url_is_refused(make_rig: RigFactory, rest: FakeTwilioRest) -> None:
    rig = await make_rig(**outbound_settings(rest))
    params = rig.twilio.call_params("CA" + "1" * 32, Direction="outbound-api", AnsweredBy="human")
    headers = rig.twilio.sign("/api/voice?purpose=something+else", params)
    # Signed for one purpose, sent with another: Twilio signs the whole URL.
    response = await rig.client.post("/api/voice?purpose=transfer+me", data=params, headers=headers)
    assert response.status_code == 403
    assert phrases.english().TRANSFERRING not in response.text


async def test_in_relay_mode_the_greeting_is_conversation_relays_welcome(
    make_rig: RigFactory, rest: FakeTwilioRest
) -> None:
    rig = await make_rig(VOICE_MODE="relay", **outbound_settings(rest))
    await place(rig)
    answered = await pick_up(rig, rest.calls[0], "human")
    relay = answered.root.find("Connect/ConversationRelay")
    assert relay is not None
    assert relay.get("welcomeGreeting") == (
        f"Hello! This is Aura, an automated assistant, calling about {PURPOSE}."
    )
