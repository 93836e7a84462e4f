"""What a real Twilio account exercises: signatures behind an ingress, retried webhooks,
the turn budget, silence, keypad and transfers, limits and logs."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from prometheus_client import REGISTRY
from twilio.request_validator import RequestValidator

from aura_telephony import phrases
from tests.support.llm import Echo
from tests.support.servers import OlderMemoryServicer
from tests.support.twilio import FORM, Twiml, new_call_sid
from tests.unit.telephony.conftest import AUTH_TOKEN, Rig, RigFactory

PROCESS = "/api/voice/process"


async def speak(rig: Rig, call_sid: str, said: str, path: str = PROCESS, **extra: str) -> Twiml:
    params = rig.twilio.call_params(call_sid, SpeechResult=said, Confidence="0.91", **extra)
    response = await rig.twilio.post(path, params)
    assert response.status_code == 200, response.text
    return Twiml(response.text)


def signature(url: str, params: dict[str, str]) -> str:
    return str(RequestValidator(AUTH_TOKEN).compute_signature(url, params))


# --- signatures behind an ingress -------------------------------------------------------


async def test_signature_over_public_url_with_query(rig: Rig) -> None:
    params = rig.twilio.call_params(new_call_sid(), SpeechResult="")
    url = "https://aura.example.com/api/voice/process?reprompts=1"
    headers = {**FORM, "X-Twilio-Signature": signature(url, params)}
    response = await rig.client.post(f"{PROCESS}?reprompts=1", data=params, headers=headers)
    assert response.status_code == 200
    # The same signature does not cover another query string.
    response = await rig.client.post(f"{PROCESS}?reprompts=2", data=params, headers=headers)
    assert response.status_code == 403


async def test_signature_with_the_default_port_is_accepted(rig: Rig) -> None:
    params = rig.twilio.call_params(new_call_sid())
    url = "https://aura.example.com:443/api/voice"
    headers = {**FORM, "X-Twilio-Signature": signature(url, params)}
    assert (await rig.client.post("/api/voice", data=params, headers=headers)).status_code == 200


@pytest.mark.parametrize("trust", [True, False])
async def test_forwarded_headers_count_only_when_trusted(make_rig: RigFactory, trust: bool) -> None:
    rig = await make_rig(PUBLIC_BASE_URL="", TRUST_PROXY_HEADERS=trust)
    params = rig.twilio.call_params(new_call_sid())
    headers = {
        **FORM,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "calls.example.org",
        "X-Twilio-Signature": signature("https://calls.example.org/api/voice", params),
    }
    response = await rig.client.post("/api/voice", data=params, headers=headers)
    assert response.status_code == (200 if trust else 403)


def rejections(reason: str) -> float:
    return REGISTRY.get_sample_value("aura_signature_rejections_total", {"reason": reason}) or 0.0


async def test_rejected_signatures_are_counted_by_reason(rig: Rig) -> None:
    params = rig.twilio.call_params(new_call_sid())
    before = {r: rejections(r) for r in ("missing", "invalid")}
    response = await rig.client.post("/api/voice", data=params, headers=FORM)
    assert response.status_code == 403
    forged = {**FORM, "X-Twilio-Signature": "Zm9yZ2Vk"}
    assert (await rig.client.post("/api/voice", data=params, headers=forged)).status_code == 403
    assert rejections("missing") == before["missing"] + 1
    assert rejections("invalid") == before["invalid"] + 1


async def test_another_account_sid_is_refused_when_ours_is_set(make_rig: RigFactory) -> None:
    ours = "AC" + "1" * 32
    rig = await make_rig(TWILIO_ACCOUNT_SID=ours)
    before = rejections("account_mismatch")
    # Validly signed, but for another account.
    response = await rig.twilio.post("/api/voice", rig.twilio.call_params(new_call_sid()))
    assert response.status_code == 403
    assert rejections("account_mismatch") == before + 1
    rig.twilio.account_sid = ours
    response = await rig.twilio.post("/api/voice", rig.twilio.call_params(new_call_sid()))
    assert response.status_code == 200


# --- retries and idempotency ------------------------------------------------------------


async def test_same_token_twice_concurrently_and_once_late(make_rig: RigFactory) -> None:
    echo = Echo()
    echo.gate = asyncio.Event()
    rig = await make_rig(provider=echo)
    call_sid = new_call_sid()
    params = rig.twilio.call_params(call_sid, SpeechResult="do you deliver", Confidence="0.9")
    headers = {**rig.twilio.sign(PROCESS, params), "I-Twilio-Idempotency-Token": "retry-1"}

    first = asyncio.create_task(rig.client.post(PROCESS, data=params, headers=headers))
    await echo.started.wait()  # the first delivery is inside the model now
    second = asyncio.create_task(rig.client.post(PROCESS, data=params, headers=headers))
    echo.gate.set()
    answers = await asyncio.gather(first, second)
    late = await rig.client.post(PROCESS, data=params, headers=headers)

    assert [r.status_code for r in (*answers, late)] == [200, 200, 200]
    assert answers[0].text == answers[1].text == late.text
    assert Twiml(late.text).spoken == "You said: do you deliver"
    assert len(echo.prompts) == 1
    assert [t.text for t in await rig.store.history(call_sid)] == [
        "do you deliver",
        "You said: do you deliver",
    ]


async def test_a_retry_takes_over_when_the_first_delivery_died(make_rig: RigFactory) -> None:
    """A replica that crashed mid-turn leaves its claim behind. The claim is a lease: once
    it lapses, Twilio's retry does the work instead of hearing "that took too long"."""
    echo = Echo()
    rig = await make_rig(provider=echo)
    call_sid, token = new_call_sid(), "retried-token"
    # The dead replica's claim, with a short lease.
    assert (await rig.store.claim(call_sid, f"token:{token}", ttl=0.3)).state == "claimed"
    params = rig.twilio.call_params(call_sid, SpeechResult="are you there", Confidence="0.9")
    headers = {**rig.twilio.sign(PROCESS, params), "I-Twilio-Idempotency-Token": token}
    response = await rig.client.post(PROCESS, data=params, headers=headers)
    assert Twiml(response.text).spoken == "You said: are you there"
    assert [p.user_text for p in echo.prompts] == ["are you there"]
    assert [t.text for t in await rig.store.history(call_sid)] == [
        "are you there",
        "You said: are you there",
    ]


