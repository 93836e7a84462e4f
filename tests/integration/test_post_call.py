"""Post-call webhooks through real processes and a real Redis: the record reaches the
business's endpoint signed, with its transcript, messages, tool calls and summary; a
receiver that fails gets it again with the same Idempotency-Key, and records queued
while the receiver is down survive restarts of the memory and telephony services."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aura_dev.stack import Stack
from tests.support import eventually
from tests.support.fake_vendors import serving_in_thread
from tests.support.redis_server import RedisServer
from tests.support.tool_servers import WebhookReceiver
from tests.support.twilio import TwilioPlayer, new_call_sid

TOKEN = "post-call-token"
SECRET = "post-call-secret"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    endpoint = WebhookReceiver(SECRET)
    with serving_in_thread(endpoint):
        yield endpoint


def post_call_stack(
    tmp_path: Path, receiver: WebhookReceiver, redis: RedisServer, **extra: str
) -> Stack:
    env = {
        "TWILIO_AUTH_TOKEN": TOKEN,
        "MEMORY_STORE": "redis",
        "REDIS_URL": redis.url,
        "POST_CALL_WEBHOOK_URL": receiver.url,
        "POST_CALL_WEBHOOK_SECRET": SECRET,
        "POST_CALL_RETRY_SECONDS": "0.2",
        "POST_CALL_POLL_SECONDS": "0.2",
        **extra,
    }
    return Stack(env=env, log_dir=tmp_path, cwd=tmp_path)


def a_call(stack: Stack, *said: str) -> str:
    call_sid = new_call_sid()
    with httpx.Client(base_url=stack.base_url, timeout=20) as client:
        twilio = TwilioPlayer(client=client, auth_token=TOKEN)
        assert twilio.post("/api/voice", twilio.call_params(call_sid)).status_code == 200
        for words in said:
            params = twilio.call_params(call_sid, SpeechResult=words, Confidence="0.9")
            assert twilio.post("/api/voice/process", params).status_code == 200
        ended = twilio.call_params(call_sid, CallStatus="completed", CallDuration="42")
        assert twilio.post("/api/voice/status", ended).status_code == 200
    return call_sid


def test_a_call_record_arrives_signed_after_the_receiver_fails_twice(
    tmp_path: Path, receiver: WebhookReceiver, own_redis: RedisServer
) -> None:
    receiver.script.extend([500, 503])
    with post_call_stack(tmp_path, receiver, own_redis).running() as stack:
        call_sid = a_call(
            stack,
            "what time do you open on saturday",
            "Can I leave a message?",
            "Jo Baker",
            "555 0100",
            "Please call me about a cake.",
        )
        eventually(lambda: bool(receiver.delivered()), what="the record delivered")
        # The summary made for the first attempt is kept for the retries.
        assert stack.grpc_calls()["Summarize"] == 1
    assert receiver.answered[:3] == [500, 503, 200]
    assert len({json.dumps(r.body) for r in receiver.received}) == 1  # the same record each time
    assert {r.headers["idempotency-key"] for r in receiver.received} == {call_sid}
    assert all(r.verified for r in receiver.received)
    [record] = [r.body for r in receiver.delivered()]
    assert record["call_id"] == call_sid
    assert (record["direction"], record["status"], record["outcome"]) == (
        "inbound",
        "completed",
        "answered",
    )
    assert record["duration_seconds"] == 42
    assert record["caller"].endswith("0000")
    assert record["caller"].startswith("*")
    assert record["transcript"][1] == {
        "role": "user",
        "text": "what time do you open on saturday",
        "at": record["transcript"][1]["at"],
        "interrupted": False,
        "passage_ids": [],
        "ungrounded": False,
        "language": None,
    }
    assert record["languages"] == ["en-US"]
    assert record["transfer_summary"] is None
    # The answer names the knowledge it was given.
    answer = record["transcript"][2]
    assert answer["passage_ids"][0] == "sample_bakery.yaml#opening-hours"
    assert answer["ungrounded"] is False
    [message] = record["messages"]
    assert (message["caller_name"], message["text"]) == ("Jo Baker", "Please call me about a cake.")
    assert [(t["tool"], t["outcome"]) for t in record["tool_calls"]] == [("take_message", "ok")]
    assert record["summary"] == "The caller asked about opening hours and leaving a message."


def test_queued_records_survive_restarts_of_memory_and_telephony(
    tmp_path: Path, receiver: WebhookReceiver, own_redis: RedisServer
) -> None:
    receiver.script.extend([503] * 1000)  # down until the test says otherwise
    with post_call_stack(tmp_path, receiver, own_redis).running() as stack:
        call_sid = a_call(stack, "where can I park")
        eventually(lambda: len(receiver.received) >= 2, what="failed attempts")
        stack.stop_service("telephony")
        stack.stop_service("memory")
        receiver.script.clear()  # the business's server is back
        stack.start_service("memory")
        stack.start_service("telephony")
        eventually(lambda: bool(receiver.delivered()), what="the record after the restarts")
    [record] = [r.body for r in receiver.delivered()]
    assert record["call_id"] == call_sid
    assert record["summary"] == "The caller asked about parking."


@pytest.mark.parametrize("down", ["memory", "redis"])
def test_the_record_survives_memory_or_redis_down_at_hang_up(
    tmp_path: Path, receiver: WebhookReceiver, own_redis: RedisServer, down: str
) -> None:
    """Twilio does not retry a status callback it got 200 for: telephony keeps the end of
    the call until memory takes it, and the record goes out once things recover."""
    with post_call_stack(tmp_path, receiver, own_redis).running() as stack:
        call_sid = new_call_sid()
        with httpx.Client(base_url=stack.base_url, timeout=20) as client:
            twilio = TwilioPlayer(client=client, auth_token=TOKEN)
            assert twilio.post("/api/voice", twilio.call_params(call_sid)).status_code == 200
            said = twilio.call_params(call_sid, SpeechResult="where can I park", Confidence="0.9")
            assert twilio.post("/api/voice/process", said).status_code == 200
            assert own_redis.process is not None
            if down == "memory":
                stack.stop_service("memory")
            else:  # Redis stops answering (its data kept, as a real outage keeps it)
                own_redis.process.send_signal(signal.SIGSTOP)
            ended = twilio.call_params(call_sid, CallStatus="completed", CallDuration="42")
            assert twilio.post("/api/voice/status", ended).status_code == 200
            if down == "memory":
                stack.start_service("memory")
            else:
                own_redis.process.send_signal(signal.SIGCONT)
        eventually(lambda: bool(receiver.delivered()), timeout=60, what="the record")
    [record] = [r.body for r in receiver.delivered()]
    assert record["call_id"] == call_sid
    assert record["status"] == "completed"
    assert record["ended_at"] is not None  # the call was ended too, not left open
    assert record["duration_seconds"] == 42


def test_a_refused_caller_is_reported_as_refused(
    tmp_path: Path, receiver: WebhookReceiver, own_redis: RedisServer
) -> None:
    stack = post_call_stack(tmp_path, receiver, own_redis, MAX_CALLS_PER_NUMBER_PER_HOUR="1")
    with stack.running():
        a_call(stack)
        refused = a_call(stack)
        eventually(lambda: len(receiver.delivered()) == 2, what="both records")
        assert stack.grpc_calls()["Summarize"] == 0  # nobody spoke: nothing to summarise
    outcomes = {r.body["call_id"]: r.body["outcome"] for r in receiver.delivered()}
    assert outcomes[refused] == "refused"
    assert sorted(outcomes.values()) == ["abandoned", "refused"]
    assert [r.body["summary"] for r in receiver.delivered()] == [None, None]
