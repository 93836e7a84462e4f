"""Every fixed line a caller hears from telephony, in every voice mode and every language
the deployment speaks: gather renders them in <Say>, relay sends them as text tokens, and
realtime has the model say them. What the model says itself is not here.

The lines live in catalogue files, one per language (phrasebook/en.yaml, es.yaml, fr.yaml,
de.yaml); PHRASES_PATH names a directory of the operator's own, which add languages or
replace lines (a file named by the full tag, es-MX.yaml, wins over one named by the
language, es.yaml). A configured language without a complete catalogue stops the service
at start, naming the missing lines."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from aura_telephony.config import Settings

SHIPPED = Path(__file__).parent / "phrasebook"


class PhrasebookError(Exception):
    """A configured language has no catalogue, or an incomplete one."""


@dataclass(frozen=True, slots=True)
class Voices:
    """How a language is spoken and heard: gather's <Say> voice, and ConversationRelay's
    providers, voice and speech model for it (empty: Twilio's defaults)."""

    say: str = ""
    relay_tts_provider: str = ""
    relay_voice: str = ""
    relay_transcription_provider: str = ""
    relay_speech_model: str = ""


@dataclass(frozen=True, slots=True)
class Phrases:
    """One language's lines. {assistant_name}, {digit} and {languages} are filled in by
    the methods that need them."""

    language: str  # the BCP-47 tag it was loaded for, e.g. es-ES
    name: str  # the language's name in itself: Español
    voices: Voices
    WELCOME: str
    CHOOSE_LANGUAGE: str
    NO_INPUT_GOODBYE: str
    FAREWELL: str
    APOLOGY: str
    HOLDING: str
    DIDNT_CATCH: str
    NOT_SURE: str
    KEYPAD_HELP: str
    FILLER: str
    RELAY_FAILED: str
    STILL_THERE: str
    TRANSFERRING: str
    TRANSFER_FAILED: str
    NOBODY_AVAILABLE: str
    MESSAGE_TAKEN: str
    MESSAGE_NOT_SAVED: str
    TOO_MANY_CALLS: str
    LANGUAGE_NOT_AVAILABLE: str
    ONLY_KNOWLEDGE_LANGUAGE: str
    BRIEFING: str
    WHISPER_ACCEPT: str
    WHISPER_FALLBACK: str
    RECORDING_NOTICE: str
    RECORDING_STOPPED: str
    RECORDING_OFF: str

    def welcome(self, assistant_name: str) -> str:
        return self.WELCOME.replace("{assistant_name}", assistant_name)

    def choose(self, digit: str) -> str:
        return self.CHOOSE_LANGUAGE.replace("{digit}", digit)

    def notice(self, digit: str) -> str:
        return self.RECORDING_NOTICE.replace("{digit}", digit)

    def whisper_fallback(self, caller: str, request: str) -> str:
        return self.WHISPER_FALLBACK.replace("{caller}", caller).replace("{request}", request)


LINES: tuple[str, ...] = tuple(f.name for f in fields(Phrases) if f.name.isupper())


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise PhrasebookError(f"{path}: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("lines", {}), dict):
        raise PhrasebookError(f"{path}: expected name, voices and lines")
    return data


def _files(tag: str, directories: list[Path]) -> list[Path]:
    """The catalogue files for `tag`, least specific first: the shipped language, the
    shipped tag, then the operator's language and tag."""
    names = [f"{tag.split('-')[0].lower()}.yaml", f"{tag}.yaml"]
    found = []
    for directory in directories:
        for name in dict.fromkeys(names):
            if (directory / name).is_file():
                found.append(directory / name)
    return found


def load(tag: str, override: Path | None = None) -> Phrases:
    """The catalogue of `tag`, the operator's lines over the shipped ones."""
    directories = [SHIPPED, *([override] if override else [])]
    files = _files(tag, directories)
    if not files:
        raise PhrasebookError(
            f"no phrase catalogue for {tag}: add {tag.split('-')[0].lower()}.yaml to PHRASES_PATH"
        )
    name, voices, lines = tag, {}, {}
    for path in files:
        data = _read(path)
        name = str(data.get("name") or name)
        voices.update({k: str(v or "") for k, v in (data.get("voices") or {}).items()})
        lines.update({k: str(v) for k, v in (data.get("lines") or {}).items() if v})
    missing = [line for line in LINES if not lines.get(line)]
    if missing:
        raise PhrasebookError(f"the {tag} phrase catalogue lacks {', '.join(missing)}")
    known = {f.name for f in fields(Voices)}
    return Phrases(
        language=tag,
        name=name,
        voices=Voices(**{k: v for k, v in voices.items() if k in known}),
        **{line: lines[line] for line in LINES},
    )


@cache
def english() -> Phrases:
    """The shipped English lines (what a single-language deployment says by default)."""
    return load("en-US")


class Phrasebook:
    """The catalogues of a deployment's languages, the first the default; `voices`
    replace a language's catalogue voices where they name one."""

    def __init__(
        self,
        languages: list[str],
        override: Path | None = None,
        voices: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self._by_tag = {}
        for tag in languages:
            phrases = load(tag, override)
            chosen = {k: v for k, v in (voices or {}).get(tag, {}).items() if v}
            unknown = set(chosen) - {f.name for f in fields(Voices)}
            if unknown:
                raise PhrasebookError(f"unknown voice settings for {tag}: {sorted(unknown)}")
            self._by_tag[tag] = replace(phrases, voices=replace(phrases.voices, **chosen))
        self.languages = list(self._by_tag)
        self.default = self._by_tag[self.languages[0]]

    def __call__(self, tag: str = "") -> Phrases:
        """The lines of `tag`, or the default language's when it is not configured."""
        return self._by_tag.get(tag, self.default)

    def find(self, tag: str) -> str | None:
        """The configured language `tag` names (es-ES for "es-es" or "es"), or None."""
        wanted = tag.strip().lower()
        for language in self.languages:
            if language.lower() == wanted:
                return language
        primary = wanted.split("-")[0]
        return next((t for t in self.languages if t.split("-")[0].lower() == primary), None)

    def replace_notice(self, tag: str, text: str) -> None:
        """The operator's own recording notice (RECORDING_NOTICE) for `tag`."""
        self._by_tag[tag] = replace(self._by_tag[tag], RECORDING_NOTICE=text)
        self.default = self._by_tag[self.languages[0]]

    def names(self) -> str:
        """The configured languages by their own names: "English, Español"."""
        return ", ".join(self._by_tag[t].name for t in self.languages)


def from_settings(settings: Settings) -> Phrasebook:
    """The deployment's phrasebook: LANGUAGES with their catalogues, LANGUAGE_VOICES over
    them, and for the first language the voice settings of a one-language deployment
    (AI_ASSISTANT_VOICE and RELAY_*) when they are set."""
    first = settings.languages[0]
    voices = {tag: dict(v) for tag, v in settings.LANGUAGE_VOICES.items()}
    mine = {
        "relay_tts_provider": settings.RELAY_TTS_PROVIDER,
        "relay_voice": settings.RELAY_VOICE,
        "relay_transcription_provider": settings.RELAY_TRANSCRIPTION_PROVIDER,
        "relay_speech_model": settings.RELAY_SPEECH_MODEL,
    }
    if "AI_ASSISTANT_VOICE" in settings.model_fields_set or first.lower().startswith("en"):
        mine["say"] = settings.AI_ASSISTANT_VOICE
    voices[first] = {**{k: v for k, v in mine.items() if v}, **voices.get(first, {})}
    book = Phrasebook(settings.languages, settings.PHRASES_PATH, voices)
    if settings.RECORDING_NOTICE:  # the operator's own notice, in the first language
        book.replace_notice(first, settings.RECORDING_NOTICE)
    return book
