"""A caller's whole conversation, through HTTP only, signed like Twilio signs."""

from __future__ import annotations

import pytest

from tests.support.twilio import TwilioPlayer, Twiml, new_call_sid


def say(twilio: TwilioPlayer, call_sid: str, said: str) -> Twiml:
    params = twilio.call_params(call_sid, SpeechResult=said, Confidence="0.93")
    response = twilio.post("/api/voice/process", params)
    assert response.status_code == 200, response.text
    return Twiml(response.text)


def test_health(twilio: TwilioPlayer) -> None:
    assert twilio.client.get("/health").json()["status"] == "healthy"


def test_a_whole_call(twilio: TwilioPlayer) -> None:
    call_sid = new_call_sid()
    welcome = twilio.post("/api/voice", twilio.call_params(call_sid, CallStatus="ringing"))
    assert welcome.status_code == 200
    greeting = Twiml(welcome.text)
    assert "How can I help" in greeting.spoken
    assert greeting.gather is not None

    hours = say(twilio, call_sid, "Hi, what time do you open on Saturday?")
    assert "Saturday from 8 to 4" in hours.spoken
    assert hours.gather is not None

    parking = say(twilio, call_sid, "Is there somewhere to park my car?")
    assert "car park" in parking.spoken
    assert parking.gather is not None

    goodbye = say(twilio, call_sid, "great, thanks, bye")
    assert goodbye.hangs_up
    assert "Goodbye" in goodbye.spoken

    status = twilio.post(
        "/api/voice/status", twilio.call_params(call_sid, CallStatus="completed", CallDuration="42")
    )
    assert status.status_code == 200
    assert Twiml(status.text).verbs == []


def test_interleaved_calls_keep_their_own_history(twilio: TwilioPlayer) -> None:
    first, second = new_call_sid(), new_call_sid()
    say(twilio, first, "when are you open")
    say(twilio, second, "where are you located")
    # The same follow-up is understood through each call's own previous question.
    assert "Monday to Friday" in say(twilio, first, "and what about Mondays?").spoken
    assert "Harbor Lane" in say(twilio, second, "and what about Mondays?").spoken


@pytest.mark.parametrize("path", ["/api/voice", "/api/voice/process", "/api/voice/status"])
def test_unsigned_and_forged_requests_are_rejected(twilio: TwilioPlayer, path: str) -> None:
    if not twilio.auth_token:
        pytest.skip("the target's auth token is unknown (set AURA_AUTH_TOKEN)")
    params = twilio.call_params(new_call_sid(), SpeechResult="when are you open")
    forged = {**twilio.sign(path, params), "X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
    client = twilio.client
    assert client.post(path, data=params).status_code == 403
    assert client.post(path, data=params, headers=forged).status_code == 403
