from __future__ import annotations

import pytest

from aura_telephony.conversation import is_goodbye


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
