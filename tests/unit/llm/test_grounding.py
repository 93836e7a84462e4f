"""The guard's reading of facts: the same fact in any spelling is one fact, invented ones
are caught and true ones pass."""

from __future__ import annotations

import pytest

from aura_llm.config import SAMPLE_KNOWLEDGE_BASE
from aura_llm.grounding import Grounds, ungrounded

SOURCES = [
    SAMPLE_KNOWLEDGE_BASE.read_text(),
    "Call the orders line on (555) 555-0142. Closed on December 25th.",
    "Brunch is served from 9:30 to noon. Tastings cost $12.50 per person.",
]


@pytest.fixture(scope="module")
def grounds() -> Grounds:
    return Grounds.of(SOURCES)


@pytest.mark.parametrize(
    "answer",
    [
        "On Saturday we're open from 8 am to 4 pm.",
        "Saturday from eight to four.",
        "On Saturdays we open at eight o'clock.",
        "We close at 6 in the evening.",
        "We close at 18:00 on weekdays.",
        "We're open on Wednesday from 7 to 6.",  # inside "Monday to Friday"
        "We're open at weekends.",
        "A sourdough loaf is $6.",
        "A sourdough loaf is six dollars.",
        "Custom cakes start at forty-five dollars.",
        "Delivery is a flat eight dollars within five miles.",
        "We're at 42 Harbor Lane; the number 12 bus stops outside.",
        "Call 555-0142.",
        "Call five five five, zero one four two.",
        "Brunch starts at half past nine and ends at 12 pm.",
        "Brunch is from nine thirty until midday.",
        "Tastings are twelve fifty each.",
        "We're closed on the 25th of December.",
        "Just one moment, please. Which one would you like?",
        "Sure, I can help with that.",
    ],
)
def test_true_facts_in_any_spelling_pass(grounds: Grounds, answer: str) -> None:
    assert ungrounded(answer, grounds) == []


@pytest.mark.parametrize(
    ("answer", "invented"),
    [
        ("We open at ten.", ["10"]),
        ("We open at 10:00 am on Saturday.", ["10:00"]),
        ("On Sunday we close at 11 am.", ["11"]),
        ("A sourdough loaf is $14.", ["14"]),
        ("Pastries are $3.50.", ["3.50"]),
        ("We're at 17 Harbor Lane.", ["17"]),
        ("Call 555-0199.", ["555-0199"]),
        ("We're closed on January 1st.", ["january 1"]),  # 1 is a time ("8 to 1")
        ("Tastings cost seventy dollars.", ["70"]),
        ("Brunch starts at a quarter to ten.", ["9:45"]),
    ],
)
def test_invented_facts_are_caught(grounds: Grounds, answer: str, invented: list[str]) -> None:
    assert ungrounded(answer, grounds) == invented


def test_days_outside_every_range_are_caught() -> None:
    grounds = Grounds.of(["Open Tuesday to Thursday, 10 to 2."])
    assert ungrounded("We're open on Wednesday.", grounds) == []
    assert ungrounded("We're open on Monday.", grounds) == ["monday"]
    assert ungrounded("We're open every weekday.", grounds) == ["weekday", "weekday"]
