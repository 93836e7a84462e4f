from __future__ import annotations

from xml.etree import ElementTree

from hypothesis import given, settings
from hypothesis import strategies as st

from aura_llm.speech import clean_for_speech
from aura_telephony import phrases
from aura_telephony.config import Settings
from aura_telephony.twiml import PROCESS_PATH, Twiml
from tests.support.twilio import Twiml as Parsed


def builder(**env: str) -> Twiml:
    settings = Settings.model_validate({"TRANSFER_MODE": "cold", **env})
    return Twiml(settings, phrases.from_settings(settings))


def test_ask_gathers_speech_and_keys_with_the_configured_options() -> None:
    parsed = Parsed(
        builder(
            AI_ASSISTANT_VOICE="Polly.Amy",
            SPEECH_TIMEOUT="3",
            SPEECH_LANGUAGE="en-GB",
            SPEECH_MODEL="phone_call",
            SPEECH_HINTS="sourdough, croissant",
            SPEECH_PROFANITY_FILTER="false",
        ).ask("Hi there")
    )
    gather = parsed.gather
    assert gather is not None
    assert gather.attrib == {
        "input": "speech dtmf",
        "action": PROCESS_PATH,
        "method": "POST",
        "speechTimeout": "3",
        "numDigits": "1",
        "actionOnEmptyResult": "true",
        "language": "en-GB",
        "speechModel": "phone_call",
        "hints": "sourdough, croissant",
        "profanityFilter": "false",
    }
    say = gather.find("Say")
    assert say is not None
    assert say.text == "Hi there"
    assert say.attrib["voice"] == "Polly.Amy"
    assert parsed.verbs == ["Gather", "Say", "Hangup"]


def test_caller_words_stay_text() -> None:
    hostile = 'Hello</Say><Hangup/><Say voice="x">& more'
    document = builder().ask(hostile)
    parsed = Parsed(document)
    assert parsed.spoken == hostile
    assert parsed.verbs == ["Gather", "Say", "Hangup"]
    assert "&lt;Hangup/&gt;" in document


def test_hang_up() -> None:
    parsed = Parsed(builder().hang_up("Goodbye!"))
    assert parsed.verbs == ["Say", "Hangup"]
    assert parsed.hangs_up


def test_empty() -> None:
    assert Parsed(Twiml.empty()).verbs == []


def test_defaults_leave_out_the_speech_model() -> None:
    gather = Parsed(builder().ask("Hi")).gather
    assert gather is not None
    assert "speechModel" not in gather.attrib
    assert gather.attrib["speechTimeout"] == "auto"
    assert gather.attrib["profanityFilter"] == "true"


def test_reprompt_count_travels_in_the_action_url() -> None:
    gather = Parsed(builder().ask("Again?", reprompts=2)).gather
    assert gather is not None
    assert gather.attrib["action"] == f"{PROCESS_PATH}?reprompts=2"


def test_transfer_dials_then_apologises_if_nobody_answers() -> None:
    parsed = Parsed(builder().transfer("+15550001234"))
    assert parsed.verbs == ["Say", "Dial", "Say", "Hangup"]
    dial = parsed.root.find("Dial")
    assert dial is not None
    assert dial.text == "+15550001234"


def test_startup_warnings_for_combinations_twilio_rejects() -> None:
    settings = Settings.model_validate(
        {"SPEECH_MODEL": "phone_call", "SPEECH_TIMEOUT": "auto", "SPEECH_LANGUAGE": "english"}
    )
    warnings = " ".join(settings.warnings())
    assert "13335" in warnings
    assert "13331" in warnings
    assert "TWILIO_AUTH_TOKEN is not set" in warnings
    fine = Settings.model_validate(
        {
            "SPEECH_MODEL": "phone_call",
            "SPEECH_TIMEOUT": "2",
            "TWILIO_AUTH_TOKEN": "t",
            "PUBLIC_BASE_URL": "https://aura.example.com",
        }
    )
    assert fine.warnings() == []


# Any text at all: every code point, surrogates and the XML-forbidden controls included.
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=200)
# The 25 code points that once passed the speech cleaning and the TwiML builder.
FORBIDDEN = [*range(0x0, 0x9), *range(0xE, 0x1C), 0xFFFE, 0xFFFF]


@given(said=ANY_TEXT, answer=ANY_TEXT)
@settings(max_examples=300, deadline=None)
def test_any_model_answer_or_caller_input_yields_twiml_that_parses(said: str, answer: str) -> None:
    twiml = builder()
    for document in (
        twiml.ask(clean_for_speech(answer)),
        twiml.ask(answer),
        twiml.hang_up(said),
    ):
        ElementTree.fromstring(document)  # raises on anything an XML parser refuses


def test_the_code_points_xml_forbids_are_dropped_from_speech() -> None:
    assert len(FORBIDDEN) == 25
    text = "Open " + "".join(map(chr, FORBIDDEN)) + "at nine."
    spoken = Parsed(builder().ask(text)).spoken
    assert spoken == "Open at nine."
    assert clean_for_speech(text) == "Open at nine."
