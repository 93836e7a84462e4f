from __future__ import annotations

import pytest

from aura_llm.speech import SentenceSplitter, clean_for_speech


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("**Bold** and *italic* and __strong__", "Bold and italic and strong"),
        ("## Opening hours\nWe open at 9.", "Opening hours We open at 9."),
        (
            "Options:\n- Sourdough\n- Rye bread\n1. Croissant",
            "Options: Sourdough. Rye bread. Croissant.",
        ),
        ("See [our menu](https://x.example/menu).", "See our menu."),
        ("Visit https://bakery.example/order, or call.", "Visit, or call."),
        ("Use `promo10` at checkout", "Use promo10 at checkout"),
        ("Great choice! 🎂🥳 See you soon 👋🏽", "Great choice! See you soon"),
        ("Crème brûlée, ¿sí? 👨‍🍳 © Ōsaka", "Crème brûlée, ¿sí? Ōsaka"),
        ("> quoted\n---\nplain", "quoted plain"),
        ("Prices: 3.50 to 5 dollars", "Prices: 3.50 to 5 dollars"),
    ],
)
def test_clean_for_speech(written: str, spoken: str) -> None:
    assert clean_for_speech(written) == spoken


def split(*deltas: str, min_chars: int = 10) -> list[str]:
    splitter = SentenceSplitter(min_chars=min_chars)
    pieces = [piece for delta in deltas for piece in splitter.feed(delta)]
    return pieces + list(splitter.flush())


def test_sentences_are_released_as_soon_as_they_end() -> None:
    splitter = SentenceSplitter(min_chars=10)
    assert list(splitter.feed("We open at nine")) == []
    assert list(splitter.feed(" today. And close")) == ["We open at nine today."]
    assert list(splitter.flush()) == ["And close"]


def test_numbers_and_abbreviations_do_not_end_a_sentence() -> None:
    assert split("Dr. Smith sees patients at 9.30 on Mondays. ", "Call us e.g. today.") == [
        "Dr. Smith sees patients at 9.30 on Mondays.",
        "Call us e.g. today.",
    ]


def test_short_sentences_are_joined_with_the_next() -> None:
    assert split("Yes! We do. Our cakes start at forty dollars.", min_chars=20) == [
        "Yes! We do. Our cakes start at forty dollars."
    ]
