"""Call recording with consent (CALL_RECORDING=on) through telephony's webhooks, with real
gRPC to the llm service and memory and the official `twilio` SDK against a local fake of
Twilio's REST API: the notice comes first, then exactly one dual-channel recording with a
signed status callback; the caller refuses by words or the notice's key and it stops (or
never starts), confirmed; the transcript API and the post-call record carry it; nothing a
caller says starts one the operator did not enable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from pydantic import ValidationError

from aura_phone.rest import FakeTwilioRest
from aura_telephony import phrases
from aura_telephony.budget import TurnBudget
from aura_telephony.config import Settings
from aura_telephony.memory_client import MemoryClient
from aura_telephony.post_call import build_record
from tests.support.twilio import Twiml, new_call_sid, new_token
from tests.unit.telephony.conftest import AUTH_TOKEN, PUBLIC_BASE_URL, Rig, RigFactory
from tests.unit.telephony.test_voice_webhooks import speak

ACCOUNT = "AC" + "0" * 32  # the account the rig's webhooks name
ADMIN = {"Authorization": "Bearer admin-secret"}
ENGLISH = phrases.english()
NOTICE = ENGLISH.notice("9")


@pytest.fixture
def rest() -> Iterator[FakeTwilioRest]:
    # Callbacks are kept for the test to deliver: the app runs in-process.
    fake = FakeTwilioRest(ACCOUNT, AUTH_TOKEN, post_callbacks=False)
    fake.start()
    yield fake
    fake.stop()


async def recording_rig(make_rig: RigFactory, rest: FakeTwilioRest, **env: Any) -> Rig:
    settings = {
        "CALL_RECORDING": "on",
        "ADMIN_API_TOKEN": "admin-secret",
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_API_BASE_URL": rest.url,
        **env,
    }
    return await make_rig(**settings)


async def post(rig: Rig, path: str, call_sid: str, **params: str) -> Twiml:
    response = await rig.twilio.post(path, rig.twilio.call_params(call_sid, **params))
    assert response.status_code == 200, response.text
    return Twiml(response.text)


async def noticed(rig: Rig) -> tuple[str, Twiml]:
    """A new call: the notice it hears first."""
    call_sid = new_call_sid()
    return call_sid, await post(rig, "/api/voice", call_sid, CallStatus="ringing")


async def consented(rig: Rig, call_sid: str, digits: str = "") -> Twiml:
    extra = {"Digits": digits} if digits else {}
    return await post(rig, "/api/voice/consent", call_sid, **extra)


async def deliver_callbacks(rig: Rig, rest: FakeTwilioRest) -> None:
    """Twilio's recording status callbacks, signed, as the fake made them."""
    for url, params in rest.callbacks:
        assert url == f"{PUBLIC_BASE_URL}/api/voice/recording"
        response = await rig.twilio.post("/api/voice/recording", params)
        assert response.status_code == 200, response.text
    rest.callbacks.clear()


async def transcript(rig: Rig, call_sid: str) -> dict[str, Any]:
    response = await rig.client.get(f"/api/calls/{call_sid}/transcript", headers=ADMIN)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_the_notice_comes_first_then_one_dual_channel_recording_with_signed_callbacks(
    make_rig: RigFactory, rest: FakeTwilioRest
) -> None:
    rig = await recording_rig(make_rig, rest)
    call_sid, notice = await noticed(rig)
    # The notice, listening for its key only; nothing is recorded yet.
    assert notice.verbs == ["Gather", "Redirect"]
    assert notice.gather is not None
    assert notice.gather.get("input") == "dtmf"
    assert notice.spoken == NOTICE
    assert "press 9" in NOTICE
    assert rest.recordings == []
    greeting = await consented(rig, call_sid)
    assert greeting.spoken == rig.settings.welcome_message
    assert greeting.gather is not None
    assert "speech" in (greeting.gather.get("input") or "")
    [recording] = rest.recordings
    assert recording.call_sid == call_sid
    assert recording.params["RecordingChannels"] == ["dual"]
    assert recording.params["RecordingStatusCallback"] == [f"{PUBLIC_BASE_URL}/api/voice/recording"]
    assert recording.events == {"in-progress", "completed", "absent"}
    # Twilio retries the notice's webhook, and a second delivery comes another way: the
    # call is still recorded once.
    path, params = "/api/voice/consent", rig.twilio.call_params(call_sid)
    headers = {**rig.twilio.signed(str(rig.client.base_url), path, params)}
    headers["I-Twilio-Idempotency-Token"] = new_token()
    for _ in range(2):
        retried = await rig.client.post(path, data=params, headers=headers)
        assert retried.status_code == 200
    await consented(rig, call_sid)
    assert len(rest.recordings) == 1
    # Twilio's word on it is kept; the transcript shows it while it runs.
    await deliver_callbacks(rig, rest)
    kept = (await transcript(rig, call_sid))["recording"]
    assert kept["sid"] == recording.sid
    assert kept["status"] == "in-progress"
    assert kept["channels"] == 2
    assert kept["refused_by"] is None
    # The notice is in the transcript: the caller was told.
    turns = (await transcript(rig, call_sid))["turns"]
    assert turns[0]["text"] == NOTICE


