"""Call actions in gather mode, through real gRPC to the llm service (the local provider
and the sample's tools, or a scripted model) and memory: a transfer dials the department's
number, a hang-up ends the call, a message is kept and served by the transcript API."""

from __future__ import annotations

import json

from aura_llm.providers import Completion, Prompt, Provider
from aura_llm.providers.base import ToolCall
from aura_memory.stores.base import StoredMessage, StoreUnavailableError
from aura_telephony import phrases
from tests.support.twilio import Twiml, new_call_sid
from tests.unit.telephony.conftest import Rig, RigFactory
from tests.unit.telephony.test_voice_webhooks import speak

ADMIN = "admin-secret"


class Scripted(Provider):
    """A model that answers each prompt of a turn with the next completion given."""

    name = "scripted"
    model = "scripted-1"
    min_attempt_seconds = 0.05

    def __init__(self, *completions: Completion) -> None:
        self._completions = list(completions)

    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        return self._completions.pop(0)


def call(name: str, **arguments: str) -> ToolCall:
    return ToolCall("call_1", name, json.dumps(arguments))


async def started(rig: Rig) -> str:
    call_sid = new_call_sid()
    response = await rig.twilio.post("/api/voice", rig.twilio.call_params(call_sid))
    assert response.status_code == 200
    return call_sid


async def test_asking_for_the_manager_dials_the_managers_number(rig: Rig) -> None:
    call_sid = await started(rig)
    answer = await speak(rig, call_sid, "Can I speak to the manager?")
    assert answer.verbs == ["Say", "Dial", "Say", "Hangup"]
    assert answer.spoken == "Of course. Let me put you through to our manager."
    assert answer.root.findtext("Dial") == "+15555550111"  # from the sample tools file
    turns = [(t.role, t.text) for t in await rig.store.history(call_sid)]
    assert turns[-1] == ("assistant", "Of course. Let me put you through to our manager.")


async def test_a_departments_number_comes_before_the_transfer_number(
    make_rig: RigFactory,
) -> None:
    model = Scripted(Completion("", tool_calls=(call("transfer_call", department="orders"),)))
    rig = await make_rig(provider=model, TRANSFER_NUMBER="+15550009999")
    answer = await speak(rig, await started(rig), "where is my order")
    assert answer.root.findtext("Dial") == "+15555550112"
    assert (
        answer.spoken == phrases.english().TRANSFERRING
    )  # the model said nothing: the standard line


async def test_end_call_hangs_up_after_the_models_goodbye(make_rig: RigFactory) -> None:
    model = Scripted(Completion("Glad I could help. Goodbye!", tool_calls=(call("end_call"),)))
    rig = await make_rig(provider=model)
    answer = await speak(rig, await started(rig), "that's everything I needed to know today")
    assert answer.hangs_up
    assert answer.spoken == "Glad I could help. Goodbye!"


async def test_a_message_is_taken_over_four_turns_and_served_with_the_transcript(
    make_rig: RigFactory,
) -> None:
    rig = await make_rig(ADMIN_API_TOKEN=ADMIN)
    call_sid = await started(rig)
    heard = [
        (await speak(rig, call_sid, said)).spoken
        for said in ["Can I leave a message?", "Jo Baker", "555 0100", "Please ring me back."]
    ]
    assert heard[-1].startswith("Thank you, I've passed your message on.")
    await rig.twilio.post(
        "/api/voice/status", rig.twilio.call_params(call_sid, CallStatus="completed")
    )
    response = await rig.client.get(
        f"/api/calls/{call_sid}/transcript", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert response.status_code == 200
    [message] = response.json()["messages"]
    assert (message["caller_name"], message["callback_number"], message["text"]) == (
        "Jo Baker",
        "555 0100",
        "Please ring me back.",
    )
    assert message["at"] is not None
    # The tool call, as a structured record: its name and outcome apart.
    [tool_call] = response.json()["tool_calls"]
    assert (tool_call["tool"], tool_call["outcome"]) == ("take_message", "ok")
    # ... and what the model called it with.
    assert tool_call["arguments"]["caller_name"] == "Jo Baker"
    stored = await rig.store.transcript(call_sid)
    assert stored is not None
    [event] = [e for e in stored.events if e.kind == "tool"]
    assert (event.detail, event.outcome) == ("take_message", "ok")


async def test_a_retried_turn_keeps_the_message_once(make_rig: RigFactory) -> None:
    arguments = {"caller_name": "Jo", "callback_number": "555", "message": "Hi"}
    model = Scripted(
        Completion("", tool_calls=(call("take_message", **arguments),)),
        Completion("Thanks, noted."),
    )
    rig = await make_rig(provider=model)
    call_sid = await started(rig)
    params = rig.twilio.call_params(call_sid, SpeechResult="take a message", Confidence="0.9")
    headers = {**rig.twilio.sign("/api/voice/process", params), "I-Twilio-Idempotency-Token": "t1"}
    first = await rig.client.post("/api/voice/process", data=params, headers=headers)
    again = await rig.client.post("/api/voice/process", data=params, headers=headers)
    assert Twiml(first.text).spoken == "Thanks, noted."
    assert again.text == first.text
    record = await rig.store.transcript(call_sid)
    assert record is not None
    assert [m.text for m in record.messages] == ["Hi"]


async def test_a_message_memory_cannot_keep_is_owned_up_to(make_rig: RigFactory) -> None:
    arguments = {"caller_name": "Jo", "callback_number": "555", "message": "Hi"}
    model = Scripted(
        Completion("", tool_calls=(call("take_message", **arguments),)),
        Completion("Thanks, I've noted that."),
    )
    rig = await make_rig(provider=model)
    call_sid = await started(rig)

    async def refuse(call_id: str, message: StoredMessage, idempotency_key: str = "") -> bool:
        raise StoreUnavailableError("redis unavailable")

    rig.store.save_message = refuse  # type: ignore[method-assign]
    answer = await speak(rig, call_sid, "can I leave a message")
    assert answer.spoken == phrases.english().MESSAGE_NOT_SAVED
    assert answer.gather is not None  # the call goes on
