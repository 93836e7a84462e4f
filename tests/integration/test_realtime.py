"""Realtime mode (Media Streams and a speech-to-speech model) through real processes and
real WebSockets: the phone simulator plays Twilio's Media Streams, and local fakes of
OpenAI Realtime and Gemini Live speak each vendor's wire protocol to the official SDKs in
the llm service. The caller's audio is answered in audio, both sides are stored, a tool
runs and a transfer dials, a barge-in clears Twilio's buffer and keeps only what was
heard, an unsigned upgrade is refused, and a provider failing mid-call hands over."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import grpc
import httpx
import pytest
from websockets.exceptions import InvalidStatus

from aura.llm.v1 import llm_service_pb2_grpc as llm_grpc
from aura_dev.fake_realtime import FakeGeminiLive, FakeOpenAIRealtime, Rule
from aura_dev.stack import Stack
from aura_phone.media import StreamError, StreamPlayer, parse_stream, stream_welcome, tone_ulaw
from aura_phone.twilio import Twilio, new_call_sid
from aura_telephony import phrases
from tests.support.realtime import fresh, realtime_fake, until
from tests.support.stored import history

TOKEN = "realtime-token"
TWILIO = Twilio(auth_token=TOKEN)
TRANSFER = Rule("put me through", "", ("transfer_call", {"department": "orders"}))
LONG = Rule("tell me everything", " ".join(["word"] * 40))  # twelve seconds of answer


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeOpenAIRealtime]:
    with realtime_fake(FakeOpenAIRealtime()) as fake:
        yield fake


@pytest.fixture(scope="module")
def gemini_fake() -> Iterator[FakeGeminiLive]:
    with realtime_fake(FakeGeminiLive()) as fake:
        yield fake


def realtime_env(
    openai: FakeOpenAIRealtime, gemini: FakeGeminiLive, **extra: str
) -> dict[str, str]:
    return {
        "TWILIO_AUTH_TOKEN": TOKEN,
        "VOICE_MODE": "realtime",
        "AI_PROVIDER": "openai",
        "AI_FALLBACK_PROVIDERS": "gemini",
        "OPENAI_API_KEY": "sk-local",
        "OPENAI_BASE_URL": f"{openai.url}/v1",
        "GEMINI_API_KEY": "gemini-local",
        "GEMINI_BASE_URL": gemini.url,
        # google-genai speaks only wss:// to a base URL: the fake's certificate is trusted.
        "SSL_CERT_FILE": str(gemini.certificate),
        "RELAY_IDLE_SECONDS": "30",
        # As the chart deploys it: the gRPC hops carry a shared token, the conversation's
        # bidirectional stream too.
        "GRPC_AUTH_TOKEN": "realtime-grpc-token",
        **extra,
    }


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    openai_fake: FakeOpenAIRealtime,
    gemini_fake: FakeGeminiLive,
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("realtime")
    stack = Stack(env=realtime_env(openai_fake, gemini_fake), log_dir=workdir, cwd=workdir)
    with stack.running():
        yield stack


@pytest.fixture(autouse=True)
def clean_scripts(openai_fake: FakeOpenAIRealtime, gemini_fake: FakeGeminiLive) -> None:
    fresh(openai_fake.script)
    fresh(gemini_fake.script)


async def open_call(stack: Stack) -> StreamPlayer:
    call_sid = new_call_sid()
    twiml = stream_welcome(stack.base_url, TWILIO, call_sid)
    player = StreamPlayer(stack.base_url, TWILIO, call_sid)
    await player.open(twiml)
    return player


def stream_ended(stack: Stack, call_sid: str) -> ElementTree.Element:
    """What the <Connect> action answers when the stream ends; a warm transfer's redirect
    (the caller hears a colleague is briefed) is followed to its dial, as Twilio does."""
    path = "/api/voice/stream/ended"
    while True:
        params = TWILIO.call_params(call_sid)
        response = httpx.post(
            f"{stack.base_url}{path}",
            data=params,
            headers=TWILIO.headers(stack.base_url, path, params),
            timeout=10,
        )
        assert response.status_code == 200
        document = ElementTree.fromstring(response.text)
        redirect = document.findtext("Redirect")
        if not redirect:
            return document
        path = redirect


def test_the_welcome_connects_a_signed_stream_without_a_query(stack: Stack) -> None:
    params = TWILIO.call_params(new_call_sid())
    answer = httpx.post(
        f"{stack.base_url}/api/voice",
        data=params,
        headers=TWILIO.headers(stack.base_url, "/api/voice", params),
        timeout=10,
    )
    twiml = parse_stream(answer.text)
    assert twiml.url.endswith("/api/voice/stream")
    assert "?" not in twiml.url
    assert twiml.parameters["ticket"].startswith(params["CallSid"] + ".")
    connect = ElementTree.fromstring(answer.text).find("Connect")
    assert connect is not None
    assert connect.get("action") == "/api/voice/stream/ended"


async def test_a_spoken_question_is_answered_in_audio_and_both_sides_are_stored(
    stack: Stack, openai_fake: FakeOpenAIRealtime
) -> None:
    openai_fake.script.transcripts.append("when do you open on saturday")
    player = await open_call(stack)
    try:
        # The welcome, said by the model in its voice, reaches the caller as audio.
        await until(lambda: player.playback.received_ms > 0, what="the greeting's audio")
        await until(lambda: not player.playing, what="the greeting played")
        await player.say("when do you open on saturday")
        await until(lambda: len(history(stack, player.call_sid)) >= 3, what="the answer stored")
        turns = history(stack, player.call_sid)
        assert turns[0][0] == "assistant"
        assert "Aura" in turns[0][1]  # the welcome
        assert turns[1] == ("user", "when do you open on saturday", False)
        assert turns[2][0] == "assistant"
        assert "saturday" in turns[2][1]
        # The session was opened with the business's knowledge, and asked for mu-law.
        session = openai_fake.script.sessions[-1]
        assert "Opening hours" in session["instructions"] or "open" in session["instructions"]
        assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    finally:
        await player.hang_up()


async def test_a_tool_runs_and_the_transfer_dials_through_the_action_url(
    stack: Stack, openai_fake: FakeOpenAIRealtime
) -> None:
    openai_fake.script.rules.append(TRANSFER)
    openai_fake.script.transcripts.append("please put me through to orders")
    player = await open_call(stack)
    try:
        await until(lambda: player.playback.received_ms > 0, what="the greeting")
        await player.say("please put me through to orders")
        await until(player.closed.is_set, what="the stream closed for the transfer")
        assert any("transferring" in r for r in openai_fake.script.tool_results)
        # A warm transfer (the default), as in every voice mode: the number, and the whisper.
        number = stream_ended(stack, player.call_sid).find("Dial/Number")
        assert number is not None
        assert (number.text or "").strip() == "+15555550112"
        assert number.get("url", "").startswith("/api/voice/whisper?call=")
    finally:
        await player.close()


async def test_a_barge_in_clears_twilio_and_keeps_only_what_was_heard(
    stack: Stack, openai_fake: FakeOpenAIRealtime
) -> None:
    openai_fake.script.rules.append(LONG)
    openai_fake.script.transcripts.extend(["tell me everything", "stop there"])
    player = await open_call(stack)
    try:
        await until(lambda: not player.playing and player.playback.received_ms > 0)
        await player.say("tell me everything")
        await until(lambda: player.playback.received_ms > 10_000, what="the long answer sent")
        await until(lambda: player.playback.played_ms > 6_000, what="part of it played")
        await player.speak(tone_ulaw(300))  # the caller talks over it
        await until(lambda: player.playback.clears >= 1, what="Twilio's buffer cleared")
        await until(lambda: bool(openai_fake.script.truncations), what="the model told")
        _, heard_ms = openai_fake.script.truncations[-1]
        assert 0 < heard_ms < 12_000
        await until(
            lambda: any(t[2] for t in history(stack, player.call_sid)), what="a cut turn stored"
        )
        cut = next(t for t in history(stack, player.call_sid) if t[2])
        assert cut[0] == "assistant"
        assert 0 < len(cut[1].split()) < 40
    finally:
        await player.hang_up()


async def test_an_unsigned_or_forged_upgrade_is_refused(stack: Stack) -> None:
    twiml = stream_welcome(stack.base_url, TWILIO, new_call_sid())
    for twilio in (Twilio(), Twilio(auth_token="not-the-token")):
        player = StreamPlayer(stack.base_url, twilio, new_call_sid())
        with pytest.raises(StreamError, match="HTTP 403"):
            await player.open(twiml)


async def test_a_start_for_another_call_is_refused(stack: Stack) -> None:
    twiml = stream_welcome(stack.base_url, TWILIO, new_call_sid())
    player = StreamPlayer(stack.base_url, TWILIO, new_call_sid())  # not the ticket's
    await player.open(twiml)
    await until(player.closed.is_set, what="the stream closed")
    assert player.close_code == 1008
    assert player.playback.received_ms == 0


async def test_a_provider_failing_mid_call_hands_over_and_the_caller_is_answered(
    stack: Stack, openai_fake: FakeOpenAIRealtime, gemini_fake: FakeGeminiLive
) -> None:
    openai_fake.script.transcripts.extend(["my first question", "drop the line now"])
    openai_fake.script.drop_after_words = "drop the line"
    gemini_fake.script.transcripts.append("are you still there")
    player = await open_call(stack)
    try:
        await until(lambda: not player.playing and player.playback.received_ms > 0)
        await player.say("my first question")
        await until(lambda: len(history(stack, player.call_sid)) >= 3, what="first answer")
        before = len(gemini_fake.script.sessions)
        await player.say("drop the line now")
        await until(lambda: len(gemini_fake.script.sessions) > before, what="Gemini took over")
        # The new provider goes on from the conversation so far, and does not greet again.
        assert "my first question" in gemini_fake.script.instructions[-1]
        heard = player.playback.received_ms
        await player.say("are you still there")
        await until(lambda: player.playback.received_ms > heard, what="Gemini's answer")
        await until(
            lambda: any("still there" in t[1] for t in history(stack, player.call_sid)),
            what="Gemini's turns stored",
        )
    finally:
        await player.hang_up()


async def test_with_no_realtime_provider_left_the_call_goes_on_in_gather_mode(
    stack: Stack, openai_fake: FakeOpenAIRealtime, gemini_fake: FakeGeminiLive
) -> None:
    openai_fake.script.fail_next_connects = 1
    gemini_fake.script.fail_next_connects = 1
    player = await open_call(stack)
    try:
        await until(player.closed.is_set, what="the stream closed")
        after = stream_ended(stack, player.call_sid)
        gather = after.find("Gather")
        assert gather is not None
        assert phrases.english().RELAY_FAILED in "".join(gather.itertext())
    finally:
        await player.close()


def test_realtime_mode_without_a_speech_to_speech_provider_stops_the_llm_service() -> None:
    env = {"PATH": "/usr/bin:/bin", "VOICE_MODE": "realtime", "AI_PROVIDER": "local"}
    done = subprocess.run(
        [sys.executable, "-m", "aura_llm"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "VOICE_MODE=realtime needs a speech-to-speech provider" in done.stderr


async def test_gemini_answers_in_audio_converted_for_twilio(
    tmp_path_factory: pytest.TempPathFactory,
    openai_fake: FakeOpenAIRealtime,
    gemini_fake: FakeGeminiLive,
) -> None:
    workdir = tmp_path_factory.mktemp("realtime-gemini")
    env = realtime_env(openai_fake, gemini_fake, AI_PROVIDER="gemini", AI_FALLBACK_PROVIDERS="")
    gemini_fake.script.transcripts.append("do you bake rye bread")
    stack = Stack(env=env, log_dir=workdir, cwd=workdir)
    with stack.running():
        player = await open_call(stack)
        try:
            await until(lambda: not player.playing and player.playback.received_ms > 0)
            greeting_ms = player.playback.received_ms
            # 24 kHz PCM became 8 kHz mu-law: the fake's 300 ms a word, words for words.
            words = len(history(stack, player.call_sid)[0][1].split())
            assert abs(greeting_ms - words * 300) < 100
            await player.say("do you bake rye bread")
            await until(lambda: len(history(stack, player.call_sid)) >= 3, what="answer stored")
            assert history(stack, player.call_sid)[1][1] == "do you bake rye bread"
        finally:
            await player.hang_up()


def test_the_stream_webhook_and_upgrade_are_signed_like_every_webhook(stack: Stack) -> None:
    from websockets.sync.client import connect

    params = TWILIO.call_params(new_call_sid())
    forged = Twilio(auth_token="wrong").headers(stack.base_url, "/api/voice/stream/ended", params)
    response = httpx.post(
        f"{stack.base_url}/api/voice/stream/ended", data=params, headers=forged, timeout=10
    )
    assert response.status_code == 403
    with pytest.raises(InvalidStatus) as refused:
        connect(stack.base_url.replace("http", "ws") + "/api/voice/stream", open_timeout=5)
    assert refused.value.response.status_code == 403


async def test_the_keypad_puts_the_caller_through(
    tmp_path: Path, openai_fake: FakeOpenAIRealtime, gemini_fake: FakeGeminiLive
) -> None:
    env = realtime_env(openai_fake, gemini_fake, TRANSFER_NUMBER="+15005550006")
    stack = Stack(env=env, log_dir=tmp_path, cwd=tmp_path)
    with stack.running():
        player = await open_call(stack)
        try:
            await until(lambda: player.playback.received_ms > 0, what="the greeting")
            await player.press("0")
            await until(player.closed.is_set, what="the stream closed for the transfer")
            number = stream_ended(stack, player.call_sid).find("Dial/Number")
            assert number is not None
            assert (number.text or "").strip() == "+15005550006"
        finally:
            await player.close()


async def test_a_silent_caller_is_asked_again_then_told_goodbye(
    tmp_path: Path, openai_fake: FakeOpenAIRealtime, gemini_fake: FakeGeminiLive
) -> None:
    env = realtime_env(openai_fake, gemini_fake, RELAY_IDLE_SECONDS="1", MAX_REPROMPTS="1")
    stack = Stack(env=env, log_dir=tmp_path, cwd=tmp_path)
    with stack.running():
        player = await open_call(stack)
        try:
            # The greeting, one reprompt said by the model, then the end of the stream.
            await until(player.closed.is_set, seconds=30, what="the goodbye")
            assert len(player.playback.audio_since) >= 2
            hang_up = stream_ended(stack, player.call_sid)
            assert phrases.english().NO_INPUT_GOODBYE in "".join(hang_up.itertext())
            assert hang_up.find("Hangup") is not None
        finally:
            await player.close()


async def test_a_live_stream_is_handed_over_when_its_replica_stops(
    tmp_path: Path, openai_fake: FakeOpenAIRealtime, gemini_fake: FakeGeminiLive
) -> None:
    """On SIGTERM the replica ends its streams with a handover; the action URL, on any
    replica, answers a new stream, which goes on from the conversation in memory."""
    openai_fake.script.transcripts.append("what time do you open")
    env = realtime_env(openai_fake, gemini_fake, DRAIN_SECONDS="0")
    stack = Stack(env=env, log_dir=tmp_path, cwd=tmp_path)
    with stack.running():
        player = await open_call(stack)
        await until(lambda: not player.playing and player.playback.received_ms > 0)
        await player.say("what time do you open")
        await until(lambda: len(history(stack, player.call_sid)) >= 3, what="the answer stored")
        stack.processes["telephony"].send_signal(signal.SIGTERM)
        await until(player.closed.is_set, what="the stream handed over")
        assert stack.processes["telephony"].wait(timeout=30) == 0
        stack.start_service("telephony")  # the replica the load balancer sends Twilio to
        after = stream_ended(stack, player.call_sid)
        twiml = parse_stream(ElementTree.tostring(after, encoding="unicode"))
        second = StreamPlayer(stack.base_url, TWILIO, player.call_sid)
        await second.open(twiml)
        try:
            # The call goes on: the new session is told the conversation, and no greeting.
            await until(lambda: "what time do you open" in openai_fake.script.instructions[-1])
            assert second.playback.received_ms == 0
        finally:
            await second.hang_up()


def test_a_conversation_without_the_grpc_token_is_refused(stack: Stack) -> None:
    """The llm service refuses a bidirectional stream that does not carry the shared token,
    as it refuses every other call."""
    with grpc.insecure_channel(stack.llm_address) as channel:
        replies = llm_grpc.LlmServiceStub(channel).Converse(iter([]), timeout=5)
        with pytest.raises(grpc.RpcError) as refused:
            next(iter(replies))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
