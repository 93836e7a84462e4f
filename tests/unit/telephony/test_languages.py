"""Callers in more than one language: the phrase catalogues, choosing a language (keys,
words, the model's switch_language), and the TwiML each language gets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aura_common.actions import CallAction
from aura_telephony import phrases
from aura_telephony.config import Settings
from aura_telephony.conversation import asks_for_language
from aura_telephony.phrases import LINES, Phrasebook, PhrasebookError
from aura_telephony.policy import CallPolicy
from aura_telephony.twiml import Twiml
from tests.support.twilio import Twiml as Parsed

TWO = {"LANGUAGES": "en-US,es-ES"}


def setup(**env: object) -> tuple[Settings, CallPolicy, Twiml]:
    settings = Settings.model_validate(env)
    book = phrases.from_settings(settings)
    return settings, CallPolicy(settings, book), Twiml(settings, book)


@pytest.mark.parametrize("path", sorted(phrases.SHIPPED.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_catalogue_has_every_line_and_its_placeholders(path: Path) -> None:
    english = yaml.safe_load((phrases.SHIPPED / "en.yaml").read_text())["lines"]
    lines = yaml.safe_load(path.read_text())["lines"]
    assert set(lines) == set(LINES) == set(english)
    for name, line in lines.items():
        for placeholder in ("{assistant_name}", "{digit}", "{languages}", "{caller}", "{request}"):
            assert (placeholder in line) == (placeholder in english[name]), (name, placeholder)


def test_a_language_without_a_complete_catalogue_is_named_with_what_it_lacks(
    tmp_path: Path,
) -> None:
    with pytest.raises(PhrasebookError, match="no phrase catalogue for it-IT"):
        Phrasebook(["en-US", "it-IT"])
    (tmp_path / "it.yaml").write_text("name: Italiano\nlines:\n  FAREWELL: Arrivederci!\n")
    with pytest.raises(PhrasebookError, match="it-IT phrase catalogue lacks WELCOME, "):
        Phrasebook(["en-US", "it-IT"], tmp_path)


def test_the_operators_files_replace_lines_and_a_full_tag_wins(tmp_path: Path) -> None:
    (tmp_path / "es.yaml").write_text("lines:\n  FAREWELL: Adiós, amigo.\n")
    (tmp_path / "es-MX.yaml").write_text("lines:\n  FAREWELL: ¡Hasta luego!\n")
    book = Phrasebook(["es-ES", "es-MX"], tmp_path)
    assert book("es-ES").FAREWELL == "Adiós, amigo."
    assert book("es-MX").FAREWELL == "¡Hasta luego!"
    assert book("es-MX").STILL_THERE == phrases.load("es-ES").STILL_THERE  # the rest shipped


def test_the_welcome_offers_the_other_languages_each_in_its_own_voice() -> None:
    _, _, twiml = setup(**TWO)
    document = twiml.ask("Hello!", offer=True)
    says = Parsed(document).root.findall("Gather/Say")
    assert [(s.text, s.get("voice"), s.get("language")) for s in says] == [
        ("Hello!", "Polly.Joanna", "en-US"),
        ("Para español, oprima 2.", "Polly.Lucia", "es-ES"),
    ]


def test_a_key_chooses_a_language_for_the_rest_of_the_call() -> None:
    _, policy, twiml = setup(**TWO)
    chosen = policy.pressed("2")
    assert chosen.language == "es-ES"
    assert chosen.say.startswith("¡Hola!")
    # Everything after is in Spanish: the recogniser, the voice, the action URL.
    gather = Parsed(twiml.ask(chosen.say, lang="es-ES")).gather
    assert gather is not None
    assert gather.get("language") == "es-ES"
    assert gather.get("action") == "/api/voice/process?lang=es-ES"
    assert policy.pressed("0", "es-ES").say == phrases.load("es-ES").NOBODY_AVAILABLE
    assert policy.silent(0, "es-ES").say == phrases.load("es-ES").STILL_THERE
    # With one language, 2 is only a key.
    _, alone, _ = setup()
    assert alone.pressed("2").language == ""


@pytest.mark.parametrize(
    ("said", "asked"),
    [
        ("¿Puede hablar en español?", "es"),
        ("in Spanish please", "es"),
        ("Können Sie Deutsch sprechen", "de"),
        ("Parlez-vous français ?", "fr"),
        ("Can you speak Italian?", "it"),
        ("do you have french bread", ""),
        ("I'd like it in French bread", ""),
        ("what time do you open", ""),
    ],
)
def test_a_caller_asking_for_a_language_is_understood(said: str, asked: str) -> None:
    assert asks_for_language(said) == asked


def test_asking_switches_to_a_configured_language_and_politely_refuses_another() -> None:
    _, policy, _ = setup(**TWO)
    switched = policy.heard("¿Puede hablar en español?")
    assert switched.language == "es-ES"
    assert switched.keep_caller
    refused = policy.heard("Can you speak Italian?")
    assert refused.next == "ask"
    assert refused.language == ""
    assert refused.say == "Sorry, on this line I can speak English, Español."
    assert policy.heard("in English", lang="en-US").next == "model"  # already


def test_the_models_switch_holds_only_for_configured_languages() -> None:
    _, policy, _ = setup(**TWO)
    action = CallAction("switch_language", language="es-ES")
    assert policy.answered("Claro.", (action,)).language == "es-ES"
    forged = CallAction("switch_language", language="ru-RU")
    assert policy.answered("Конечно.", (forged,)).language == ""


def test_relay_declares_every_language_with_its_voice() -> None:
    _, _, twiml = setup(
        **TWO,
        LANGUAGE_VOICES={
            "es-ES": {"relay_tts_provider": "Google", "relay_voice": "es-ES-Neural2-A"}
        },
    )
    relay = Parsed(twiml.relay("wss://aura.example.com/r", "Hello!", lang="es-ES")).root.find(
        "Connect/ConversationRelay"
    )
    assert relay is not None
    assert relay.get("language") == "es-ES"
    assert relay.get("ttsProvider") == "Google"
    languages = {e.get("code"): e.attrib for e in relay.findall("Language")}
    assert set(languages) == {"en-US", "es-ES"}
    assert languages["es-ES"]["voice"] == "es-ES-Neural2-A"
    parameters = {p.get("name"): p.get("value") for p in relay.findall("Parameter")}
    assert parameters == {"lang": "es-ES"}


def test_unknown_voice_settings_are_refused() -> None:
    settings = Settings.model_validate({**TWO, "LANGUAGE_VOICES": {"es-ES": {"colour": "red"}}})
    with pytest.raises(PhrasebookError, match="unknown voice settings for es-ES"):
        phrases.from_settings(settings)