async def test_a_claim_is_leased_for_a_turn_not_for_the_replay_window(
    make_rig: RigFactory,
) -> None:
    echo = Echo()
    echo.gate = asyncio.Event()  # the model is busy while we look at the claim
    rig = await make_rig(provider=echo, TURN_BUDGET_SECONDS=2, IDEMPOTENCY_TTL_SECONDS=300)
    call_sid = new_call_sid()
    params = rig.twilio.call_params(call_sid, SpeechResult="hello", Confidence="0.9")
    headers = {**rig.twilio.sign(PROCESS, params), "I-Twilio-Idempotency-Token": "lease"}
    delivery = asyncio.create_task(rig.client.post(PROCESS, data=params, headers=headers))
    await echo.started.wait()
    ((until, result),) = [v for (sid, _), v in rig.store._claims.items() if sid == call_sid]
    assert result is None  # in progress
    assert until - time.time() <= 2 + 1  # the turn budget and a margin, not 300 s
    echo.gate.set()
    assert (await delivery).status_code == 200
    ((until, result),) = [v for (sid, _), v in rig.store._claims.items() if sid == call_sid]
    assert result is not None
    assert until - time.time() > 250  # the answer is kept for replays


async def test_without_the_header_an_identical_retry_is_replayed(make_rig: RigFactory) -> None:
    echo = Echo()
    rig = await make_rig(provider=echo)
    call_sid = new_call_sid()

    async def deliver(said: str) -> Twiml:
        params = rig.twilio.call_params(call_sid, SpeechResult=said, Confidence="0.9")
        response = await rig.client.post(
            PROCESS, data=params, headers=rig.twilio.sign(PROCESS, params)
        )
        return Twiml(response.text)

    first = await deliver("hello there")
    again = await deliver("hello there")
    other = await deliver("something else")
    assert first.xml == again.xml
    assert other.spoken == "You said: something else"
    assert [p.user_text for p in echo.prompts] == ["hello there", "something else"]


# --- the turn budget ----------------------------------------------------------------------


