from __future__ import annotations

from aura_telephony.config import Settings
from aura_telephony.twiml import PROCESS_PATH, Twiml
from tests.support.twilio import Twiml as Parsed


def builder(**env: str) -> Twiml:
    return Twiml(Settings.model_validate(env))


def test_ask_gathers_speech_and_hangs_up_on_silence() -> None:
    parsed = Parsed(builder(AI_ASSISTANT_VOICE="Polly.Amy", SPEECH_TIMEOUT="3").ask("Hi there"))
    gather = parsed.gather
    assert gather is not None
    assert gather.attrib == {
        "input": "speech",
        "action": PROCESS_PATH,
        "method": "POST",
        "speechTimeout": "3",
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