async def test_a_start_whose_answer_was_lost_is_adopted_never_started_twice(
    make_rig: RigFactory, rest: FakeTwilioRest
) -> None:
    rig = await recording_rig(make_rig, rest)
    rest.fail_creates = 1  # Twilio starts it, and its answer is lost on the way back
    call_sid, _ = await noticed(rig)
    greeting = await consented(rig, call_sid)
    assert greeting.spoken == rig.settings.welcome_message
    [recording] = rest.recordings
    kept = (await transcript(rig, call_sid))["recording"]
    assert kept["sid"] == recording.sid


async def test_saying_dont_record_stops_it_the_assistant_confirms_and_it_is_kept(
    make_rig: RigFactory, rest: FakeTwilioRest
) -> None:
    rig = await recording_rig(make_rig, rest)
    call_sid, _ = await noticed(rig)
    await consented(rig, call_sid)
    await speak(rig, call_sid, "What time do you open on Saturday?")
    answer = await speak(rig, call_sid, "Actually, please don't record this call.")
    assert answer.spoken == ENGLISH.RECORDING_STOPPED
    assert answer.gather is not None  # the conversation goes on
    [recording] = rest.recordings
    assert recording.status == "completed"  # stopped through the REST API
    # Asking again, or for it back, starts nothing.
    await speak(rig, call_sid, "Do not record me.")
    await speak(rig, call_sid, "OK, you can record this call now.")
    assert len(rest.recordings) == 1
    await deliver_callbacks(rig, rest)
    record = await transcript(rig, call_sid)
    kept = record["recording"]
    assert kept["sid"] == recording.sid
    assert kept["status"] == "completed"
    assert kept["duration_seconds"] >= 1
    assert kept["url"] == rest.media_url(recording)
    assert kept["refused_by"] == "words"
    assert kept["refused_at"]
    said = [(t["role"], t["text"]) for t in record["turns"]]
    assert ("user", "Actually, please don't record this call.") in said
    assert ("assistant", ENGLISH.RECORDING_STOPPED) in said
    # The post-call record carries the same (it reads memory over gRPC, as this does).
    async with grpc.aio.insecure_channel(rig.settings.MEMORY_SERVICE_ADDRESS) as channel:
        memory = MemoryClient(channel, rig.settings)
        stored = await memory.transcript(call_sid, TurnBudget(5))
    sent = build_record(call_sid, {}, stored, None)["recording"]
    assert {**sent, "refused_at": None} == {**kept, "refused_at": None}
    assert sent["refused_at"][:19] == kept["refused_at"][:19]


async def test_the_notices_key_refuses_before_anything_is_recorded(
    make_rig: RigFactory, rest: FakeTwilioRest
) -> None:
    rig = await recording_rig(make_rig, rest)
    call_sid, _ = await noticed(rig)
    greeting = await consented(rig, call_sid, digits="9")
    assert greeting.spoken == f"{ENGLISH.RECORDING_STOPPED} {rig.settings.welcome_message}"
    assert rest.recordings == []
    # Later words and keys start nothing either.
    await speak(rig, call_sid, "Please record this call.")
    await post(rig, "/api/voice/process", call_sid, Digits="9")
    assert rest.recordings == []
    kept = (await transcript(rig, call_sid))["recording"]
    assert kept["status"] == "declined"
    assert kept["sid"] is None
    assert kept["refused_by"] == "keypad"


async def test_the_key_stops_a_recording_mid_call(
    make_rig: RigFactory, rest: FakeTwilioRest
) -> None:
    rig = await recording_rig(make_rig, rest)
    call_sid, _ = await noticed(rig)
    await consented(rig, call_sid)
    pressed = await post(rig, "/api/voice/process", call_sid, Digits="9")
    assert pressed.spoken == ENGLISH.RECORDING_STOPPED
    assert [r.status for r in rest.recordings] == ["completed"]


