"""Local HTTP servers that speak the vendors' wire formats, so that the real `openai` and
`google-genai` SDKs can be exercised (and made to fail) without leaving the machine.

Each fake records every request and answers from a script of behaviours, one per request,
falling back to `default` when the script runs out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from aiohttp import web

from aura_llm.providers import Provider
from aura_llm.servicer import SUMMARY_REQUEST


async def serve_routes(routes: list[web.RouteDef]) -> tuple[web.AppRunner, str]:
    """An aiohttp app of `routes` on a free loopback port: its runner and base URL."""
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@dataclass(frozen=True)
class Reply:
    """A successful answer; streamed as `chunks` when the client asked for a stream."""

    text: str
    chunks: tuple[str, ...] = ()
    delay: float = 0.0  # the model's think time, for the benchmark
    chunk_delay: float = 0.0  # between streamed chunks: slow enough to be interrupted

    def pieces(self) -> tuple[str, ...]:
        return self.chunks or (self.text,)


@dataclass(frozen=True)
class Fail:
    status: int
    message: str = "injected failure"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Hang:
    """Never answers: models a provider slower than any deadline."""


@dataclass(frozen=True)
class Malformed:
    """HTTP 200 whose body is not the JSON the SDK expects."""


@dataclass(frozen=True)
class Cut:
    """A stream that sends `chunks` and then drops the connection mid-answer."""

    chunks: tuple[str, ...]


@dataclass(frozen=True)
class CallTools:
    """The model says `text` (if any), then calls tools: (name, arguments) pairs. Streamed,
    the arguments arrive in pieces, as the vendors send them."""

    calls: tuple[tuple[str, dict[str, Any]], ...]
    text: str = ""


Behaviour = Reply | Fail | Hang | Malformed | Cut | CallTools


@dataclass
class Recorded:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeVendor:
    default: Behaviour = field(default_factory=lambda: Reply("Hello from the fake."))
    requests: list[Recorded] = field(default_factory=list)
    _script: deque[Behaviour] = field(default_factory=deque)
    _runner: web.AppRunner | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    base_url: str = ""
    # Streams the client closed before the end: how many chunks each had been sent, and
    # when the fake noticed (time.monotonic()).
    abandoned: list[int] = field(default_factory=list)
    abandoned_at: list[float] = field(default_factory=list)
    # False: post-call summaries, asked for in the background at moments a test does not
    # choose, get `default` and leave the script to the turns the test plays.
    script_summaries: bool = True

    def script(self, *behaviours: Behaviour) -> None:
        self._script.extend(behaviours)

    def _last_text(self, body: dict[str, Any]) -> str:
        """The text of the request's last message, in the vendor's JSON."""
        raise NotImplementedError

    def _routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    async def start(self) -> str:
        self._runner, self.base_url = await serve_routes(self._routes())
        return self.base_url

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _next(self, request: web.Request) -> tuple[Behaviour, dict[str, Any]]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw.decode(errors="replace")}
        self.requests.append(
            Recorded(
                request.path,
                dict(request.query),
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )
        if not self._script or (
            not self.script_summaries and self._last_text(body) == SUMMARY_REQUEST
        ):
            return self.default, body
        return self._script.popleft(), body

    async def _hang(self) -> web.StreamResponse:
        await self._release.wait()
        return web.Response(status=503)

    done: ClassVar[str | None] = None  # the line that closes a stream, where the API has one

    def _error(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def _whole(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        """A whole answer, in the vendor's JSON."""
        raise NotImplementedError

    def _piece(self, body: dict[str, Any], text: str, final: bool) -> dict[str, Any]:
        """One streamed piece of an answer, in the vendor's JSON."""
        raise NotImplementedError

    def _tool_calls(self, body: dict[str, Any], tools: CallTools, streaming: bool) -> Any:
        """Tool calls in the vendor's JSON: a whole answer, or the list of streamed events."""
        raise NotImplementedError

    async def _answer(
        self, request: web.Request, behaviour: Behaviour, body: dict[str, Any], *, streaming: bool
    ) -> web.StreamResponse:
        """Carry out one scripted behaviour in the vendor's wire format."""
        match behaviour:
            case Fail(status, message, headers):
                error = self._error(status, message)
                return web.json_response(error, status=status, headers=dict(headers))
            case Hang():
                return await self._hang()
            case Malformed():
                if streaming:
                    return await self._sse(request, [], cut=False, done="{not json")
                return web.Response(text="{not json", content_type="application/json")
            case Cut(chunks):
                events = [self._piece(body, c, final=False) for c in chunks]
                return await self._sse(request, events, cut=True, done=None)
            case CallTools():
                if not streaming:
                    return web.json_response(self._tool_calls(body, behaviour, streaming=False))
                events = self._tool_calls(body, behaviour, streaming=True)
                return await self._sse(request, events, cut=False, done=self.done)
            case Reply():
                await asyncio.sleep(behaviour.delay)
                if not streaming:
                    return web.json_response(self._whole(body, behaviour.text))
                pieces = behaviour.pieces()
                events = [
                    self._piece(body, c, final=i == len(pieces) - 1) for i, c in enumerate(pieces)
                ]
                return await self._sse(
                    request, events, cut=False, done=self.done, pause=behaviour.chunk_delay
                )
        raise AssertionError(behaviour)

    def _abandon(self, response: web.StreamResponse, sent: int) -> web.StreamResponse:
        self.abandoned.append(sent)
        self.abandoned_at.append(time.monotonic())
        return response

    async def _sse(
        self,
        request: web.Request,
        events: list[dict[str, Any]],
        *,
        cut: bool,
        done: str | None,
        pause: float = 0.0,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for sent, event in enumerate(events):
            if sent and pause:
                await asyncio.sleep(pause)
            if request.transport is None or request.transport.is_closing():
                return self._abandon(response, sent)  # the client stopped listening
            try:
                await response.write(f"data: {json.dumps(event)}\n\n".encode())
            except ConnectionError:
                return self._abandon(response, sent)
        if cut:
            assert request.transport is not None
            request.transport.abort()  # no terminating chunk: the stream breaks mid-answer
            return response
        if done:
            await response.write(f"data: {done}\n\n".encode())
        await response.write_eof()
        return response


class FakeOpenAI(FakeVendor):
    """POST /v1/chat/completions, as JSON or (stream: true) as server-sent events."""

    done = "[DONE]"

    def _routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/chat/completions", self._chat)]

    def _last_text(self, body: dict[str, Any]) -> str:
        messages = body.get("messages") or [{}]
        return str(messages[-1].get("content") or "")

    def _error(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": "fake", "code": str(status)}}

    def _whole(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "?"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
        }

    def _piece(self, body: dict[str, Any], text: str, final: bool) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "?"),
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
        }

    def _tool_calls(self, body: dict[str, Any], tools: CallTools, streaming: bool) -> Any:
        calls: list[dict[str, Any]] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for i, (name, arguments) in enumerate(tools.calls)
        ]
        if not streaming:
            answer = self._whole(body, tools.text)
            choice = answer["choices"][0]
            choice["message"] = {"role": "assistant", "content": tools.text or None}
            choice["message"]["tool_calls"] = calls
            choice["finish_reason"] = "tool_calls"
            return answer
        events = [self._piece(body, tools.text, final=False)] if tools.text else []
        for index, call in enumerate(calls):
            # The id and name first, then the arguments' JSON in two halves.
            function = call["function"]
            head: dict[str, Any] = {"index": index, "id": call["id"], "type": "function"}
            head["function"] = {"name": function["name"], "arguments": ""}
            arguments = function["arguments"]
            halves = (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :])
            deltas = [head] + [{"index": index, "function": {"arguments": h}} for h in halves]
            for delta in deltas:
                event = self._piece(body, "", final=False)
                event["choices"][0]["delta"] = {"tool_calls": [delta]}
                events.append(event)
        last = self._piece(body, "", final=True)
        last["choices"][0].update(delta={}, finish_reason="tool_calls")
        return [*events, last]

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        behaviour, body = await self._next(request)
        return await self._answer(request, behaviour, body, streaming=bool(body.get("stream")))


