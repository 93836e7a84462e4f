from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from aura_telephony import phrases
from aura_telephony.backends import MAX_STORED_TURN_CHARS, Backends
from aura_telephony.budget import TurnBudget
from aura_telephony.config import Settings
from aura_telephony.errors import DownstreamError
from aura_telephony.model import Conversation, Turn
from aura_telephony.server import shutdown_grace
from tests.support.llm import Broken
from tests.support.twilio import Twiml, new_call_sid
from tests.unit.telephony.conftest import Rig, RigFactory


async def speak(rig: Rig, call_sid: str, said: str) -> Twiml:
    response = await rig.twilio.post(
        "/api/voice/process", rig.twilio.call_params(call_sid, SpeechResult=said, Confidence="0.9")
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return Twiml(response.text)


async def test_incoming_call_is_welcomed_inside_a_speech_gather(rig: Rig) -> None:
    call_sid = new_call_sid()
    response = await rig.twilio.post("/api/voice", rig.twilio.call_params(call_sid))
    assert response.status_code == 200
    answer = Twiml(response.text)
    assert answer.spoken == "Hello! I'm Aura, your AI assistant. How can I help you today?"
    assert answer.gather is not None
    assert answer.gather.attrib["action"] == "/api/voice/process"
    assert answer.verbs == ["Gather", "Say", "Hangup"]
    assert answer.gather.attrib["input"] == "speech dtmf"
    # The model will see its own greeting as the first turn.
    assert [t.role for t in await rig.store.history(call_sid)] == ["assistant"]


async def test_question_is_answered_and_both_turns_stored(rig: Rig) -> None:
    call_sid = new_call_sid()
    answer = await speak(rig, call_sid, "What time do you open on Saturday?")
    assert "Saturday from 8 to 4" in answer.spoken
    assert answer.gather is not None
    turns = await rig.store.history(call_sid)
    assert [(t.role, t.text) for t in turns] == [
        ("user", "What time do you open on Saturday?"),
        ("assistant", answer.spoken),
    ]


async def test_goodbye_hangs_up(rig: Rig) -> None:
    answer = await speak(rig, new_call_sid(), "ok thanks, bye")
    assert answer.hangs_up
    assert answer.spoken == phrases.english().FAREWELL


async def test_not_a_goodbye_keeps_the_call_going(rig: Rig) -> None:
    answer = await speak(rig, new_call_sid(), "I'm done with the form, what next?")
    assert answer.gather is not None


async def test_empty_speech_reprompts(rig: Rig) -> None:
    answer = await speak(rig, new_call_sid(), "   ")
    assert answer.spoken == phrases.english().DIDNT_CATCH
    assert answer.gather is not None


async def test_retried_webhook_with_same_idempotency_token_stores_the_turn_once(rig: Rig) -> None:
    call_sid = new_call_sid()
    params = rig.twilio.call_params(call_sid, SpeechResult="do you deliver")
    headers = {**rig.twilio.sign("/api/voice/process", params), "I-Twilio-Idempotency-Token": "t1"}
    for _ in range(2):
        response = await rig.client.post("/api/voice/process", data=params, headers=headers)
        assert response.status_code == 200
    assert len(await rig.store.history(call_sid)) == 2


@pytest.mark.parametrize("status", ["completed", "busy", "failed", "no-answer", "canceled"])
async def test_final_status_clears_the_conversation(rig: Rig, status: str) -> None:
    call_sid = new_call_sid()
    await speak(rig, call_sid, "where are you")
    response = await rig.twilio.post(
        "/api/voice/status", rig.twilio.call_params(call_sid, CallStatus=status)
    )
    assert response.status_code == 200
    assert Twiml(response.text).verbs == []
    assert await rig.store.history(call_sid) == []


@pytest.mark.parametrize("status", ["ringing", "in-progress", "queued"])
async def test_non_final_status_keeps_the_conversation(rig: Rig, status: str) -> None:
    call_sid = new_call_sid()
    await speak(rig, call_sid, "where are you")
    await rig.twilio.post("/api/voice/status", rig.twilio.call_params(call_sid, CallStatus=status))
    assert len(await rig.store.history(call_sid)) == 2


async def test_llm_down_gives_an_apology_inside_a_gather(rig: Rig) -> None:
    await rig.llm_server.stop(None)
    call_sid = new_call_sid()
    answer = await speak(rig, call_sid, "when are you open")
    assert answer.spoken == phrases.english().APOLOGY
    assert answer.gather is not None
    assert await rig.store.history(call_sid) == []


@pytest.mark.parametrize("path", ["/api/voice", "/api/voice/process", "/api/voice/status"])
async def test_missing_signature_is_403(rig: Rig, path: str) -> None:
    params = rig.twilio.call_params(new_call_sid(), SpeechResult="hi")
    response = await rig.client.post(path, data=params)
    assert response.status_code == 403


@pytest.mark.parametrize("path", ["/api/voice", "/api/voice/process", "/api/voice/status"])
async def test_forged_signature_is_403(rig: Rig, path: str) -> None:
    call_sid = new_call_sid()
    params = rig.twilio.call_params(call_sid, SpeechResult="when are you open")
    headers = rig.twilio.sign(path, params)
    params["SpeechResult"] = "something else"  # tampered after signing
    response = await rig.client.post(path, data=params, headers=headers)
    assert response.status_code == 403
    assert await rig.store.history(call_sid) == []


async def test_signature_for_the_internal_url_is_rejected(rig: Rig) -> None:
    # Behind an ingress only PUBLIC_BASE_URL counts; a signature for the pod's URL does not.
    rig.twilio.public_base_url = "http://testserver"
    response = await rig.twilio.post("/api/voice", rig.twilio.call_params(new_call_sid()))
    assert response.status_code == 403


async def test_wrong_content_type_is_415(rig: Rig) -> None:
    response = await rig.client.post("/api/voice", json={"CallSid": "CA1"})
    assert response.status_code == 415


async def test_missing_call_sid_is_422(rig: Rig) -> None:
    params = {"From": "+15550001111"}
    response = await rig.twilio.post("/api/voice", params)
    assert response.status_code == 422
    assert "CallSid" in str(response.json()["detail"])


async def test_wrong_method_is_405(rig: Rig) -> None:
    assert (await rig.client.get("/api/voice")).status_code == 405


async def test_health_and_root(rig: Rig) -> None:
    health = (await rig.client.get("/health")).json()
    assert health["status"] == "healthy"
    assert health["service"] == "aura-telephony"
    assert health["version"]
    root = (await rig.client.get("/")).json()
    assert root["endpoints"]["process_speech"] == "POST /api/voice/process"


def http_series() -> int:
    return sum(
        1
        for metric in REGISTRY.collect()
        if metric.name.startswith("aura_http_request")
        for _ in metric.samples
    )


async def test_made_up_methods_and_paths_add_no_series(rig: Rig) -> None:
    """Unauthenticated requests must not grow /metrics: every label is from a bounded set."""
    # Once of each kind first, for the series a first request of its kind creates.
    await rig.client.request("MWARMX", "/api/voice/warm")
    await rig.client.request("POST", "/nowhere/warm")
    before = http_series()
    for i in range(2000):
        response = await rig.client.request(f"M{i:05d}X", f"/api/voice/{i}")
        assert response.status_code in (404, 405)
        await rig.client.request("POST", f"/nowhere/{i}")
    assert http_series() == before


@pytest.mark.parametrize(("budget", "grace"), [(8, 10), (14, 16), (2.5, 5)])
def test_shutdown_waits_for_the_longest_turn(budget: float, grace: int) -> None:
    settings = Settings.model_validate({"TURN_BUDGET_SECONDS": budget})
    assert shutdown_grace(settings) == grace


async def test_a_failed_turn_asks_the_provider_once_per_llm_retry_not_per_grpc_retry(
    make_rig: RigFactory,
) -> None:
    """The llm service retries and fails over itself; telephony's gRPC retry policy (for
    a restarting pod) must not repeat all of that. The rig's llm allows no retries."""
    broken = Broken()
    rig = await make_rig(provider=broken)
    call_sid = new_call_sid()
    await rig.twilio.post("/api/voice", rig.twilio.call_params(call_sid))
    assert (await speak(rig, call_sid, "when are you open")).spoken == phrases.english().APOLOGY
    assert broken.attempts == 1
    # A streamed answer likewise.
    backends = Backends(rig.settings)
    try:
        with pytest.raises(DownstreamError):
            async for _ in backends.llm.generate_stream(call_sid, Conversation(), "and today", 5):
                pass
    finally:
        await backends.close()
    assert broken.attempts == 2


async def test_a_turn_longer_than_memory_takes_is_stored_cut_not_lost(rig: Rig) -> None:
    backends = Backends(rig.settings)
    call_sid = new_call_sid()
    try:
        long_answer = Turn("assistant", "word " * 4000)  # 20,000 characters
        await backends.memory.append(call_sid, [long_answer], "k1", TurnBudget(5))
    finally:
        await backends.close()
    [stored] = await rig.store.history(call_sid)
    assert stored.text == long_answer.text[:MAX_STORED_TURN_CHARS]
