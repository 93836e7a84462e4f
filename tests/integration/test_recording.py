"""Call recording with consent through real processes: the phone simulator plays the
caller, a local fake of Twilio's REST API (served as `aura-call --twilio-api-port` serves
it) takes the deployment's recording requests through the official SDK and posts signed
status callbacks back. The notice comes first and one recording starts; "please don't
record this" stops it, confirmed, in gather and relay mode, and the notice's key in
realtime mode; a warm transfer does not stop it; the transcript API and the post-call
webhook carry the recording."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from aura_dev.fake_realtime import FakeOpenAIRealtime
from aura_dev.stack import Stack, free_port
from aura_phone.media import StreamPlayer, stream_welcome
from aura_phone.rest import FakeTwilioRest
from aura_phone.simulator import Call, Input, Turn
from aura_phone.twilio import Twilio, new_call_sid
from aura_telephony import phrases
from tests.support import eventually
from tests.support.fake_vendors import serving_in_thread
from tests.support.realtime import realtime_fake, until
from tests.support.tool_servers import WebhookReceiver

TOKEN = "recording-token"
ACCOUNT = "AC" + "4" * 32
SECRET = "recording-secret"
ADMIN = {"Authorization": "Bearer admin-token"}
ENGLISH = phrases.english()


@pytest.fixture
def rest() -> Iterator[FakeTwilioRest]:
    fake = FakeTwilioRest(ACCOUNT, TOKEN)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    endpoint = WebhookReceiver(SECRET)
    with serving_in_thread(endpoint):
        yield endpoint


def recording_stack(
    tmp_path: Path, rest: FakeTwilioRest, receiver: WebhookReceiver, **extra: str
) -> Stack:
    port = free_port()
    env = {
        "CALL_RECORDING": "on",
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_API_BASE_URL": rest.url,
        "ADMIN_API_TOKEN": "admin-token",
        # Twilio calls back on the public URL; here that is the stack's own address.
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "POST_CALL_WEBHOOK_URL": receiver.url,
        "POST_CALL_WEBHOOK_SECRET": SECRET,
        "POST_CALL_RETRY_SECONDS": "0.2",
        "POST_CALL_POLL_SECONDS": "0.2",
        "TRANSFER_MODE": "warm",
        **extra,
    }
    return Stack(env=env, telephony_port=port, log_dir=tmp_path, cwd=tmp_path)


def caller(stack: Stack, rest: FakeTwilioRest, relay: bool = False) -> Call:
    return Call(stack.base_url, TOKEN, account_sid=ACCOUNT, relay=relay, on_end=rest.end_call)


def saying(*lines: str) -> Callable[[Turn], Input]:
    said = iter(lines)

    def answer(turn: Turn) -> Input:
        line = next(said, None)
        return Input("speech", line) if line is not None else Input("hangup")

    return answer


def transcript(stack: Stack, call_sid: str) -> dict[str, object]:
    response = httpx.get(f"{stack.base_url}/api/calls/{call_sid}/transcript", headers=ADMIN)
    assert response.status_code == 200, response.text
    found: dict[str, object] = response.json()
    return found


def heard(call: Call) -> str:
    return " ".join(text for turn in call.turns for text in turn.heard)


def test_a_gather_call_is_recorded_after_the_notice_until_the_caller_says_no(
    tmp_path: Path, rest: FakeTwilioRest, receiver: WebhookReceiver
) -> None:
    with recording_stack(tmp_path, rest, receiver).running() as stack:
        call = caller(stack, rest)
        call.start(saying("What time do you open on Saturday?", "Please don't record this.", "Bye"))
        assert call.turns[0].heard == [ENGLISH.notice("9")]
        assert ENGLISH.RECORDING_STOPPED in heard(call)
        [recording] = rest.recordings
        assert recording.params["RecordingChannels"] == ["dual"]
        assert recording.status == "completed"
        eventually(lambda: bool(receiver.delivered()), what="the post-call record")
        kept = transcript(stack, call.call_sid)["recording"]
    assert isinstance(kept, dict)
    assert kept["sid"] == recording.sid
    assert kept["status"] == "completed"
    assert kept["url"] == rest.media_url(recording)
    assert kept["refused_by"] == "words"
    [record] = [r.body for r in receiver.delivered()]
    assert record["recording"]["sid"] == recording.sid
    assert record["recording"]["duration_seconds"] == kept["duration_seconds"]


def test_a_relay_call_refused_by_words_and_a_warm_transfer_keeps_recording(
    tmp_path: Path, rest: FakeTwilioRest, receiver: WebhookReceiver
) -> None:
    stack = recording_stack(tmp_path, rest, receiver, VOICE_MODE="relay")
    with stack.running() as stack:
        # One call refuses by words over ConversationRelay.
        refusing = caller(stack, rest, relay=True)
        refusing.start(saying("Please don't record me.", "Goodbye"))
        assert ENGLISH.RECORDING_STOPPED in heard(refusing)
        # Another is put through to the manager: the recording goes on through the
        # transfer, and ends with the call.
        transferred = caller(stack, rest, relay=True)
        transferred.start(saying("Can I speak to the manager?"))
        assert transferred.dialed == "+15555550111"
        assert transferred.whispers
        first, second = rest.recordings
        assert (first.call_sid, second.call_sid) == (refusing.call_sid, transferred.call_sid)
        assert first.status == second.status == "completed"
        assert second.duration >= 1
        eventually(lambda: len(receiver.delivered()) == 2, what="both post-call records")
        refused = transcript(stack, refusing.call_sid)["recording"]
        kept = transcript(stack, transferred.call_sid)["recording"]
    assert isinstance(refused, dict)
    assert isinstance(kept, dict)
    assert refused["refused_by"] == "words"
    assert kept["refused_by"] is None
    assert kept["status"] == "completed"


def test_the_notices_key_means_nothing_is_ever_recorded(
    tmp_path: Path, rest: FakeTwilioRest, receiver: WebhookReceiver
) -> None:
    with recording_stack(tmp_path, rest, receiver).running() as stack:
        call = caller(stack, rest)
        call.prompt_key = "9"
        call.start(saying("Please record this call.", "Goodbye"))
        assert call.turns[1].heard[0].startswith(ENGLISH.RECORDING_STOPPED)
        eventually(lambda: bool(receiver.delivered()), what="the post-call record")
    assert rest.recordings == []
    [record] = [r.body for r in receiver.delivered()]
    assert record["recording"]["status"] == "declined"
    assert record["recording"]["refused_by"] == "keypad"


async def test_a_realtime_caller_stops_the_recording_with_the_notices_key_mid_call(
    tmp_path: Path, rest: FakeTwilioRest, receiver: WebhookReceiver
) -> None:
    with realtime_fake(FakeOpenAIRealtime()) as openai:
        env = {
            "VOICE_MODE": "realtime",
            "AI_PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-local",
            "OPENAI_BASE_URL": f"{openai.url}/v1",
        }
        stack = recording_stack(tmp_path, rest, receiver, **env)
        with stack.running():
            twilio = Twilio(auth_token=TOKEN, account_sid=ACCOUNT)
            call_sid = new_call_sid()
            player = StreamPlayer(stack.base_url, twilio, call_sid)
            # The notice is heard (no key): the recording starts, then the stream opens.
            await player.open(stream_welcome(stack.base_url, twilio, call_sid))
            try:
                [recording] = rest.recordings
                assert recording.status == "in-progress"
                await until(lambda: player.playback.received_ms > 0, what="the greeting")
                await player.press("9")
                await until(lambda: recording.status == "completed", what="the stop")
            finally:
                await player.close()
            kept = transcript(stack, call_sid)["recording"]
    assert isinstance(kept, dict)
    assert kept["refused_by"] == "keypad"
    assert len(rest.recordings) == 1
