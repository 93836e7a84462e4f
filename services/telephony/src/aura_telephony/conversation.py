"""What the caller's words mean for the call flow, before any model sees them."""

from __future__ import annotations

import re
import unicodedata

from aura_common.text import normalise

_GOODBYE_PHRASES = (
    "goodbye",
    "good bye",
    "bye bye",
    "bye",
    "thank you",
    "thanks",
    "thats all",
    "that is all",
    "thats it",
    "that is it",
    "done",
    "finish",
    "finished",
    "see you",
    "see ya",
)
# Words that may surround a goodbye without adding a request of their own.
_FILLER_PHRASES = (
    "ok",
    "okay",
    "alright",
    "all right",
    "great",
    "cool",
    "perfect",
    "good",
    "well",
    "so",
    "then",
    "very much",
    "so much",
    "a lot",
    "for now",
    "for your help",
    "for that",
    "im",
    "i am",
    "we are",
    "were",
    "you",
    "that",
    "thats",
    "its",
    "it",
    "all",
    "and",
    "oh",
    "yes",
    "yeah",
    "no",
    "nope",
    "nothing else",
    "really",
    "have a nice day",
    "have a good day",
    "have a great day",
    "cheers",
    "again",
    "i think",
    "now",
    "just",
)


def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    longest_first = sorted(phrases, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(p) for p in longest_first) + r")\b")


_GOODBYE = _phrase_pattern(_GOODBYE_PHRASES)
_FILLER = _phrase_pattern(_FILLER_PHRASES)


def is_goodbye(text: str) -> bool:
    """True when the caller only says goodbye: "ok thanks, bye" ends the call, while
    "I'm done with the form, what next?" still asks something and does not."""
    text = normalise(text)
    without_goodbyes, found = _GOODBYE.subn(" ", text)
    return found > 0 and not _FILLER.sub(" ", without_goodbyes).split()


_HUMAN = re.compile(
    r"\b(agent|human|representative|operator|real person|live person|a person|someone real"
    r"|receptionist)\b"
)
# Asking to be put through, whoever to: "I want to speak to someone", "can I talk to a
# person", "put me through to someone", "transfer me", "connect me with somebody".
_ASKS_FOR_SOMEONE = re.compile(
    r"\b(speak|talk|chat)(ing)? (to|with) (someone|somebody|anyone|anybody|a (real |live )?"
    r"(person|human)|a member of (staff|the team|your team)|(a |an )?(agent|operator|"
    r"representative|receptionist)|(a |an )?(staff member|actual person))\b"
    r"|\bput me (through|thru)\b|\btransfer me\b|\bconnect me (to|with)\b"
)
# "Are you a human?" asks about the assistant; it is not a request to be transferred.
_ASKS_ABOUT_ASSISTANT = re.compile(r"\b(are|r) (you|u)\b")


def wants_a_person(text: str) -> bool:
    text = normalise(text)
    if _ASKS_FOR_SOMEONE.search(text):
        return True
    return bool(_HUMAN.search(text)) and not _ASKS_ABOUT_ASSISTANT.search(text)


def presses_for_a_person(digits: str) -> bool:
    """0 on the keypad asks for a person, in both voice modes."""
    return digits.strip().startswith("0")


def parse_confidence(value: str) -> float | None:
    """Twilio's Confidence (0 to 1), or None when it is missing, not a number, or exactly 0:
    some speech models send 0 for "not scored", and reading that as noise would stop every
    turn of every call."""
    try:
        confidence = float(value)
    except ValueError:
        return None
    return confidence if 0.0 < confidence <= 1.0 else None


# Language names a caller may ask for, in English and in themselves (accents folded), by
# primary language subtag: a request for one the deployment does not speak is refused.
_LANGUAGE_NAMES = {
    "english": "en", "ingles": "en", "anglais": "en", "englisch": "en",
    "spanish": "es", "espanol": "es", "castellano": "es", "espagnol": "es", "spanisch": "es",
    "french": "fr", "francais": "fr", "frances": "fr", "franzosisch": "fr",
    "german": "de", "deutsch": "de", "aleman": "de", "allemand": "de",
    "italian": "it", "italiano": "it", "portuguese": "pt", "portugues": "pt",
    "chinese": "zh", "mandarin": "zh", "cantonese": "zh", "japanese": "ja", "korean": "ko",
    "arabic": "ar", "russian": "ru", "hindi": "hi", "polish": "pl", "dutch": "nl",
    "vietnamese": "vi", "tagalog": "tl", "turkish": "tr", "ukrainian": "uk",
}  # fmt: skip
# A language's name counts as a request only after words like these ("in Spanish",
# "¿habla español?"), or alone: "French bread" asks for bread.
_ASKING = (
    r"(?:speak|talk|switch to|change to|in|habla|hablar|hablame|hablo|en|parle|parlez"
    r"|parler|sprechen|sprichst|auf)"
)
_NAMES = "|".join(_LANGUAGE_NAMES)
# What may follow the name in a request; anything else ("in French bread") is not one.
_AFTER = r"(?:\s+(?:please|por favor|sil vous plait|bitte|to me|with me|instead|now))*$"
_REQUEST = re.compile(
    rf"^({_NAMES}){_AFTER}"
    rf"|\b{_ASKING}\s+(?:\w+\s+)?({_NAMES}){_AFTER}"
    rf"|\b({_NAMES})\s+(?:sprechen|reden)\b"  # German puts the verb last
)


def _fold(text: str) -> str:
    """Lowercase words without accents: "¿Habla español?" is "habla espanol"."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return normalise(plain)


def asks_for_language(speech: str) -> str:
    """The primary language subtag (es, fr...) the caller asks to speak in, or ""."""
    found = _REQUEST.search(_fold(speech))
    if found is None:
        return ""
    return _LANGUAGE_NAMES[next(g for g in found.groups() if g)]


# A caller refusing to be recorded, in the languages Aura ships (accents folded): a
# negation with "record", or asking for the recording to stop. "Can you record my order"
# and "I'd like to record a message" are not refusals.
_REFUSES_RECORDING = re.compile(
    r"\b(?:dont|do not|never) record\b"
    r"|\b(?:dont|do not) (?:want|wish|consent|agree)\b.*\brecord(?:ed|ing)?\b"
    r"|\b(?:stop|turn off|switch off|cancel|end|pause) (?:the )?(?:call )?recording\b"
    r"|\b(?:no|without) recording\b|\bnot (?:to )?be recorded\b"
    r"|\bno (?:me |la |lo )?grab(?:e|es|en|ar|acion)\b|\bno quiero que (?:se |me )?grab"
    r"|\b(?:deje|dejen|pare|paren) de grabar\b|\bsin grabar\b"
    r"|\bn?enregistrez pas\b|\bne (?:m|l)?(?:enregistrez|enregistre) pas\b"
    r"|\bpas d ?enregistrement\b|\barretez (?:l ?)?enregistrement\b|\barretez d ?enregistrer\b"
    r"|\bnicht (?:aufnehmen|aufzeichnen|aufgezeichnet|aufgenommen)\b"
    r"|\bkeine (?:aufnahme|aufzeichnung)\b|\b(?:aufnahme|aufzeichnung) (?:stoppen|beenden)\b"
)


def refuses_recording(speech: str) -> bool:
    """True when the caller says they do not want the call recorded."""
    return bool(_REFUSES_RECORDING.search(_fold(speech)))