async def test_a_late_answer_becomes_a_holding_line_and_is_never_spoken(
    make_rig: RigFactory,
) -> None:
    echo = Echo()
    echo.gate = asyncio.Event()  # never set in time
    rig = await make_rig(provider=echo, TURN_BUDGET_SECONDS=1.0, MEMORY_TIMEOUT_SECONDS=0.3)
    call_sid = new_call_sid()
    answer = await speak(rig, call_sid, "when are you open")
    assert answer.spoken == phrases.english().HOLDING
    assert answer.gather is not None
    echo.gate.set()  # the model finishes after the turn was given up
    assert await rig.store.history(call_sid) == []
    follow_up = await speak(rig, call_sid, "where are you")
    assert follow_up.spoken == "You said: where are you"


# --- silence, low confidence, keypad, transfer -----------------------------------------------


async def test_silence_reprompts_then_says_goodbye(make_rig: RigFactory) -> None:
    rig = await make_rig(MAX_REPROMPTS=2)
    call_sid = new_call_sid()
    first = await speak(rig, call_sid, "")
    assert first.spoken == phrases.english().DIDNT_CATCH
    assert first.gather is not None
    assert first.gather.attrib["action"] == f"{PROCESS}?reprompts=1"
    second = await speak(rig, call_sid, "", path=f"{PROCESS}?reprompts=1")
    assert second.gather is not None
    assert second.gather.attrib["action"] == f"{PROCESS}?reprompts=2"
    last = await speak(rig, call_sid, "", path=f"{PROCESS}?reprompts=2")
    assert last.hangs_up
    assert last.spoken == phrases.english().NO_INPUT_GOODBYE


async def test_an_answer_resets_the_reprompt_count(rig: Rig) -> None:
    answer = await speak(rig, new_call_sid(), "when are you open", path=f"{PROCESS}?reprompts=1")
    assert answer.gather is not None
    assert answer.gather.attrib["action"] == PROCESS


async def test_low_confidence_asks_again_instead_of_answering_noise(make_rig: RigFactory) -> None:
    echo = Echo()
    rig = await make_rig(provider=echo, SPEECH_MIN_CONFIDENCE=0.5)
    call_sid = new_call_sid()
    params = rig.twilio.call_params(call_sid, SpeechResult="mumble bumble", Confidence="0.21")
    answer = Twiml((await rig.twilio.post(PROCESS, params)).text)
    assert answer.spoken == phrases.english().NOT_SURE
    assert answer.gather is not None
    assert answer.gather.attrib["action"] == f"{PROCESS}?reprompts=1"
    assert echo.prompts == []
    # No confidence, or 0 (some speech models score nothing), is not low confidence.
    params = rig.twilio.call_params(call_sid, SpeechResult="hello")
    assert Twiml((await rig.twilio.post(PROCESS, params)).text).spoken == "You said: hello"
    params = rig.twilio.call_params(call_sid, SpeechResult="hi again", Confidence="0.0")
    assert Twiml((await rig.twilio.post(PROCESS, params)).text).spoken == "You said: hi again"


@pytest.mark.parametrize(
    ("params", "transfers"),
    [
        ({"Digits": "0"}, True),
        ({"SpeechResult": "can I speak to an agent please", "Confidence": "0.9"}, True),
        ({"SpeechResult": "Operator!", "Confidence": "0.9"}, True),
        ({"SpeechResult": "I want a real person", "Confidence": "0.9"}, True),
        ({"SpeechResult": "are you a human", "Confidence": "0.9"}, False),
    ],
)
async def test_transfer_to_a_person(
    make_rig: RigFactory, params: dict[str, str], transfers: bool
) -> None:
    rig = await make_rig(TRANSFER_NUMBER="+15550009999")
    response = await rig.twilio.post(PROCESS, rig.twilio.call_params(new_call_sid(), **params))
    answer = Twiml(response.text)
    dial = answer.root.find("Dial")
    if transfers:
        assert dial is not None
        assert dial.text == "+15550009999"
        assert answer.spoken == phrases.english().TRANSFERRING
    else:
        assert dial is None


async def test_no_transfer_number_says_nobody_is_available(rig: Rig) -> None:
    response = await rig.twilio.post(PROCESS, rig.twilio.call_params(new_call_sid(), Digits="0"))
    answer = Twiml(response.text)
    assert answer.spoken == phrases.english().NOBODY_AVAILABLE
    assert answer.gather is not None
    assert answer.root.find("Dial") is None


async def test_other_keys_explain_the_keypad(rig: Rig) -> None:
    response = await rig.twilio.post(PROCESS, rig.twilio.call_params(new_call_sid(), Digits="5"))
    assert Twiml(response.text).spoken == phrases.english().KEYPAD_HELP