async def test_with_recording_off_nothing_records_and_no_caller_can_start_it(
    make_rig: RigFactory, rest: FakeTwilioRest
) -> None:
    rig = await recording_rig(make_rig, rest, CALL_RECORDING="off")
    call_sid, welcome = await noticed(rig)
    assert welcome.spoken == rig.settings.welcome_message  # no notice
    await speak(rig, call_sid, "Please record this call.")
    told = await speak(rig, call_sid, "Please don't record me.")
    assert told.spoken == ENGLISH.RECORDING_OFF
    keys = await post(rig, "/api/voice/process", call_sid, Digits="9")
    assert keys.spoken == ENGLISH.KEYPAD_HELP
    assert rest.recordings == []
    assert (await transcript(rig, call_sid))["recording"] is None


async def test_an_unsigned_recording_callback_is_refused(
    make_rig: RigFactory, rest: FakeTwilioRest
) -> None:
    rig = await recording_rig(make_rig, rest)
    params = {"CallSid": new_call_sid(), "RecordingSid": "RE" + "0" * 32}
    response = await rig.client.post("/api/voice/recording", data=params)
    assert response.status_code == 403


async def test_twilio_refusing_the_recording_leaves_the_call_going_unrecorded(
    make_rig: RigFactory,
) -> None:
    # Credentials Twilio does not accept: it answers 401, and the caller still hears the
    # greeting.
    other = FakeTwilioRest(ACCOUNT, "another-accounts-token", post_callbacks=False)
    other.start()
    try:
        rig = await recording_rig(make_rig, other)
        call_sid, _ = await noticed(rig)
        greeting = await consented(rig, call_sid)
        assert greeting.spoken == rig.settings.welcome_message
        assert other.recordings == []
        assert (await transcript(rig, call_sid))["recording"]["status"] == "failed"
    finally:
        other.stop()


async def test_relay_and_realtime_modes_hear_the_notice_before_connecting(
    make_rig: RigFactory, rest: FakeTwilioRest
) -> None:
    for mode, element in (("relay", "Connect/ConversationRelay"), ("realtime", "Connect/Stream")):
        rig = await recording_rig(make_rig, rest, VOICE_MODE=mode)
        call_sid, notice = await noticed(rig)
        assert notice.spoken == NOTICE
        refused = await consented(rig, call_sid, digits="9")
        connected = refused.root.find(element)
        assert connected is not None, refused.xml
        if mode == "relay":
            greeting = connected.get("welcomeGreeting", "")
            assert greeting.startswith(ENGLISH.RECORDING_STOPPED)
        else:
            assert refused.spoken == ENGLISH.RECORDING_STOPPED
    assert rest.recordings == []


async def test_an_outbound_call_keeps_its_purpose_through_the_notice(
    make_rig: RigFactory, rest: FakeTwilioRest
) -> None:
    rig = await recording_rig(make_rig, rest)
    call_sid = new_call_sid()
    query = "purpose=your+cake+order"
    params = {"Direction": "outbound-api", "AnsweredBy": "human"}
    notice = await post(rig, f"/api/voice?{query}", call_sid, **params)
    assert notice.gather is not None
    action = notice.gather.get("action", "")
    assert action == f"/api/voice/consent?{query}"
    greeting = await post(rig, action, call_sid, **params)
    assert "your cake order" in greeting.spoken
    assert len(rest.recordings) == 1


def test_recording_settings_are_checked_at_start() -> None:
    on = {"CALL_RECORDING": "on", "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": "t"}
    with pytest.raises(ValidationError, match="set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"):
        Settings.model_validate({"CALL_RECORDING": "on"})
    with pytest.raises(ValidationError, match="RECORDING_NOTICE must not be empty"):
        Settings.model_validate({**on, "RECORDING_NOTICE": "  "})
    with pytest.raises(ValidationError, match="a language's key"):
        Settings.model_validate({**on, "LANGUAGES": "en-US,es-ES", "RECORDING_OPT_OUT_KEY": "2"})
    with pytest.raises(ValidationError):
        Settings.model_validate({"RECORDING_OPT_OUT_KEY": "0"})
    own = Settings.model_validate(
        {**on, "RECORDING_NOTICE": "We record calls; press {digit} to opt out."}
    )
    assert phrases.from_settings(own)().notice("9") == "We record calls; press 9 to opt out."
    # Every shipped language has its own notice, naming the key.
    for tag in ("en-US", "es-ES", "fr-FR", "de-DE"):
        assert "7" in phrases.load(tag).notice("7")
