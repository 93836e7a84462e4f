"""The llm service's Converse RPC against the realtime vendors' fakes, through the
official SDKs over real WebSockets: what Aura adds around a speech-to-speech model (the
knowledge refreshed by retrieval, the guard) and how it survives the vendor (a provider
that stops answering is failed over, an old session is renewed, Gemini's go_away is
resumed on a new connection, a bad message is dropped)."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from aura.llm.v1 import llm_service_pb2 as pb
from aura.llm.v1 import llm_service_pb2_grpc as pb_grpc
from aura_dev.fake_realtime import FakeGeminiLive, FakeOpenAIRealtime, Rule, Script, tone
from aura_llm.config import Settings
from aura_llm.realtime import RealtimeProvider
from aura_llm.realtime.gemini import GeminiRealtime
from aura_llm.realtime.openai import OpenAIRealtime
from tests.support.llm import local, router
from tests.support.realtime import until
from tests.support.servers import llm_server

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


def speech(ms: int = 400) -> list[bytes]:
    """The caller speaking for `ms`, then a pause that ends the turn: 20 ms frames."""
    ulaw = audioop.lin2ulaw(tone(ms, 8000).tobytes(), 2) + b"\xff" * (8 * 700)
    return [ulaw[i : i + 160] for i in range(0, len(ulaw), 160)]


class Call:
    """One Converse stream: what we send, and every event that comes back."""

    def __init__(self, stub: pb_grpc.LlmServiceAsyncStub, start: pb.ConverseStart) -> None:
        self._out: asyncio.Queue[pb.ConverseRequest | None] = asyncio.Queue()
        self._out.put_nowait(pb.ConverseRequest(start=start))
        self.events: list[pb.ConverseResponse] = []
        self.error: grpc.aio.AioRpcError | None = None
        self._call = stub.Converse(self._requests(), timeout=60)
        self._reading = asyncio.create_task(self._read())

    async def _requests(self) -> AsyncIterator[pb.ConverseRequest]:
        while (request := await self._out.get()) is not None:
            yield request

    async def _read(self) -> None:
        try:
            async for event in self._call:
                self.events.append(event)
        except grpc.aio.AioRpcError as error:
            self.error = error

    async def send(self, request: pb.ConverseRequest) -> None:
        await self._out.put(request)

    async def say(self, ms: int = 400) -> None:
        for frame in speech(ms):  # faster than real time: the fake counts bytes, not time
            await self._out.put(pb.ConverseRequest(audio=frame))

    def of(self, kind: str) -> list[Any]:
        return [getattr(e, kind) for e in self.events if e.WhichOneof("event") == kind]

    def said(self, role: int) -> list[pb.ConverseTranscript]:
        return [t for t in self.of("transcript") if t.role == role]

    async def close(self) -> None:
        await self._out.put(None)
        await asyncio.wait_for(self._reading, 10)


@asynccontextmanager
async def service(
    realtime: list[RealtimeProvider], **overrides: Any
) -> AsyncIterator[pb_grpc.LlmServiceAsyncStub]:
    settings = Settings.model_validate({"AI_ASSISTANT_NAME": "Aura", **overrides})
    async with (
        llm_server(router(local()), settings, None, realtime) as address,
        grpc.aio.insecure_channel(address) as channel,
    ):
        yield pb_grpc.LlmServiceStub(channel)


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAIRealtime]:
    fake = await FakeOpenAIRealtime(Script()).start()
    yield fake
    await fake.close()


@pytest.fixture
async def gemini(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeGeminiLive]:
    fake = await FakeGeminiLive(Script()).start()
    # google-genai speaks only wss:// to a base URL: it must trust the fake's certificate.
    monkeypatch.setenv("SSL_CERT_FILE", str(fake.certificate))
    yield fake
    await fake.close()


def openai_provider(fake: FakeOpenAIRealtime) -> OpenAIRealtime:
    return OpenAIRealtime(
        api_key="sk-test", model="gpt-realtime", base_url=f"{fake.url}/v1", transcription_model="t"
    )


def gemini_provider(fake: FakeGeminiLive) -> GeminiRealtime:
    return GeminiRealtime(api_key="test-key", model="gemini-live", base_url=fake.url)


def renewals() -> float:
    value = REGISTRY.get_sample_value("aura_llm_realtime_renewals_total", {"provider": "openai"})
    return value or 0.0


START = pb.ConverseStart(call_id="CA" + "1" * 32, greeting="Hello, this is Aura.")


async def test_knowledge_that_does_not_fit_follows_the_callers_words(
    openai: FakeOpenAIRealtime,
) -> None:
    openai.script.transcripts.append("do you have gluten free bread")
    async with service([openai_provider(openai)], KNOWLEDGE_MAX_CHARS=600) as stub:
        call = Call(stub, START)
        await until(lambda: bool(call.of("answer_done")), what="the greeting")
        opened_with = openai.script.instructions[0]
        await call.say()
        await until(lambda: len(call.said(pb.ROLE_ASSISTANT)) >= 2, what="the answer")
        refreshed = openai.script.instructions[-1]
        # The passage's own words (not the caller's, which the transcript holds too).
        assert "cannot promise anything is free of traces" in refreshed
        assert "free of traces" not in opened_with
        answer = call.said(pb.ROLE_ASSISTANT)[-1]
        assert any("allergies" in p for p in answer.passage_ids)
        await call.close()


async def test_an_invented_fact_is_flagged_on_the_transcript(openai: FakeOpenAIRealtime) -> None:
    openai.script.rules.append(Rule("sunday", "On Sundays we open at 11 pm."))
    openai.script.transcripts.append("when do you open on sunday")
    async with service([openai_provider(openai)]) as stub:
        call = Call(stub, START)
        await until(lambda: bool(call.of("answer_done")), what="the greeting")
        await call.say()
        await until(lambda: any("11 pm" in t.text for t in call.said(pb.ROLE_ASSISTANT)))
        invented = next(t for t in call.said(pb.ROLE_ASSISTANT) if "11 pm" in t.text)
        assert invented.ungrounded
        assert not call.said(pb.ROLE_ASSISTANT)[0].ungrounded  # the greeting
        await call.close()


async def test_a_provider_that_stops_answering_is_failed_over(
    openai: FakeOpenAIRealtime, gemini: FakeGeminiLive
) -> None:
    openai.script.silent_after_words = "hello"
    openai.script.transcripts.append("hello")
    gemini.script.transcripts.append("anyone there")
    providers: list[RealtimeProvider] = [openai_provider(openai), gemini_provider(gemini)]
    async with service(providers, REALTIME_RESPONSE_SECONDS=1) as stub:
        call = Call(stub, START)
        await call.say()
        await until(lambda: len(call.of("ready")) == 2, what="the hand-over")
        second = call.of("ready")[1]
        assert second.provider == "gemini"
        assert second.failover
        assert [f.reason for f in second.failures] == ["timeout"]
        # Gemini goes on from the call so far, and does not greet again.
        assert "hello" in gemini.script.instructions[-1]
        await call.say()
        await until(lambda: any("anyone there" in t.text for t in call.said(pb.ROLE_USER)))
        await until(
            lambda: bool(call.of("audio")) and call.of("audio")[-1].item_id.startswith("gemini")
        )
        await call.close()


async def test_an_old_session_is_renewed_between_answers(openai: FakeOpenAIRealtime) -> None:
    renewed = renewals()
    async with service([openai_provider(openai)], REALTIME_MAX_SESSION_SECONDS=0.001) as stub:
        call = Call(stub, START)
        await until(lambda: bool(call.of("answer_done")), what="the greeting")
        await until(lambda: openai.connections >= 2, what="a second session")
        assert renewals() > renewed
        assert len(call.of("ready")) == 2
        assert not call.of("ready")[1].failover  # the same provider, not a failure
        await call.close()


async def test_gemini_go_away_resumes_the_session_on_a_new_connection(
    gemini: FakeGeminiLive,
) -> None:
    gemini.script.go_away_after_words = "going away"
    gemini.script.transcripts.extend(["going away", "are you back"])
    async with service([gemini_provider(gemini)]) as stub:
        call = Call(stub, START)
        await until(lambda: bool(call.of("answer_done")), what="the greeting")
        await call.say()
        await until(lambda: gemini.connections >= 2, what="a new connection")
        resumed = gemini.script.sessions[-1]
        assert resumed["sessionResumption"]["handle"].startswith("handle-")
        await call.say()
        await until(lambda: any("are you back" in t.text for t in call.said(pb.ROLE_ASSISTANT)))
        assert len(call.of("ready")) == 1  # resumed within the provider: no hand-over
        await call.close()


async def test_a_malformed_message_is_dropped_and_the_call_goes_on(
    openai: FakeOpenAIRealtime,
) -> None:
    openai.script.transcripts.append("still here")
    async with service([openai_provider(openai)]) as stub:
        call = Call(stub, START)
        await call.send(pb.ConverseRequest())
        await call.send(pb.ConverseRequest(audio=b"\xff" * (65 * 1024)))
        await call.send(pb.ConverseRequest(played=pb.Played(item_id="")))
        await call.send(pb.ConverseRequest(start=START))  # a second start
        await call.say()
        await until(lambda: any("still here" in t.text for t in call.said(pb.ROLE_USER)))
        await call.close()
        assert call.error is None


async def test_converse_needs_a_start_and_a_realtime_provider(openai: FakeOpenAIRealtime) -> None:
    async with service([openai_provider(openai)]) as stub:
        call = Call(stub, pb.ConverseStart())
        await call.close()
        assert call.error is not None
        assert call.error.code() == grpc.StatusCode.INVALID_ARGUMENT
    async with service([]) as stub:
        call = Call(stub, START)
        await call.close()
        assert call.error is not None
        assert call.error.code() == grpc.StatusCode.FAILED_PRECONDITION
