"""A call through all three processes with the llm service on an OpenAI-compatible server
(a local fake speaking the Chat Completions API) or Gemini, as `make run` would run it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aura_dev.stack import Stack
from tests.support.fake_vendors import Fail, FakeGemini, FakeOpenAI, Reply, serving_in_thread
from tests.support.twilio import TwilioPlayer, Twiml, new_call_sid

TOKEN = "integration-token"


@pytest.fixture
def fake_openai() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    with serving_in_thread(fake) as url:
        yield fake, url


def start(tmp_path: Path, env: dict[str, str]) -> Stack:
    stack = Stack(env={"TWILIO_AUTH_TOKEN": TOKEN, **env}, log_dir=tmp_path, cwd=tmp_path)
    stack.start()
    return stack


def say(stack: Stack, call_sid: str, said: str) -> Twiml:
    with httpx.Client(base_url=stack.base_url, timeout=20) as client:
        twilio = TwilioPlayer(client=client, auth_token=TOKEN)
        response = twilio.post(
            "/api/voice/process", twilio.call_params(call_sid, SpeechResult=said)
        )
    assert response.status_code == 200
    return Twiml(response.text)


def test_a_call_answered_by_an_openai_compatible_server(
    tmp_path: Path, fake_openai: tuple[FakeOpenAI, str]
) -> None:
    fake, url = fake_openai
    fake.script(Reply("We bake sourdough every morning."))
    stack = start(
        tmp_path,
        {
            "AI_PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-local",
            "OPENAI_BASE_URL": f"{url}/v1",
            "OPENAI_MODEL": "llama3",
        },
    )
    try:
        answer = say(stack, new_call_sid(), "do you have sourdough")
    finally:
        stack.stop()
    assert answer.spoken == "We bake sourdough every morning."
    assert fake.requests[0].body["model"] == "llama3"
    assert fake.requests[0].body["messages"][-1] == {
        "role": "user",
        "content": "do you have sourdough",
    }


def test_an_outage_of_the_model_is_covered_by_the_local_fallback(
    tmp_path: Path, fake_openai: tuple[FakeOpenAI, str]
) -> None:
    fake, url = fake_openai
    fake.default = Fail(503, "overloaded")
    stack = start(
        tmp_path,
        {
            "AI_PROVIDER": "openai",
            "AI_FALLBACK_PROVIDERS": "local",
            "OPENAI_API_KEY": "sk-local",
            "OPENAI_BASE_URL": f"{url}/v1",
        },
    )
    try:
        answer = say(stack, new_call_sid(), "when are you open")
    finally:
        stack.stop()
    assert "Monday to Friday" in answer.spoken
    assert len(fake.requests) == 2  # one retry, then the fallback


def test_a_call_answered_by_gemini(tmp_path: Path) -> None:
    fake = FakeGemini()
    fake.script(Reply("Yes, we deliver cakes within five miles."))
    with serving_in_thread(fake) as url:
        stack = start(
            tmp_path, {"AI_PROVIDER": "gemini", "GEMINI_API_KEY": "g-local", "GEMINI_BASE_URL": url}
        )
        try:
            answer = say(stack, new_call_sid(), "do you deliver")
        finally:
            stack.stop()
    assert answer.spoken == "Yes, we deliver cakes within five miles."
    assert fake.requests[0].headers["x-goog-api-key"] == "g-local"
