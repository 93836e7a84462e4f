"""Relay mode's webhooks: the incoming call answers <Connect><ConversationRelay> on the
public wss:// URL, and the action URL continues the call as the session's end says."""

from __future__ import annotations

import json
from xml.etree import ElementTree

import pytest

from aura_telephony import phrases
from tests.support.twilio import new_call_sid
from tests.unit.telephony.conftest import PUBLIC_BASE_URL, Rig, RigFactory

ENDED = "/api/voice/relay/ended"


async def ended(rig: Rig, **params: str) -> ElementTree.Element:
    response = await rig.twilio.post(ENDED, rig.twilio.call_params(new_call_sid(), **params))
    assert response.status_code == 200, response.text
    return ElementTree.fromstring(response.text)


def relay_of(document: ElementTree.Element) -> ElementTree.Element:
    relay = document.find("Connect/ConversationRelay")
    assert relay is not None, ElementTree.tostring(document)
    return relay


async def test_an_incoming_call_connects_to_the_relay_on_the_public_url(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(VOICE_MODE="relay", RELAY_VOICE="en-US-Journey-O")
    call_sid = new_call_sid()
    response = await rig.twilio.post("/api/voice", rig.twilio.call_params(call_sid))
    document = ElementTree.fromstring(response.text)
    connect = document.find("Connect")
    assert connect is not None
    assert connect.get("action") == ENDED
    relay = relay_of(document)
    # Issued for this call: its CallSid and a MAC (see the integration tests' refusals).
    url = relay.get("url", "")
    assert url.startswith(PUBLIC_BASE_URL.replace("https", "wss") + f"/api/voice/relay/{call_sid}.")
    assert relay.get("welcomeGreeting") == rig.settings.welcome_message
    assert (relay.get("interruptible"), relay.get("dtmfDetection")) == ("any", "true")
    assert relay.get("voice") == "en-US-Journey-O"
    # The welcome is the conversation's first turn, as in gather mode.
    assert [t.text for t in await rig.store.history(call_sid)] == [rig.settings.welcome_message]


async def test_gather_mode_stays_the_default(rig: Rig) -> None:
    response = await rig.twilio.post("/api/voice", rig.twilio.call_params(new_call_sid()))
    assert "<Gather" in response.text
    assert "ConversationRelay" not in response.text


@pytest.mark.parametrize("number", ["+15550001111", ""])
async def test_a_transfer_dials_or_says_nobody_is_available(
    make_rig: RigFactory, number: str
) -> None:
    rig = await make_rig(VOICE_MODE="relay", TRANSFER_NUMBER=number)
    document = await ended(
        rig, SessionStatus="ended", HandoffData=json.dumps({"reason": "transfer"})
    )
    if number:
        assert document.findtext("Dial") == number
    else:
        assert document.findtext("Say") == phrases.english().NOBODY_AVAILABLE
        assert relay_of(document).get("welcomeGreeting") is None  # back to the conversation


async def test_a_departments_number_from_the_handoff_is_dialled(make_rig: RigFactory) -> None:
    rig = await make_rig(VOICE_MODE="relay", TRANSFER_NUMBER="+15550001111")
    handoff = json.dumps({"reason": "transfer", "number": "+15550002222"})
    document = await ended(rig, SessionStatus="ended", HandoffData=handoff)
    assert document.findtext("Dial") == "+15550002222"


async def test_goodbye_hangs_up_and_a_handover_reconnects(make_rig: RigFactory) -> None:
    rig = await make_rig(VOICE_MODE="relay")
    goodbye = await ended(rig, SessionStatus="ended", HandoffData='{"reason": "goodbye"}')
    assert [child.tag for child in goodbye] == ["Hangup"]
    handover = await ended(rig, SessionStatus="ended", HandoffData='{"reason": "handover"}')
    assert relay_of(handover).get("welcomeGreeting") is None  # the same call, going on


async def test_a_failed_session_falls_back_to_gather(make_rig: RigFactory) -> None:
    rig = await make_rig(VOICE_MODE="relay")
    document = await ended(rig, SessionStatus="failed", ErrorCode="64107", ErrorMessage="bad")
    gather = document.find("Gather")
    assert gather is not None
    assert gather.findtext("Say") == phrases.english().RELAY_FAILED


@pytest.mark.parametrize("handoff", ["", "not json", "[1]", '{"reason": 5}', '{"other": 1}'])
async def test_odd_handoff_data_hangs_up_cleanly(make_rig: RigFactory, handoff: str) -> None:
    rig = await make_rig(VOICE_MODE="relay")
    document = await ended(rig, SessionStatus="completed", HandoffData=handoff)
    assert [child.tag for child in document] == ["Hangup"]


async def test_the_action_url_is_signed_like_every_webhook(make_rig: RigFactory) -> None:
    rig = await make_rig(VOICE_MODE="relay")
    params = rig.twilio.call_params(new_call_sid(), SessionStatus="failed")
    response = await rig.client.post(
        ENDED, data=params, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 403
