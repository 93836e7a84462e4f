from __future__ import annotations

from pathlib import Path

import pytest

from aura.llm.v1 import llm_service_pb2 as pb
from aura_llm.config import SAMPLE_KNOWLEDGE_BASE
from aura_llm.knowledge import KnowledgeBase, KnowledgeBaseError
from aura_llm.providers import ChatTurn, Prompt
from aura_llm.providers.local import (
    ACTION_UNAVAILABLE,
    ASK_MESSAGE,
    ASK_NAME,
    ASK_NUMBER,
    MESSAGE_TAKEN,
    LocalProvider,
)
from aura_llm.tools import Toolbox
from tests.support.llm import llm_service, local


@pytest.fixture(scope="module")
def provider() -> LocalProvider:
    return LocalProvider.from_file(SAMPLE_KNOWLEDGE_BASE, "Aura")


def ask(provider: LocalProvider, text: str, history: tuple[ChatTurn, ...] = ()) -> str:
    return provider.answer(Prompt("CA1", "Aura", "", history, text))


def answer_of(provider: LocalProvider, topic: str) -> str:
    return next(e.answer for e in provider.knowledge.entries if e.topic == topic)


@pytest.mark.parametrize(
    ("said", "topic"),
    [
        ("What are your opening hours?", "opening hours"),
        ("hey what time do you guys open tomorrow", "opening hours"),
        ("Hi, are you open on Saturdays?", "opening hours"),
        ("How late are you open tonight", "opening hours"),
        ("where's the shop", "where to find us"),
        ("what is your adress", "where to find us"),  # a misrecognised word
        ("can I park nearby", "parking"),
        ("can I get a cake for my son's birthday", "custom and celebration cakes"),
        ("do you have anything without gluten", "allergies and dietary needs"),
        ("is your kitchen nut free", "allergies and dietary needs"),
        ("do you take visa", "prices and payment"),
        ("how much is a loaf", "prices and payment"),
        ("I want to order catering for an office event", "catering for events"),
        ("can I work from your cafe with my laptop", "seating and the cafe"),
        ("can you deliver to my house", "delivery"),
    ],
)
def test_natural_phrasings_find_their_answer(
    provider: LocalProvider, said: str, topic: str
) -> None:
    assert ask(provider, said) == answer_of(provider, topic)


def test_greeting(provider: LocalProvider) -> None:
    answer = ask(provider, "Good morning!")
    assert answer.startswith("Hello!")
    assert "Bluebird Bakery" in answer


def test_thanks(provider: LocalProvider) -> None:
    assert "welcome" in ask(provider, "thanks a lot").lower()


@pytest.mark.parametrize("said", ["Who are you?", "are you a robot", "what's your name"])
def test_identity(provider: LocalProvider, said: str) -> None:
    answer = ask(provider, said)
    assert "Aura" in answer
    assert "Bluebird Bakery" in answer
    assert "opening hours" in answer


def test_persona_name_from_the_request_wins(provider: LocalProvider) -> None:
    answer = provider.answer(Prompt("CA1", "Robin", "", (), "who are you"))
    assert answer.startswith("I'm Robin")


@pytest.mark.parametrize("said", ["do you sell pizza", "what's the weather like"])
def test_unknown_questions_get_an_honest_answer_listing_topics(
    provider: LocalProvider, said: str
) -> None:
    answer = ask(provider, said)
    assert "don't have an answer" in answer
    for entry in provider.knowledge.entries:
        assert entry.topic in answer


def test_follow_up_uses_the_previous_question(provider: LocalProvider) -> None:
    history = (ChatTurn("user", "when are you open"), ChatTurn("assistant", "..."))
    assert ask(provider, "and what about Mondays?", history) == answer_of(provider, "opening hours")
    # Without that history the same words match nothing.
    assert "don't have an answer" in ask(provider, "and what about Mondays?")


def test_deterministic(provider: LocalProvider) -> None:
    answers = {ask(provider, "can I bring my dog to the cafe") for _ in range(5)}
    assert len(answers) == 1


