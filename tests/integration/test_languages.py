"""Callers in more than one language, through real processes: a gather caller who presses
2 hears everything after in Spanish; a relay caller who asks for Spanish gets a `language`
message and Spanish answers (the model is asked for them); a request for a language the
deployment does not speak is refused politely; turns carry their language into the
transcript; a language without a catalogue stops telephony at start."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aura_dev.stack import Stack
from aura_phone.cli import run_script
from aura_phone.relay import RelayPlayer, welcome
from aura_phone.script import load_script
from aura_phone.simulator import Call
from aura_phone.twilio import Twilio, new_call_sid
from aura_telephony import phrases
from tests.support.fake_vendors import FakeOpenAI, Reply, serving_in_thread
from tests.support.stored import ROLES, transcript
from tests.support.twilio import Twiml

TOKEN = "languages-token"
TWILIO = Twilio(auth_token=TOKEN)
SPANISH = phrases.load("es-ES")


@pytest.fixture(scope="module")
def fake_model() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    with serving_in_thread(fake):
        yield fake


def env(fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {
        "TWILIO_AUTH_TOKEN": TOKEN,
        "LANGUAGES": "en-US,es-ES",
        "AI_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-local",
        "OPENAI_BASE_URL": f"{fake.base_url}/v1",
        **extra,
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fake_model: FakeOpenAI) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("languages")
    stack = Stack(env=env(fake_model), log_dir=workdir, cwd=workdir)
    with stack.running():
        yield stack


def post(stack: Stack, path: str, call_sid: str, **params: str) -> Twiml:
    form = TWILIO.call_params(call_sid, **params)
    bare = path.split("?")[0]
    headers = TWILIO.headers(stack.base_url, path, form)
    response = httpx.post(f"{stack.base_url}{path}", data=form, headers=headers, timeout=20)
    assert response.status_code == 200, (bare, response.text)
    return Twiml(response.text)


def turns(stack: Stack, call_sid: str) -> list[tuple[str, str, str]]:
    return [(ROLES[t.role], t.text, t.language) for t in transcript(stack, call_sid).turns]


def system_prompt(request: Any) -> str:
    return str(request.body["messages"][0]["content"])


def test_a_gather_caller_who_presses_2_hears_everything_after_in_spanish(
    stack: Stack, fake_model: FakeOpenAI
) -> None:
    call_sid = new_call_sid()
    hello = post(stack, "/api/voice", call_sid)
    offered = [s.text for s in hello.root.findall("Gather/Say")]
    assert offered[-1] == SPANISH.choose("2")
    chosen = post(stack, "/api/voice/process", call_sid, Digits="2")
    gather = chosen.gather
    assert gather is not None
    assert gather.get("language") == "es-ES"
    assert gather.get("action") == "/api/voice/process?lang=es-ES"
    assert chosen.spoken == SPANISH.welcome("Aura")
    # The model is asked to answer in Spanish; fixed lines are Spanish too.
    fake_model.default = Reply("Abrimos a las ocho.")
    asked = len(fake_model.requests)
    answer = post(
        stack, "/api/voice/process?lang=es-ES", call_sid, SpeechResult="¿a qué hora abren?"
    )
    assert answer.spoken == "Abrimos a las ocho."
    assert "es-ES" in system_prompt(fake_model.requests[asked])
    silent = post(stack, "/api/voice/process?lang=es-ES", call_sid, SpeechResult="")
    assert silent.spoken == SPANISH.DIDNT_CATCH
    stored = turns(stack, call_sid)
    assert ("assistant", SPANISH.welcome("Aura"), "es-ES") in stored
    assert ("user", "¿a qué hora abren?", "es-ES") in stored


def test_a_request_for_a_language_nobody_configured_is_refused_politely(stack: Stack) -> None:
    call_sid = new_call_sid()
    post(stack, "/api/voice", call_sid)
    refused = post(stack, "/api/voice/process", call_sid, SpeechResult="Can you speak Italian?")
    assert refused.spoken == "Sorry, on this line I can speak English, Español."
    assert refused.gather is not None
    assert refused.gather.get("language") == "en-US"


def test_a_relay_caller_who_asks_for_spanish_gets_a_language_message_and_spanish_answers(
    tmp_path: Path, fake_model: FakeOpenAI
) -> None:
    stack = Stack(env=env(fake_model, VOICE_MODE="relay"), log_dir=tmp_path, cwd=tmp_path)
    with stack.running():
        call_sid = new_call_sid()
        url = welcome(stack.base_url, TWILIO, call_sid)
        player = RelayPlayer(stack.base_url, TWILIO, call_sid)
        with player.connect(url) as socket:
            socket.send(
                json.dumps({"type": "setup", "callSid": call_sid, "accountSid": TWILIO.account_sid})
            )
            socket.send(
                json.dumps(
                    {"type": "prompt", "voicePrompt": "¿Puede hablar en español?", "last": True}
                )
            )
            switched = json.loads(socket.recv(timeout=10))
            assert switched == {
                "type": "language",
                "ttsLanguage": "es-ES",
                "transcriptionLanguage": "es-ES",
            }
            said = json.loads(socket.recv(timeout=10))
            assert said["token"] == SPANISH.welcome("Aura")
            fake_model.default = Reply("Sí, tenemos pan sin gluten.")
            asked = len(fake_model.requests)
            socket.send(
                json.dumps(
                    {
                        "type": "prompt",
                        "voicePrompt": "¿tienen pan sin gluten?",
                        "last": True,
                        "lang": "es-ES",
                    }
                )
            )
            answer = json.loads(socket.recv(timeout=10))
            while answer.get("token", "").strip() in ("", SPANISH.FILLER):
                answer = json.loads(socket.recv(timeout=10))
            assert answer["token"].strip() == "Sí, tenemos pan sin gluten."
            assert "es-ES" in system_prompt(fake_model.requests[asked])


def test_a_language_without_a_catalogue_stops_telephony_at_start(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aura_telephony"],
        env={"PATH": "/usr/bin:/bin", "LANGUAGES": "en-US,it-IT", "PORT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "no phrase catalogue for it-IT" in done.stderr


def test_the_simulator_places_a_call_in_spanish(
    stack: Stack, fake_model: FakeOpenAI, tmp_path: Path
) -> None:
    script = tmp_path / "spanish.yaml"
    script.write_text(
        """
language: es-ES
steps:
  - hear: "¿En qué puedo ayudarle?"
  - say: "hola, ¿a qué hora abren?"
    hear: "Abrimos a las ocho."
""",
        encoding="utf-8",
    )
    numbers, steps = load_script(script)
    fake_model.default = Reply("Abrimos a las ocho.")
    heard: list[str] = []
    call = Call(stack.base_url, TOKEN, language=numbers["language"], on_say=heard.append)
    run_script(call, steps)
    assert "[choosing es-ES: pressing 2]" in heard
    assert SPANISH.welcome("Aura") in heard
