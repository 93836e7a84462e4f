"""Warm transfers through telephony's webhooks, with real gRPC to the llm service and
memory: the caller hears a colleague is briefed, the person who answers hears a summary
naming what the caller asked and takes the call with 1; a decline brings the caller back;
a model that is down still yields a whisper in time; a transfer URL nobody issued is
refused; the summary is kept with the call."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

from aura_llm.providers import Completion, Prompt, Provider
from aura_telephony import phrases
from aura_telephony.model import CallEvent
from aura_telephony.post_call import build_record
from tests.support.llm import local
from tests.support.twilio import Twiml
from tests.unit.telephony.conftest import Rig, RigFactory
from tests.unit.telephony.test_call_actions import started
from tests.unit.telephony.test_post_call import transcript
from tests.unit.telephony.test_voice_webhooks import speak

ENGLISH = phrases.english()


class Summaries(Provider):
    """The local provider's answers, and a handoff summary of its own (or none in time)."""

    name = "summaries"
    model = "summaries-1"
    min_attempt_seconds = 0.05

    def __init__(self, answer: Provider, summary: str = "", hang: bool = False) -> None:
        self._answer, self._summary, self._hang = answer, summary, hang

    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        if prompt.task == "summary":
            if self._hang:
                await asyncio.sleep(budget)  # a model slower than TRANSFER_SUMMARY_SECONDS
            return Completion(self._summary)
        return await self._answer.generate(prompt, budget)


async def post(rig: Rig, url: str, call_sid: str, **params: str) -> Twiml:
    response = await rig.twilio.post(url, rig.twilio.call_params(call_sid, **params))
    assert response.status_code == 200, response.text
    return Twiml(response.text)


async def transfer(rig: Rig) -> tuple[str, Twiml, Twiml]:
    """A caller asks for the manager: what they hear, then the transfer webhook's dial."""
    call_sid = await started(rig)
    await speak(rig, call_sid, "Do you make birthday cakes?")
    asked = await speak(rig, call_sid, "Can I speak to the manager?")
    redirect = asked.root.findtext("Redirect") or ""
    assert redirect.startswith("/api/voice/transfer?"), asked.xml
    return call_sid, asked, await post(rig, redirect, call_sid)


async def warm(make_rig: RigFactory, provider: Provider | None = None, **env: str) -> Rig:
    return await make_rig(provider=provider, TRANSFER_MODE="warm", **env)


async def test_the_person_who_answers_hears_the_summary_and_takes_the_call_with_1(
    make_rig: RigFactory,
) -> None:

    model = Summaries(local(), "Jo Baker wants a birthday cake for Saturday.")
    rig = await warm(make_rig, model)
    call_sid, asked, dialled = await transfer(rig)
    assert asked.verbs == ["Say", "Say", "Redirect"]
    assert ENGLISH.BRIEFING in "".join(asked.root.itertext())
    number = dialled.root.find("Dial/Number")
    assert number is not None
    assert (number.text or "").strip() == "+15555550111"
    whisper_url = number.get("url", "")
    assert parse_qs(urlsplit(whisper_url).query)["call"] == [call_sid]
    # The person who answers: their own leg asks what to hear.
    child = "CA" + "f" * 32
    whisper = await post(rig, whisper_url, child, ParentCallSid=call_sid)
    said = [s.text for s in whisper.root.findall("Gather/Say")]
    assert said == ["Jo Baker wants a birthday cake for Saturday.", ENGLISH.WHISPER_ACCEPT]
    gather = whisper.gather
    assert gather is not None
    taken = await post(rig, gather.get("action", ""), child, Digits="1")
    assert taken.verbs == []  # the whisper ends: the two are connected
    dial = dialled.root.find("Dial")
    assert dial is not None
    after = await post(rig, dial.get("action", ""), call_sid, DialCallStatus="completed")
    assert after.verbs == ["Hangup"]
    record = await rig.store.transcript(call_sid)
    assert record is not None
    kinds = [e.kind for e in record.events]
    assert "transfer_summary" in kinds
    assert "transfer_accepted" in kinds


async def test_a_declined_transfer_brings_the_caller_back_to_the_assistant(
    make_rig: RigFactory,
) -> None:

    rig = await warm(make_rig, Summaries(local(), "Jo wants a cake."))
    call_sid, _, dialled = await transfer(rig)
    number = dialled.root.find("Dial/Number")
    assert number is not None
    whisper = await post(rig, number.get("url", ""), "CA" + "e" * 32)
    gather = whisper.gather
    assert gather is not None
    declined = await post(rig, gather.get("action", ""), "CA" + "e" * 32, Digits="")
    assert declined.verbs == ["Hangup"]
    dial = dialled.root.find("Dial")
    assert dial is not None
    back = await post(rig, dial.get("action", ""), call_sid, DialCallStatus="no-answer")
    assert back.spoken == ENGLISH.NOBODY_AVAILABLE
    assert back.gather is not None  # the caller can go on, and leave a message
    record = await rig.store.transcript(call_sid)
    assert record is not None
    assert "transfer_declined" in [e.kind for e in record.events]


def test_a_warm_transfer_counts_as_transferred_once_someone_took_it() -> None:
    offered = transcript(CallEvent("transferred"), CallEvent("transfer_summary", "Jo, a cake."))
    assert build_record("CA1", {}, offered, None)["outcome"] == "abandoned"
    assert build_record("CA1", {}, offered, None)["transfer_summary"] == "Jo, a cake."
    taken = replace(offered, events=(*offered.events, CallEvent("transfer_accepted")))
    assert build_record("CA1", {}, taken, None)["outcome"] == "transferred"
    cold = transcript(CallEvent("transferred"))
    assert build_record("CA1", {}, cold, None)["outcome"] == "transferred"


async def test_a_model_that_is_down_still_yields_a_whisper_in_time(make_rig: RigFactory) -> None:

    model = Summaries(local(), hang=True)
    rig = await warm(make_rig, model, TRANSFER_SUMMARY_SECONDS="0.5")
    _, _, dialled = await transfer(rig)
    number = dialled.root.find("Dial/Number")
    assert number is not None
    whisper = await post(rig, number.get("url", ""), "CA" + "d" * 32)
    said = whisper.root.findtext("Gather/Say") or ""
    # The caller's number, digit by digit, and their last request.
    assert said.startswith("A call from 1 5 5 5 1 2 3 0 0 0 0.")
    assert said.endswith("They said: Can I speak to the manager?")


async def test_a_transfer_url_this_deployment_did_not_issue_is_refused(
    make_rig: RigFactory,
) -> None:
    rig = await warm(make_rig)
    call_sid = await started(rig)
    for sig in ("AAAA", "%C3%A7"):  # a wrong MAC, and one no MAC could be
        forged = f"/api/voice/transfer?to=%2B19005550000&sig={sig}"
        response = await rig.twilio.post(forged, rig.twilio.call_params(call_sid))
        assert response.status_code == 403