class FakeGemini(FakeVendor):
    """POST /v1beta/models/{model}:generateContent and :streamGenerateContent?alt=sse."""

    def _routes(self) -> list[web.RouteDef]:
        return [web.post("/{version}/models/{call}", self._generate)]

    def _last_text(self, body: dict[str, Any]) -> str:
        # The last part: consecutive user turns arrive as one content of several parts.
        parts = (body.get("contents") or [{}])[-1].get("parts") or [{}]
        return str(parts[-1].get("text") or "")

    def _error(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"code": status, "message": message, "status": "FAKE"}}

    def _whole(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        return self._piece(body, text, final=True)

    def _piece(self, body: dict[str, Any], text: str, final: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}}
        if final:
            candidate["finishReason"] = "STOP"
        return {
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": 40,
                "candidatesTokenCount": 8,
                "totalTokenCount": 48,
            },
            "modelVersion": "fake",
        }

    def _tool_calls(self, body: dict[str, Any], tools: CallTools, streaming: bool) -> Any:
        calls = [
            {"functionCall": {"id": f"fc_{i}", "name": name, "args": arguments}}
            for i, (name, arguments) in enumerate(tools.calls)
        ]
        said = [{"text": tools.text}] if tools.text else []
        if not streaming:
            answer = self._whole(body, "")
            answer["candidates"][0]["content"]["parts"] = said + calls
            return answer
        events = [self._piece(body, tools.text, final=False)] if tools.text else []
        last = self._piece(body, "", final=True)
        last["candidates"][0]["content"]["parts"] = calls
        return [*events, last]

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        behaviour, body = await self._next(request)
        streaming = request.match_info["call"].endswith(":streamGenerateContent")
        return await self._answer(request, behaviour, body, streaming=streaming)


