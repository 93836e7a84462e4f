"""Text as the services match it (what a caller said, reduced to lowercase words) and as
it may be spoken (only characters XML 1.0 allows, so that TwiML always parses)."""

from __future__ import annotations

import re

from pydantic import ValidationError


def normalise(text: str) -> str:
    """Lowercase words and digits separated by single spaces; apostrophes vanish, so
    "that's" and "thats" are one word, and all other punctuation becomes a space."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


# Everything XML 1.0 forbids: C0 controls but tab, newline and carriage return,
# surrogates, and U+FFFE/U+FFFF. Twilio cannot read a document that holds one.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """`text` without the characters XML 1.0 forbids."""
    return _NOT_XML.sub("", text)


def validation_problems(error: ValidationError) -> list[str]:
    """Each problem pydantic found, as "entries[2].answer: Field required"."""
    problems = []
    for item in error.errors(include_url=False):
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in item["loc"]
        ).lstrip(".")
        problems.append(f"{where}: {item['msg']}" if where else item["msg"])
    return problems


def heard_part(text: str, played_ms: int, total_ms: int) -> str:
    """The words of a spoken answer a caller heard before cutting it short, when `played_ms`
    of its `total_ms` of audio were played: speech runs at an even pace, so the share of the
    words is the share of the audio (rounded down to whole words; nothing when nothing
    played)."""
    words = text.split()
    if played_ms <= 0:
        return ""
    if total_ms <= 0 or played_ms >= total_ms:
        return " ".join(words)
    return " ".join(words[: len(words) * played_ms // total_ms])