# --- Twilio's parameters and statuses -----------------------------------------------------


async def test_the_full_twilio_parameter_set_and_unknown_extras_are_accepted(rig: Rig) -> None:
    params = rig.twilio.call_params(
        new_call_sid(),
        SpeechResult="where are you",
        Confidence="0.87",
        Caller="+15551230001",
        CallerCity="SPRINGFIELD",
        CallerState="IL",
        CallerZip="62701",
        CallerCountry="US",
        Called="+15559870002",
        CalledCity="",
        FromCity="SPRINGFIELD",
        ToCountry="US",
        CallToken="%7B%22parentCallInfoToken%22%3A%22x%22%7D",
        StirVerstat="TN-Validation-Passed-A",
        SomethingTwilioAddsNextYear="whatever",
    )
    response = await rig.twilio.post(PROCESS, params)
    assert response.status_code == 200
    assert "Harbor Lane" in Twiml(response.text).spoken


@pytest.mark.parametrize(
    "status",
    [
        "queued",
        "ringing",
        "in-progress",
        "completed",
        "busy",
        "failed",
        "no-answer",
        "canceled",
        "something-new",
    ],
)
async def test_every_call_status_is_accepted(rig: Rig, status: str) -> None:
    call_sid = new_call_sid()
    await speak(rig, call_sid, "where are you")
    params = rig.twilio.call_params(call_sid, CallStatus=status, CallDuration="12")
    response = await rig.twilio.post("/api/voice/status", params)
    assert response.status_code == 200
    final = status in {"completed", "busy", "failed", "no-answer", "canceled"}
    assert (await rig.store.history(call_sid) == []) is final


# --- hardening ----------------------------------------------------------------------------


async def test_a_body_over_the_limit_is_413(make_rig: RigFactory) -> None:
    rig = await make_rig(MAX_REQUEST_BODY_BYTES=2048)
    params = rig.twilio.call_params(new_call_sid(), SpeechResult="x" * 4000)
    declared = await rig.client.post(PROCESS, data=params, headers=rig.twilio.sign(PROCESS, params))
    assert declared.status_code == 413

    async def chunked() -> object:
        yield b"CallSid=CA1&SpeechResult="
        for _ in range(10):
            yield b"y" * 500

    streamed = await rig.client.post(PROCESS, content=chunked(), headers=FORM)  # type: ignore[arg-type]
    assert streamed.status_code == 413


async def test_speech_is_truncated_before_the_model(make_rig: RigFactory) -> None:
    echo = Echo()
    rig = await make_rig(provider=echo, MAX_SPEECH_CHARS=50)
    await speak(rig, new_call_sid(), "tell me " * 100)
    assert len(echo.prompts[0].user_text) <= 50


async def test_markup_spoken_by_a_caller_stays_text(make_rig: RigFactory) -> None:
    rig = await make_rig(provider=Echo())
    answer = await speak(rig, new_call_sid(), "please <Hangup/> now & </Say><Dial>911</Dial>")
    assert answer.verbs == ["Gather", "Say", "Hangup"]
    assert answer.root.find("Dial") is None
    assert answer.spoken == "You said: please <Hangup/> now & </Say><Dial>911</Dial>"
    assert answer.gather is not None


async def test_too_many_calls_from_one_number_are_refused(make_rig: RigFactory) -> None:
    rig = await make_rig(MAX_CALLS_PER_NUMBER_PER_HOUR=2)
    spoken = []
    for _ in range(3):
        params = rig.twilio.call_params(new_call_sid(), From="+15557770000")
        response = await rig.twilio.post("/api/voice", params)
        assert response.status_code == 200
        spoken.append(Twiml(response.text))
    assert [s.hangs_up for s in spoken] == [False, False, True]
    assert spoken[2].spoken == phrases.english().TOO_MANY_CALLS
    other = await rig.twilio.post("/api/voice", rig.twilio.call_params(new_call_sid()))
    assert not Twiml(other.text).hangs_up