def test_another_knowledge_base_file(tmp_path: Path) -> None:
    path = tmp_path / "clinic.yaml"
    path.write_text(
        "business: {name: Elm Clinic}\n"
        "entries:\n"
        "  - topic: vaccinations\n"
        "    questions: ['Do you offer flu shots?']\n"
        "    keywords: [flu, vaccine, vaccination, jab]\n"
        "    answer: Flu jabs are given every weekday morning.\n"
    )
    provider = LocalProvider.from_file(path, "Aura")
    assert provider.model == "knowledge-base/clinic"
    assert ask(provider, "can I get my flu vaccine") == "Flu jabs are given every weekday morning."


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- just a list", "expected a mapping"),
        ("business: {name: X}\nentries: []", "entries: List should have at least 1 item"),
        (
            "business: {}\nentries: [{topic: t, answer: a, keywords: [k]}]",
            "business.name: Field required",
        ),
        (
            "business: {name: X}\nentries: [{topic: t, keywords: [k]}, {topic: u}]",
            "entries[0].answer: Field required; entries[1].answer: Field required",
        ),
        (
            "business: {name: X}\nentries: [{topic: t, answer: a}]",
            "entries[0]: Value error, needs questions or keywords",
        ),
        (
            "business: {name: X}\nentries: [{topic: t, answer: a, keywords: k, typo: 1}]",
            "entries[0].keywords: Input should be a valid list; entries[0].typo: Extra inputs",
        ),
        ("business: [unclosed", "not valid YAML"),
    ],
)
def test_malformed_knowledge_base_says_where(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "kb.yaml"
    path.write_text(content)
    with pytest.raises(KnowledgeBaseError, match=message.replace("[", r"\[").replace("]", r"\]")):
        KnowledgeBase.load(path)


def test_missing_knowledge_base_file(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeBaseError, match="cannot read"):
        KnowledgeBase.load(tmp_path / "absent.yaml")


# --- actions: the local provider calls tools as the knowledge base says -------------------


async def turn_through_llm(
    said: str, history: list[pb.Message], tools: bool = True
) -> pb.GenerateResponse:
    """One turn through the llm service: the local provider and the sample's tools."""
    box = None if tools else Toolbox([])
    async with llm_service([local()], box) as stub:
        request = pb.GenerateRequest(call_id="CA1", user_text=said, history=history)
        return await stub.Generate(request, timeout=5)


async def test_asking_for_the_manager_transfers_to_the_managers_department() -> None:
    answer = await turn_through_llm("Can I speak to the manager please?", [])
    assert answer.text == "Of course. Let me put you through to our manager."
    [action] = answer.actions
    assert action.transfer_call.department == "manager"
    assert action.transfer_call.number == "+15555550111"  # from the sample tools file


async def test_a_message_is_taken_over_the_next_turns() -> None:
    history: list[pb.Message] = []
    for said, expected in [
        ("Can I leave a message?", f"Of course, I'll take a message. {ASK_NAME}"),
        ("Jo Baker", ASK_NUMBER),
        ("555 0100", ASK_MESSAGE),
    ]:
        answer = await turn_through_llm(said, history)
        assert answer.text == expected
        assert not answer.actions
        history += [
            pb.Message(role=pb.ROLE_USER, text=said),
            pb.Message(role=pb.ROLE_ASSISTANT, text=answer.text),
        ]
    answer = await turn_through_llm("Please call me about a cake.", history)
    assert answer.text == MESSAGE_TAKEN
    [action] = answer.actions
    message = action.take_message
    assert (message.caller_name, message.callback_number, message.message) == (
        "Jo Baker",
        "555 0100",
        "Please call me about a cake.",
    )


async def test_a_message_can_be_called_off() -> None:
    history = [
        pb.Message(role=pb.ROLE_USER, text="Can I leave a message?"),
        pb.Message(role=pb.ROLE_ASSISTANT, text=f"Of course. {ASK_NAME}"),
    ]
    answer = await turn_through_llm("never mind", history)
    assert answer.text.startswith("No problem.")
    assert not answer.actions


async def test_without_the_tool_the_action_is_declined_not_pretended() -> None:
    answer = await turn_through_llm("Can I speak to the manager?", [], tools=False)
    assert answer.text.startswith(ACTION_UNAVAILABLE)
    assert not answer.actions


async def test_the_local_provider_summarises_by_the_topics_asked_about() -> None:
    transcript = [
        pb.Message(role=pb.ROLE_ASSISTANT, text="Hello! How can I help?"),
        pb.Message(role=pb.ROLE_USER, text="what time do you open on saturday"),
        pb.Message(role=pb.ROLE_ASSISTANT, text="From 8 to 4."),
        pb.Message(role=pb.ROLE_USER, text="and where can I park"),
        pb.Message(role=pb.ROLE_USER, text="when are you open tomorrow"),
    ]
    async with llm_service([local()]) as stub:
        summary = await stub.Summarize(
            pb.SummarizeRequest(call_id="CA1", transcript=transcript), timeout=5
        )
        silent = await stub.Summarize(pb.SummarizeRequest(call_id="CA2"), timeout=5)
    assert summary.summary == "The caller asked about opening hours and parking."
    assert summary.provider == "local"
    assert silent.summary == "The caller did not say anything."
