"""The real `openai` and `google-genai` SDKs against local fakes of the vendors' HTTP APIs,
through the llm gRPC service: what the vendor receives, what the caller gets back, and
what each injected failure leads to."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest

from aura.llm.v1 import llm_service_pb2 as pb
from aura_common.logs import SDK_LOGGERS, setup_logging
from aura_llm.providers.gemini import GeminiProvider
from aura_llm.providers.openai import OpenAIProvider
from tests.support.fake_vendors import (
    KEY,
    Behaviour,
    Cut,
    Fail,
    FakeGemini,
    FakeOpenAI,
    Hang,
    Malformed,
    Reply,
    Vendor,
)
from tests.support.llm import llm_service, local, router

HOURS = "We are open Monday to Friday from 7 in the morning"  # the local provider's answer


def request(text: str = "when are you open") -> pb.GenerateRequest:
    return pb.GenerateRequest(
        call_id="CA1",
        user_text=text,
        history=[
            pb.Message(role=pb.ROLE_ASSISTANT, text="Hello! How can I help?"),
            pb.Message(role=pb.ROLE_USER, text="do you bake bread"),
            pb.Message(role=pb.ROLE_ASSISTANT, text="Yes, every morning."),
        ],
        persona=pb.Persona(assistant_name="Robin"),
    )


def stream_request(text: str = "when are you open") -> pb.GenerateStreamRequest:
    plain = request(text)
    return pb.GenerateStreamRequest(
        call_id=plain.call_id,
        user_text=plain.user_text,
        history=plain.history,
        persona=plain.persona,
    )


async def ask(
    vendor: Vendor, *script: Behaviour, fallback: bool = True, **options: Any
) -> pb.GenerateResponse:
    vendor.fake.script(*script)
    providers = [vendor.build(""), local()] if fallback else [vendor.build("")]
    async with llm_service(router(*providers, **options)) as stub:
        return await stub.Generate(request(), timeout=5)


# --- what the vendor receives -------------------------------------------------------------


async def test_openai_receives_model_key_system_prompt_and_history_in_order() -> None:
    fake = FakeOpenAI()
    url = await fake.start()
    try:
        provider = OpenAIProvider(api_key=KEY, model="gpt-test", base_url=f"{url}/v1")
        fake.script(Reply("We open at nine."))
        async with llm_service([provider]) as stub:
            reply = await stub.Generate(request(), timeout=5)
    finally:
        await fake.stop()
    (sent,) = fake.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body["model"] == "gpt-test"
    assert [(m["role"], m["content"]) for m in sent.body["messages"]] == [
        ("system", sent.body["messages"][0]["content"]),
        ("assistant", "Hello! How can I help?"),
        ("user", "do you bake bread"),
        ("assistant", "Yes, every morning."),
        ("user", "when are you open"),
    ]
    system = sent.body["messages"][0]["content"]
    assert system.startswith("You are Robin,")
    assert "no markdown" in system
    assert (reply.text, reply.provider, reply.model, reply.failover) == (
        "We open at nine.",
        "openai",
        "gpt-test",
        False,
    )


async def test_gemini_receives_model_key_system_instruction_and_history_in_order() -> None:
    fake = FakeGemini()
    url = await fake.start()
    try:
        provider = GeminiProvider(api_key=KEY, model="gemini-test", base_url=url)
        fake.script(Reply("We open at nine."))
        async with llm_service([provider]) as stub:
            reply = await stub.Generate(request(), timeout=5)
    finally:
        await fake.stop()
    (sent,) = fake.requests
    assert sent.path.endswith("/models/gemini-test:generateContent")
    assert sent.headers["x-goog-api-key"] == KEY
    instruction = sent.body["systemInstruction"]["parts"][0]["text"]
    assert instruction.startswith("You are Robin,")
    # Gemini's roles are user and model; the greeting before the caller's first words is left out.
    assert [(c["role"], c["parts"][0]["text"]) for c in sent.body["contents"]] == [
        ("user", "do you bake bread"),
        ("model", "Yes, every morning."),
        ("user", "when are you open"),
    ]
    assert sent.body["generationConfig"]["maxOutputTokens"] == 300
    assert (reply.text, reply.provider, reply.model) == (
        "We open at nine.",
        "gemini",
        "gemini-test",
    )


async def test_sdk_chatter_stays_out_of_info_logs(
    vendor: Vendor, caplog: pytest.LogCaptureFixture
) -> None:
    """The Gemini SDK's automatic function calling is off (it announced itself at INFO on
    every request), and no SDK or HTTP client logs a request at INFO."""
    setup_logging("llm", "INFO", "json")
    with caplog.at_level(logging.DEBUG):
        reply = await ask(vendor, Reply("We open at nine."))
    assert reply.text == "We open at nine."
    chatter = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.INFO and r.name.split(".")[0] in SDK_LOGGERS
    ]
    assert chatter == []
    assert not any("AFC" in r.getMessage() for r in caplog.records)


async def test_answers_are_cleaned_for_speech(vendor: Vendor) -> None:
    reply = await ask(vendor, Reply("**Sure!** 🎂 Order at https://bakery.example/cakes today."))
    assert reply.text == "Sure! Order at today."


# --- failures and failover ------------------------------------------------------------------


async def test_429_is_retried_on_the_same_provider(vendor: Vendor) -> None:
    reply = await ask(vendor, Fail(429, "slow down"), Reply("Second time lucky."))
    assert (reply.provider, reply.text, reply.failover) == (
        vendor.name,
        "Second time lucky.",
        False,
    )
    assert [f.reason for f in reply.failures] == ["rate_limited"]
    assert len(vendor.fake.requests) == 2


async def test_500_twice_fails_over_to_local(vendor: Vendor) -> None:
    reply = await ask(vendor, Fail(500, "boom"), Fail(503, "down"))
    assert (reply.provider, reply.failover) == ("local", True)
    assert HOURS in reply.text
    assert [(f.provider, f.reason) for f in reply.failures] == [(vendor.name, "server_error")] * 2


async def test_slow_response_past_the_attempt_slice_fails_over(vendor: Vendor) -> None:
    reply = await ask(vendor, Hang(), attempt_timeout=0.5)
    assert reply.provider == "local"
    assert [f.reason for f in reply.failures] == ["timeout"]
    assert len(vendor.fake.requests) == 1


async def test_malformed_json_fails_over(vendor: Vendor) -> None:
    reply = await ask(vendor, Malformed(), Malformed())
    assert reply.provider == "local"
    assert {f.reason for f in reply.failures} == {"bad_response"}


async def test_empty_answer_fails_over(vendor: Vendor) -> None:
    reply = await ask(vendor, Reply("   "), Reply(""))
    assert reply.provider == "local"
    assert {f.reason for f in reply.failures} == {"bad_response"}


async def test_401_is_not_retried_and_says_so(vendor: Vendor) -> None:
    reply = await ask(vendor, Fail(401, "invalid api key"), max_retries=3)
    assert len(vendor.fake.requests) == 1
    assert reply.provider == "local"
    assert reply.failures[0].reason == "auth"
    assert "invalid api key" in reply.failures[0].message


async def test_401_without_a_fallback_is_a_clear_error(vendor: Vendor) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await ask(vendor, Fail(401, "invalid api key"), fallback=False)
    assert failure.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "credentials rejected" in (failure.value.details() or "")
    assert "invalid api key" in (failure.value.details() or "")


async def test_unreachable_vendor_fails_over(vendor: Vendor) -> None:
    await vendor.fake.stop()  # nothing listens on its port any more
    reply = await ask(vendor)
    assert reply.provider == "local"
    assert {f.reason for f in reply.failures} <= {"connection", "timeout"}


# --- streaming ------------------------------------------------------------------------------


async def stream(
    vendor: Vendor, *script: Behaviour
) -> tuple[list[pb.GenerateStreamResponse], grpc.aio.AioRpcError | None]:
    vendor.fake.script(*script)
    pieces: list[pb.GenerateStreamResponse] = []
    async with llm_service([vendor.build(""), local()]) as stub:
        try:
            async for piece in stub.GenerateStream(stream_request(), timeout=5):
                pieces.append(piece)
        except grpc.aio.AioRpcError as error:
            return pieces, error
    return pieces, None


async def test_stream_yields_sentences_as_tokens_arrive(vendor: Vendor) -> None:
    tokens = (
        "We open",
        " at nine",
        " on weekdays. On Satur",
        "days at eight, and **Sunday** at ten.",
    )
    pieces, error = await stream(vendor, Reply("".join(tokens), chunks=tokens))
    assert error is None
    assert [p.text for p in pieces] == [
        "We open at nine on weekdays.",
        "On Saturdays at eight, and Sunday at ten.",
    ]
    assert {(p.provider, p.failover) for p in pieces} == {(vendor.name, False)}
    sent = vendor.fake.requests[0]
    if vendor.name == "openai":
        assert sent.body["stream"] is True
    else:
        assert sent.path.endswith(":streamGenerateContent")
        assert sent.query["alt"] == "sse"


async def test_stream_cut_before_the_first_sentence_fails_over(vendor: Vendor) -> None:
    pieces, error = await stream(vendor, Cut(("We open at",)), Cut(("We",)))
    assert error is None
    assert pieces[0].provider == "local"
    assert pieces[0].failover
    assert HOURS in " ".join(p.text for p in pieces)
    assert {f.reason for f in pieces[0].failures} == {"connection"}


async def test_stream_cut_after_a_sentence_ends_with_a_clear_error(vendor: Vendor) -> None:
    pieces, error = await stream(vendor, Cut(("We are open from nine until five. ", "And on Sat")))
    assert [p.text for p in pieces] == ["We are open from nine until five."]
    assert error is not None
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "stopped mid-answer" in (error.details() or "")


async def test_stream_429_then_success(vendor: Vendor) -> None:
    pieces, error = await stream(vendor, Fail(429), Reply("Fine, we are open until six tonight."))
    assert error is None
    assert [p.text for p in pieces] == ["Fine, we are open until six tonight."]
    assert [f.reason for f in pieces[0].failures] == ["rate_limited"]
