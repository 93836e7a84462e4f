from __future__ import annotations

import pytest

from aura_telephony.conversation import is_goodbye, wants_a_person


@pytest.mark.parametrize(
    "said",
    [
        "goodbye",
        "Bye!",
        "ok thanks, bye",
        "Thank you so much.",
        "thanks",
        "That's all, thank you",
        "no that's all",
        "I'm done",
        "finish",
        "okay bye bye",
        "nothing else, thanks, have a nice day",
        "Good bye",
    ],
)
def test_goodbyes(said: str) -> None:
    assert is_goodbye(said)


@pytest.mark.parametrize(
    "said",
    [
        "I'm done with the form, what next?",
        "thanks, what are your opening hours?",
        "can I finish my order by phone",
        "is that all you sell",
        "hello",
        "",
        "thank you for the cake, can I order another one",
        "byes and hellos",  # not the word "bye"
    ],
)
def test_not_goodbyes(said: str) -> None:
    assert not is_goodbye(said)


@pytest.mark.parametrize(
    "said",
    [
        "I want to speak to someone",
        "can I talk to a person",
        "Put me through to someone, please.",
        "could you put me through",
        "I'd like to talk with somebody about my order",
        "transfer me",
        "connect me with a human",
        "can I speak to a real person",
        "agent",
        "representative please",
        "I need an operator",
        "are you able to put me through to someone?",
        "let me talk to an actual person",
    ],
)
def test_asking_for_a_person(said: str) -> None:
    assert wants_a_person(said)


@pytest.mark.parametrize(
    "said",
    [
        "are you a real person?",
        "are you human",
        "r u a human",
        "can I talk to you about cakes",
        "I talked to someone yesterday about my order",
        "do you have vegan bread",
        "personal cake orders",
    ],
)
def test_not_asking_for_a_person(said: str) -> None:
    assert not wants_a_person(said)