class Serving(Protocol):
    async def start(self) -> str: ...
    async def stop(self) -> None: ...


@contextlib.contextmanager
def serving_in_thread(fake: Serving) -> Iterator[str]:
    """Run a fake on its own event loop in a thread, for tests that are not async
    (the services under test are separate processes). Yields the fake's base URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(fake.start(), loop).result(timeout=10)
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


KEY = "sk-test-key"


class Vendor:
    """One vendor under test: its fake and how to build the provider that talks to it."""

    def __init__(self, fake: FakeVendor, build: Callable[[str], Provider], name: str) -> None:
        self.fake, self.build, self.name = fake, build, name

    def system(self, sent: Recorded) -> str:
        """The system prompt of a request, as the vendor received it."""
        if self.name == "openai":
            return str(sent.body["messages"][0]["content"])
        return str(sent.body["systemInstruction"]["parts"][0]["text"])


@contextlib.asynccontextmanager
async def vendor_fake(name: str) -> AsyncIterator[Vendor]:
    """The named vendor's fake, started, and how to build its real provider."""
    from aura_llm.providers.gemini import GeminiProvider
    from aura_llm.providers.openai import OpenAIProvider

    fake: FakeVendor = FakeOpenAI() if name == "openai" else FakeGemini()
    url = await fake.start()
    try:
        if name == "openai":
            yield Vendor(
                fake,
                lambda _: OpenAIProvider(api_key=KEY, model="gpt-test", base_url=f"{url}/v1"),
                name,
            )
        else:
            yield Vendor(
                fake,
                lambda _: GeminiProvider(api_key=KEY, model="gemini-test", base_url=url),
                name,
            )
    finally:
        await fake.stop()