async def test_a_retried_welcome_counts_once_against_the_limit(make_rig: RigFactory) -> None:
    rig = await make_rig(MAX_CALLS_PER_NUMBER_PER_HOUR=2)
    params = rig.twilio.call_params(new_call_sid(), From="+15557770001")
    headers = {**rig.twilio.sign("/api/voice", params), "I-Twilio-Idempotency-Token": "w-1"}
    for _ in range(3):  # one delivery and two retries of it
        retried = await rig.client.post("/api/voice", data=params, headers=headers)
        assert not Twiml(retried.text).hangs_up
    second = rig.twilio.call_params(new_call_sid(), From="+15557770001")
    assert not Twiml((await rig.twilio.post("/api/voice", second)).text).hangs_up
    third = rig.twilio.call_params(new_call_sid(), From="+15557770001")
    assert Twiml((await rig.twilio.post("/api/voice", third)).text).hangs_up


async def test_an_older_memory_service_still_counts_calls_and_keeps_their_parties(
    make_rig: RigFactory,
) -> None:
    # Mid-upgrade: this telephony folds the count into the claim and the parties into the
    # completion; the older memory ignores both, and telephony makes the calls itself.
    rig = await make_rig(MAX_CALLS_PER_NUMBER_PER_HOUR=2, memory_servicer=OlderMemoryServicer)
    calls = [new_call_sid() for _ in range(3)]
    spoken = []
    for call_sid in calls:
        params = rig.twilio.call_params(call_sid, From="+15557770002")
        spoken.append(Twiml((await rig.twilio.post("/api/voice", params)).text))
    assert [s.hangs_up for s in spoken] == [False, False, True]
    record = await rig.store.transcript(calls[0])
    assert record is not None
    assert (record.caller, record.callee, record.direction) == (
        "*******0002",
        rig.twilio.call_params(calls[0])["To"],
        "inbound",
    )


async def test_logs_mask_numbers_and_leave_out_what_callers_say(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    call_sid = new_call_sid()
    await rig.twilio.post("/api/voice", rig.twilio.call_params(call_sid, From="+15551239876"))
    await speak(rig, call_sid, "my secret account question")
    logged = caplog.text
    assert "+15551239876" not in logged
    assert "9876" in logged
    assert "secret account" not in logged


async def test_wrong_methods_and_types_are_4xx(rig: Rig) -> None:
    assert (await rig.client.get(PROCESS)).status_code == 405
    assert (await rig.client.put("/api/voice/status")).status_code == 405
    xml = await rig.client.post(PROCESS, content=b"<x/>", headers={"Content-Type": "text/xml"})
    assert xml.status_code == 415
    garbage = await rig.client.post(PROCESS, content=b"\xff\xfe%%%", headers=FORM)
    assert 400 <= garbage.status_code < 500


# --- transcripts ----------------------------------------------------------------------------


async def test_transcript_needs_the_admin_token(make_rig: RigFactory) -> None:
    rig = await make_rig(ADMIN_API_TOKEN="admin-secret")
    call_sid = new_call_sid()
    await rig.twilio.post("/api/voice", rig.twilio.call_params(call_sid, From="+15551239876"))
    await speak(rig, call_sid, "where are you")
    await rig.twilio.post(
        "/api/voice/status", rig.twilio.call_params(call_sid, CallStatus="completed")
    )
    path = f"/api/calls/{call_sid}/transcript"

    assert (await rig.client.get(path)).status_code == 401
    wrong = await rig.client.get(path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    response = await rig.client.get(path, headers={"Authorization": "Bearer admin-secret"})
    assert response.status_code == 200
    transcript = response.json()
    assert transcript["caller"] == "*******9876"
    assert transcript["callee"] == "+15559870000"
    assert transcript["status"] == "completed"
    assert transcript["started_at"] is not None
    assert transcript["ended_at"] is not None
    assert [t["role"] for t in transcript["turns"]] == ["assistant", "user", "assistant"]
    assert transcript["turns"][1]["text"] == "where are you"
    # The answer names the knowledge it was given, and that it held to it.
    answer = transcript["turns"][2]
    assert answer["passage_ids"][0] == "sample_bakery.yaml#where-to-find-us"
    assert answer["ungrounded"] is False
    assert transcript["turns"][1]["passage_ids"] == []
    unknown = await rig.client.get(
        "/api/calls/CAnothing/transcript", headers={"Authorization": "Bearer admin-secret"}
    )
    assert unknown.status_code == 404


async def test_transcripts_are_not_served_without_a_configured_token(rig: Rig) -> None:
    call_sid = new_call_sid()
    await speak(rig, call_sid, "where are you")
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer anything"}):
        response = await rig.client.get(f"/api/calls/{call_sid}/transcript", headers=headers)
        assert response.status_code == 404
