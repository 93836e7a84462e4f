"""The knowledge reaches the real `openai` and `google-genai` SDKs' requests, bounded, and
the guard judges what they answer, whole and streamed."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from aura.llm.v1 import llm_service_pb2 as pb
from aura_llm.guard import TurnGuard, not_sure
from aura_llm.knowledge.library import REFERENCE_HEADER
from aura_llm.providers import Prompt
from aura_llm.providers.base import Step, ToolCall, ToolResult
from tests.support.fake_vendors import Reply, Vendor
from tests.support.knowledge import BURIED_FACT, BURIED_ID, BURIED_QUESTION, write_policy_directory
from tests.support.llm import llm_service

HOURS_ID = "sample_bakery.yaml#opening-hours"
NOT_SURE = not_sure(["take_message", "transfer_call"])


def asking(text: str) -> pb.GenerateRequest:
    return pb.GenerateRequest(call_id="CA1", user_text=text)


def streaming(text: str) -> pb.GenerateStreamRequest:
    return pb.GenerateStreamRequest(call_id="CA1", user_text=text)


def ungrounded(provider: str) -> float:
    value = REGISTRY.get_sample_value("aura_llm_ungrounded_answers_total", {"provider": provider})
    return value or 0.0


async def test_a_question_about_saturday_sends_the_hours_passage(vendor: Vendor) -> None:
    vendor.fake.script(Reply("On Saturday we open at 8."))
    async with llm_service([vendor.build("")]) as stub:
        reply = await stub.Generate(asking("What time do you open on Saturday?"), timeout=5)
    system = vendor.system(vendor.fake.requests[-1])
    assert "Saturday from 8 to 4" in system
    assert f"[{HOURS_ID}]" in system
    assert system.startswith("You are Aura,")  # the operator's prompt first, then the data
    assert reply.passage_ids[0] == HOURS_ID
    assert not reply.ungrounded


async def test_the_whole_knowledge_is_a_prefix_identical_across_turns_and_calls(
    vendor: Vendor,
) -> None:
    async with llm_service([vendor.build("")]) as stub:
        await stub.Generate(asking("where can I park"), timeout=5)
        request = pb.GenerateRequest(call_id="CA2", user_text="and cakes?")
        request.history.add(role=pb.ROLE_USER, text="where can I park")
        request.history.add(role=pb.ROLE_ASSISTANT, text="Behind the shop.")
        await stub.Generate(request, timeout=5)
    first, second = (vendor.system(sent) for sent in vendor.fake.requests[-2:])
    assert first == second
    assert "four free customer spaces" in first


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_policy_directory(tmp_path_factory.mktemp("policies"), documents=1000)


async def test_a_fact_buried_in_a_directory_is_sent_and_the_request_stays_bounded(
    vendor: Vendor, policies: Path
) -> None:
    vendor.fake.script(Reply("On the first Tuesday of each month at 6:30 pm."))
    async with llm_service(
        [vendor.build("")], KNOWLEDGE_BASE_PATH=str(policies), KNOWLEDGE_MAX_CHARS=2000
    ) as stub:
        reply = await stub.Generate(asking(BURIED_QUESTION), timeout=5)
    system = vendor.system(vendor.fake.requests[-1])
    assert BURIED_FACT in system
    header = REFERENCE_HEADER.format(business="Bluebird Bakery")
    assert len(system) < 2000 + len(header) + 800  # the passages, the header, the prompt
    assert reply.passage_ids[0] == BURIED_ID
    assert not reply.ungrounded  # every fact of it is in the passage


async def test_an_invented_time_is_flagged_and_counted(vendor: Vendor) -> None:
    before = ungrounded(vendor.name)
    vendor.fake.script(Reply("We open at nine on Saturdays."))
    async with llm_service([vendor.build("")]) as stub:
        reply = await stub.Generate(asking("What time do you open on Saturday?"), timeout=5)
    assert reply.text == "We open at nine on Saturdays."  # flag: said, but marked
    assert reply.ungrounded
    assert ungrounded(vendor.name) == before + 1


async def test_strict_says_it_is_not_sure_instead(vendor: Vendor) -> None:
    vendor.fake.script(Reply("We open at nine on Saturdays."), Reply("On Saturday, from 8 to 4."))
    async with llm_service([vendor.build("")], GROUNDING="strict") as stub:
        invented = await stub.Generate(asking("When do you open on Saturday?"), timeout=5)
        true = await stub.Generate(asking("When do you open on Saturday?"), timeout=5)
    assert (invented.text, invented.ungrounded) == (NOT_SURE, True)
    assert (true.text, true.ungrounded) == ("On Saturday, from 8 to 4.", False)


async def test_strict_streams_stop_before_the_invented_sentence(vendor: Vendor) -> None:
    vendor.fake.script(
        Reply(
            "",
            chunks=("Happy to help. ", "We open at nine on Saturdays. ", "Anything else?"),
        )
    )
    async with llm_service([vendor.build("")], GROUNDING="strict") as stub:
        pieces = [p async for p in stub.GenerateStream(streaming("when do you open"), timeout=5)]
    assert [(p.text, p.ungrounded) for p in pieces] == [
        ("Happy to help.", False),
        (NOT_SURE, True),
    ]
    assert pieces[0].passage_ids[0] == HOURS_ID
    assert not pieces[1].passage_ids  # with the first piece only


async def test_flag_streams_mark_the_sentence_and_go_on(vendor: Vendor) -> None:
    before = ungrounded(vendor.name)
    vendor.fake.script(
        Reply(
            "",
            chunks=(
                "We open at nine in the morning. ",
                "And we close at ten in the evening. ",
                "See you soon at the bakery.",
            ),
        )
    )
    async with llm_service([vendor.build("")]) as stub:
        pieces = [p async for p in stub.GenerateStream(streaming("when do you open"), timeout=5)]
    assert [(p.text, p.ungrounded) for p in pieces] == [
        ("We open at nine in the morning.", True),
        ("And we close at ten in the evening.", True),
        ("See you soon at the bakery.", False),
    ]
    assert ungrounded(vendor.name) == before + 1  # one answer, counted once


def test_a_tool_result_and_the_conversation_ground_an_answer() -> None:
    prompt = Prompt("CA1", "Aura", "You are Aura.", (), "my order is A17, when is it ready")
    guard = TurnGuard("flag", prompt, None)
    assert not guard.check("It will be ready at 3 pm.", [], "openai")
    result = ToolResult(ToolCall("c1", "order_status", "{}"), '{"ready_at": "15:00"}')
    assert guard.check("It will be ready at 3 pm.", [Step("", (result,))], "openai")
    assert guard.check("Order 17 is noted.", [], "openai")  # the caller said it
    assert TurnGuard("off", prompt, None).check("We open at 9.", [], "openai")
