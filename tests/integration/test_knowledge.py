"""The knowledge and its guard through real processes, in both voice modes: a model that
invents a time is counted and, with GROUNDING=strict, never heard; the stored turn says
which passages the answer was given and that it was ungrounded; a model that repeats the
knowledge's own time is not flagged."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from aura.memory.v1 import memory_service_pb2 as memory_pb
from aura_dev.stack import Stack
from aura_phone.simulator import Call, Input, Turn
from tests.support import eventually
from tests.support.fake_vendors import FakeOpenAI, Reply, serving_in_thread
from tests.support.stored import transcript

TOKEN = "knowledge-token"
HOURS_ID = "sample_bakery.yaml#opening-hours"
INVENTED = Reply(
    "We open at nine on Saturdays. See you then!",
    chunks=("We open at nine on Saturdays. ", "See you then!"),
)
TRUE = Reply("On Saturdays we open at eight.", chunks=("On Saturdays we open at eight.",))


@pytest.fixture(scope="module")
def fake_model() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(script_summaries=False)
    with serving_in_thread(fake):
        yield fake


@pytest.fixture(scope="module", params=["gather", "relay"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fake_model: FakeOpenAI,
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp(f"knowledge-{request.param}")
    env = {
        "TWILIO_AUTH_TOKEN": TOKEN,
        "VOICE_MODE": request.param,
        "AI_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-local",
        "OPENAI_BASE_URL": f"{fake_model.base_url}/v1",
        "GROUNDING": "strict",
        "RELAY_FILLER_SECONDS": "5",
    }
    stack = Stack(env=env, log_dir=workdir, cwd=workdir)
    with stack.running():
        yield stack


def ask(stack: Stack, question: str) -> tuple[Call, str]:
    """One question on a new call, then a hang-up: the call and what the caller heard."""
    relay = "relay" in stack.env.get("VOICE_MODE", "")
    call = Call(stack.base_url, TOKEN, relay=relay)
    asked: list[Turn] = []

    def answer(turn: Turn) -> Input:
        asked.append(turn)
        return Input("speech", question) if len(asked) == 1 else Input("hangup")

    call.start(answer)
    after = next(n for n, turn in enumerate(call.turns) if turn is asked[0]) + 1
    return call, " ".join(call.turns[after].heard)


def stored(stack: Stack, call_sid: str) -> list[memory_pb.Turn]:
    return list(transcript(stack, call_sid).turns)


def ungrounded_count(stack: Stack) -> float:
    found = re.search(
        r'^aura_llm_ungrounded_answers_total\{provider="openai"\} (\S+)$',
        stack.metrics("llm"),
        re.MULTILINE,
    )
    return float(found.group(1)) if found else 0.0


def test_an_invented_time_is_counted_and_not_heard(stack: Stack, fake_model: FakeOpenAI) -> None:
    before = ungrounded_count(stack)
    fake_model.default = INVENTED
    call, heard = ask(stack, "what time do you open on saturday")
    # The model's request held the knowledge's own hours.
    system = fake_model.requests[-1].body["messages"][0]["content"]
    assert "Saturday from 8 to 4" in system
    assert "nine" not in heard
    assert heard.startswith("I'm not sure about that")
    assert "take a message" in heard
    assert ungrounded_count(stack) == before + 1

    def answer_stored() -> bool:
        turns = stored(stack, call.call_sid)
        return len(turns) >= 3 and turns[2].role == memory_pb.ROLE_ASSISTANT

    eventually(answer_stored, what="the answer stored")
    answer = stored(stack, call.call_sid)[2]
    assert answer.text.startswith("I'm not sure about that")  # what was said, not the model's
    assert answer.ungrounded
    assert answer.passage_ids[0] == HOURS_ID


def test_the_knowledges_own_time_is_not_flagged(stack: Stack, fake_model: FakeOpenAI) -> None:
    before = ungrounded_count(stack)
    fake_model.default = TRUE
    call, heard = ask(stack, "are you open on saturday morning")
    assert heard == "On Saturdays we open at eight."
    assert ungrounded_count(stack) == before
    eventually(lambda: len(stored(stack, call.call_sid)) >= 3, what="the answer stored")
    assert not stored(stack, call.call_sid)[2].ungrounded
