"""One call policy, every voice mode: each behaviour a caller meets is played in gather
mode and in relay mode against real processes (the offline provider, the sample's
knowledge and tools), through the phone simulator, so that no behaviour can exist in one
mode only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aura_dev.stack import Stack
from aura_phone.simulator import Call, Input
from aura_telephony import phrases
from tests.support.stored import ROLES, transcript

TOKEN = "policy-token"
FRONT_DESK = "+15005550100"
MANAGER = "+15555550111"  # the sample tools file's manager department


@pytest.fixture(scope="module", params=["gather", "relay"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp(f"policy-{request.param}")
    env = {
        "TWILIO_AUTH_TOKEN": TOKEN,
        "VOICE_MODE": request.param,
        "TRANSFER_NUMBER": FRONT_DESK,
        "RELAY_IDLE_SECONDS": "1",
        "MAX_CALLS_PER_NUMBER_PER_HOUR": "0",
    }
    stack = Stack(env=env, log_dir=workdir, cwd=workdir)
    with stack.running():
        yield stack


def play(stack: Stack, *inputs: Input) -> Call:
    """A call in which the caller does `inputs` in turn, then hangs up."""
    call = Call(stack.base_url, TOKEN, relay=stack.env["VOICE_MODE"] == "relay")
    steps = iter(inputs)
    call.start(lambda turn: next(steps, Input("hangup")))
    return call


def heard(call: Call) -> list[str]:
    """Everything the caller heard, line by line, the welcome first."""
    return [line for turn in call.turns for line in turn.heard if line]


def dialled(call: Call) -> str:
    return next((turn.dialed for turn in call.turns if turn.dialed), "")


def hung_up(call: Call) -> bool:
    return any(turn.hung_up for turn in call.turns)


def stored(stack: Stack, call: Call) -> list[tuple[str, str]]:
    return [(ROLES[t.role], t.text) for t in transcript(stack, call.call_sid).turns]


def test_a_question_is_answered_from_the_knowledge(stack: Stack) -> None:
    call = play(stack, Input("speech", "are you open on saturday"))
    assert any("Saturday from 8 to 4" in line for line in heard(call))


def test_a_goodbye_is_said_back_and_the_call_ends(stack: Stack) -> None:
    call = play(stack, Input("speech", "that's all, thanks, bye"))
    assert heard(call)[-1] == phrases.english().FAREWELL
    assert stored(stack, call)[-2:] == [
        ("user", "that's all, thanks, bye"),
        ("assistant", phrases.english().FAREWELL),
    ]


def test_asking_for_a_person_dials_the_front_desk_and_keeps_the_words(stack: Stack) -> None:
    call = play(stack, Input("speech", "can I talk to a real person"))
    assert dialled(call) == FRONT_DESK
    assert ("user", "can I talk to a real person") in stored(stack, call)


def test_the_keypad_helps_and_zero_dials_the_front_desk(stack: Stack) -> None:
    call = play(stack, Input("digits", "5"), Input("digits", "0"))
    assert phrases.english().KEYPAD_HELP in heard(call)
    assert dialled(call) == FRONT_DESK


def test_a_transfer_the_model_decides_dials_the_departments_number(stack: Stack) -> None:
    call = play(stack, Input("speech", "I'd like to speak to the manager please"))
    assert dialled(call) == MANAGER
    assert "Let me put you through to our manager" in " ".join(heard(call))


def test_silence_is_asked_about_then_ends_the_call(stack: Stack) -> None:
    call = play(stack, Input("silence"), Input("silence"), Input("silence"))
    lines = heard(call)
    assert lines[-1] == phrases.english().NO_INPUT_GOODBYE
    asked_again = [
        line
        for line in lines
        if line in (phrases.english().DIDNT_CATCH, phrases.english().STILL_THERE)
    ]
    assert len(asked_again) == 2  # MAX_REPROMPTS
    assert hung_up(call) or stack.env["VOICE_MODE"] == "relay"


def test_a_message_is_taken_over_several_turns(stack: Stack) -> None:
    call = play(
        stack,
        Input("speech", "can I leave a message"),
        Input("speech", "Jo Baker"),
        Input("speech", "555 0100"),
        Input("speech", "Please call me about a cake."),
    )
    assert any("passed your message on" in line for line in heard(call))
    [message] = transcript(stack, call.call_sid).messages
    assert (message.caller_name, message.callback_number) == ("Jo Baker", "555 0100")
