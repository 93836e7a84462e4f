"""Text that is read aloud on a phone line: cleaning model output, and cutting a token
stream into whole sentences that can be spoken one at a time."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

from aura_common.text import xml_safe

_MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"\b(?:https?://|www\.)\S+?(?=[.,;:!?)]*(?:\s|$))", re.IGNORECASE)
_CODE = re.compile(r"`{1,3}([^`]*)`{1,3}")
_EMPHASIS = re.compile(r"(\*{1,3}|_{2,3})(\S(?:.*?\S)?)\1")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*+\u2022]|\d+[.)])\s+", re.MULTILINE)
_QUOTE = re.compile(r"^\s*>\s?", re.MULTILINE)
_RULE = re.compile(r"^\s*(?:[-*_]\s*){3,}$", re.MULTILINE)
_LEFTOVER_MARKS = re.compile(r"[*_#`|~]+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")


def _is_emoji(char: str) -> bool:
    category = unicodedata.category(char)
    # So: pictographs and symbols; Cs/Co: stray surrogates and private use; then the skin
    # tones, variation selector and zero-width joiner that build emoji sequences.
    return (
        category in ("So", "Cs", "Co")
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or char in ("\ufe0f", "\u200d")
    )


def clean_for_speech(text: str) -> str:
    """Plain spoken sentences: no markdown, emojis or URLs, one line, nothing XML forbids."""
    text = _MARKDOWN_LINK.sub(r"\1", xml_safe(text))
    text = _URL.sub("", text)
    text = _CODE.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\2", text)
    text = _RULE.sub("", text)
    text = _HEADING.sub("", text)
    text = _QUOTE.sub("", text)
    # A list item becomes a sentence of its own so that the voice pauses between items.
    lines = []
    for line in text.splitlines():
        item = _BULLET.sub("", line).strip()
        if item and _BULLET.match(line) and item[-1] not in ".!?:;,":
            item += "."
        lines.append(item)
    text = " ".join(lines)
    text = _LEFTOVER_MARKS.sub(" ", text)
    if not text.isascii():  # ASCII holds no emoji: most answers skip the scan by character
        text = "".join(c for c in text if c < "\x80" or not _is_emoji(c))
    text = " ".join(text.split())
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text).strip()


# A sentence ends at . ! or ? followed by a space, unless the dot belongs to a number
# ("3.5") or a common abbreviation ("Dr. Smith", "e.g. this").
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st prof sr jr vs etc eg ie e.g i.e no approx appt dept".split()
)


def _ends_with_abbreviation(sentence: str) -> bool:
    words = sentence.rstrip(".").split()
    return bool(words) and sentence.endswith(".") and words[-1].lower() in _ABBREVIATIONS


class SentenceSplitter:
    """Collects streamed text and releases it in whole sentences of at least `min_chars`
    characters, so that the caller hears natural phrases rather than fragments."""

    def __init__(self, min_chars: int = 24) -> None:
        self._min_chars = min_chars
        self._buffer = ""

    def feed(self, delta: str) -> Iterator[str]:
        self._buffer += delta
        start = 0
        for match in _SENTENCE_END.finditer(self._buffer):
            candidate = self._buffer[start : match.start()]
            if _ends_with_abbreviation(candidate) or len(candidate.strip()) < self._min_chars:
                continue
            piece = clean_for_speech(candidate)
            start = match.end()
            if piece:
                yield piece
        self._buffer = self._buffer[start:]

    def flush(self) -> Iterator[str]:
        piece = clean_for_speech(self._buffer)
        self._buffer = ""
        if piece:
            yield piece
