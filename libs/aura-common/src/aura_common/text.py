"""Text as the services match it: what a caller said, reduced to lowercase words."""

from __future__ import annotations

import re


def normalise(text: str) -> str:
    """Lowercase words and digits separated by single spaces; apostrophes vanish, so
    "that's" and "thats" are one word, and all other punctuation becomes a space."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())
