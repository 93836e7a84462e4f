"""Local fakes of OpenAI Realtime and Gemini Live: real WebSocket servers that speak each
vendor's wire protocol, for the official SDKs to talk to in tests, `make run` and the
benchmark. They hear the caller by audio energy (a level above the line is speech, a pause
ends the turn), take the caller's words from a script (they recognise no speech), and
answer with audio: a tone as long as the words would take to say, with their transcript.

What the model does with the caller's words follows rules: the first whose pattern matches
the caller's words (case-insensitive regex) says its `say`, or first calls its `call`
(a tool, with arguments) and says `say` once the tool's result comes back. Without a
matching rule the fake says "You said: <words>."

    aura-fake-realtime --vendor openai --port 8765 [--rules rules.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import logging
import re
import ssl
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

log = logging.getLogger(__name__)

# An RMS level (16-bit samples) above this is speech; espeak-ng and tones sit far above,
# Twilio's comfort noise and digital silence far below.
SPEECH_LEVEL = 300
WORD_MS = 300  # how long the fake takes to say one word
CHUNK_MS = 100  # audio per delta it sends


@dataclass(frozen=True)
class Rule:
    pattern: str
    say: str = ""
    call: tuple[str, dict[str, Any]] | None = None

    def matches(self, words: str) -> bool:
        return re.search(self.pattern, words, re.IGNORECASE) is not None


def load_rules(path: Path | None) -> list[Rule]:
    """Rules from a JSON file: [{"when": regex, "say": text, "call": {"name", "arguments"}}]."""
    if path is None:
        return []
    rules = []
    for entry in json.loads(path.read_text()):
        call = entry.get("call")
        rules.append(
            Rule(
                entry["when"],
                entry.get("say", ""),
                (call["name"], call.get("arguments", {})) if call else None,
            )
        )
    return rules


@dataclass
class Script:
    """What the fakes hear and answer; tests change it while a call runs."""

    rules: list[Rule] = field(default_factory=list)
    transcripts: deque[str] = field(default_factory=deque)  # the caller's next words
    heard: list[str] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)  # each session's setup
    instructions: list[str] = field(default_factory=list)  # every instructions update
    truncations: list[tuple[str, int]] = field(default_factory=list)
    tool_results: list[str] = field(default_factory=list)
    fail_next_connects: int = 0  # refuse this many connections (HTTP 503)
    drop_after_words: str = ""  # close the session when the caller says these words
    silent_after_words: str = ""  # stop answering when the caller says these words
    go_away_after_words: str = ""  # Gemini: go_away and close, resumable
    # For the benchmark: outgoing audio carries a tag (b"AU" and a counter) whose send time
    # is kept; incoming 20 ms frames that start with b"TW" and a counter have their arrival
    # kept; and when each speech_started was sent.
    tag_audio: bool = False
    sent_at: dict[bytes, float] = field(default_factory=dict)
    received_at: dict[bytes, float] = field(default_factory=dict)
    speech_started_at: list[float] = field(default_factory=list)

    def answer(self, words: str) -> Rule:
        for rule in self.rules:
            if rule.matches(words):
                return rule
        return Rule(".*", f"You said: {words.rstrip('.')}.")

    def next_words(self, turn: int) -> str:
        words = self.transcripts.popleft() if self.transcripts else f"caller speech {turn}"
        self.heard.append(words)
        return words


def tone(ms: int, rate: int) -> np.ndarray[Any, np.dtype[np.int16]]:
    """A 440 Hz tone of `ms` at `rate` (the fake's voice)."""
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")


def speech_ms(text: str) -> int:
    return max(1, len(text.split())) * WORD_MS


class EnergyVad:
    """Speech starts with a loud chunk and ends after `silence_ms` of quiet ones."""

    def __init__(self, silence_ms: int) -> None:
        self.silence_ms = silence_ms
        self.speaking = False
        self._quiet_ms = 0

    def feed(self, pcm16: bytes, ms: int) -> str | None:
        """ "started", "stopped" or None."""
        loud = audioop.rms(pcm16, 2) > SPEECH_LEVEL if pcm16 else False
        if loud:
            self._quiet_ms = 0
            if not self.speaking:
                self.speaking = True
                return "started"
            return None
        if self.speaking:
            self._quiet_ms += ms
            if self._quiet_ms >= self.silence_ms:
                self.speaking = False
                self._quiet_ms = 0
                return "stopped"
        return None


class _Fake:
    """What both fakes share: the server, the script, refusing connections."""

    def __init__(self, script: Script | None = None, host: str = "127.0.0.1") -> None:
        self.script = script or Script()
        self.host = host  # another address of this machine, for pods of a local cluster
        self._server: Server | None = None
        self.url = ""
        self.connections = 0
        self._tags = 0

    async def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        self.connections += 1
        if self.script.fail_next_connects > 0:
            self.script.fail_next_connects -= 1
            return connection.respond(503, "injected failure\n")
        return None

    async def _serve(
        self,
        handler: Callable[[ServerConnection], Awaitable[None]],
        port: int,
        tls: ssl.SSLContext | None,
    ) -> None:
        self._server = await serve(
            handler,
            self.host,
            port,
            process_request=self._process_request,
            ssl=tls,
            max_size=None,
        )
        bound = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://{self.host}:{bound}"

    def _tagged(self, chunk: bytes) -> bytes:
        if not self.script.tag_audio or len(chunk) < 8:
            return chunk
        self._tags += 1
        tag = b"AU" + self._tags.to_bytes(4, "big")
        self.script.sent_at[tag] = time.perf_counter()
        return tag + chunk[len(tag) :]

    def _arrived(self, ulaw: bytes) -> None:
        if not self.script.tag_audio:
            return
        now = time.perf_counter()
        for offset in range(0, len(ulaw), 160):
            if ulaw[offset : offset + 2] == b"TW":
                self.script.received_at[ulaw[offset : offset + 6]] = now

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class FakeOpenAIRealtime(_Fake):
    """`/v1/realtime` as OpenAI's GA Realtime API: base URL `<url>/v1`."""

    async def start(self, port: int = 0) -> FakeOpenAIRealtime:
        await self._serve(self._session, port, None)
        return self

    async def _session(self, ws: ServerConnection) -> None:
        ids = itertools.count(1)
        state: dict[str, Any] = {"silence_ms": 500}
        vad = EnergyVad(500)
        speaking: asyncio.Task[None] | None = None
        turn = itertools.count(1)

        async def send(event: dict[str, Any]) -> None:
            event.setdefault("event_id", f"event_{next(ids)}")
            await ws.send(json.dumps(event))

        async def respond(text: str, call: tuple[str, dict[str, Any]] | None = None) -> None:
            response_id, item_id = f"resp_{next(ids)}", f"item_{next(ids)}"
            await send(
                {
                    "type": "response.created",
                    "response": {
                        "id": response_id,
                        "object": "realtime.response",
                        "status": "in_progress",
                        "output": [],
                    },
                }
            )
            output: list[dict[str, Any]] = []
            if call is not None:
                name, arguments = call
                call_item = {
                    "id": f"item_{next(ids)}",
                    "type": "function_call",
                    "object": "realtime.item",
                    "status": "completed",
                    "name": name,
                    "call_id": f"call_{next(ids)}",
                    "arguments": json.dumps(arguments),
                }
                await send(
                    {
                        "type": "response.output_item.done",
                        "response_id": response_id,
                        "output_index": 0,
                        "item": call_item,
                    }
                )
                output.append(call_item)
                state["pending"] = text
            else:
                pcm = tone(speech_ms(text), 8000).tobytes()
                ulaw = audioop.lin2ulaw(pcm, 2)
                step = 8 * CHUNK_MS
                for offset in range(0, len(ulaw), step):
                    chunk = self._tagged(ulaw[offset : offset + step])
                    await send(
                        {
                            "type": "response.output_audio.delta",
                            "response_id": response_id,
                            "item_id": item_id,
                            "output_index": 0,
                            "content_index": 0,
                            "delta": base64.b64encode(chunk).decode(),
                        }
                    )
                    await asyncio.sleep(0)  # others' messages interleave, as on the wire
                await send(
                    {
                        "type": "response.output_audio.done",
                        "response_id": response_id,
                        "item_id": item_id,
                        "output_index": 0,
                        "content_index": 0,
                    }
                )
                await send(
                    {
                        "type": "response.output_audio_transcript.done",
                        "response_id": response_id,
                        "item_id": item_id,
                        "output_index": 0,
                        "content_index": 0,
                        "transcript": text,
                    }
                )
                message = {
                    "id": item_id,
                    "type": "message",
                    "object": "realtime.item",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_audio", "transcript": text}],
                }
                await send(
                    {
                        "type": "response.output_item.done",
                        "response_id": response_id,
                        "output_index": 0,
                        "item": message,
                    }
                )
                output.append(message)
            await send(
                {
                    "type": "response.done",
                    "response": {
                        "id": response_id,
                        "object": "realtime.response",
                        "status": "completed",
                        "output": output,
                    },
                }
            )

        def start_answer(text: str, call: tuple[str, dict[str, Any]] | None = None) -> None:
            nonlocal speaking
            speaking = asyncio.create_task(respond(text, call))

        async def caller_done() -> None:
            words = self.script.next_words(next(turn))
            item_id = f"item_{next(ids)}"
            await send(
                {
                    "type": "input_audio_buffer.committed",
                    "item_id": item_id,
                    "previous_item_id": None,
                }
            )
            await send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": words,
                }
            )
            if self.script.drop_after_words and self.script.drop_after_words in words:
                await ws.close(1011, "injected failure")
                return
            if self.script.silent_after_words and self.script.silent_after_words in words:
                return
            rule = self.script.answer(words)
            start_answer(rule.say, rule.call)

        await send(
            {
                "type": "session.created",
                "session": {
                    "type": "realtime",
                    "id": f"sess_{next(ids)}",
                    "object": "realtime.session",
                },
            }
        )
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                event = json.loads(raw)
                kind = event.get("type")
                if kind == "session.update":
                    session = event.get("session", {})
                    if "audio" in session:
                        self.script.sessions.append(session)
                        detection = session["audio"]["input"].get("turn_detection") or {}
                        vad.silence_ms = int(detection.get("silence_duration_ms", 500))
                    if "instructions" in session:
                        self.script.instructions.append(session["instructions"])
                    await send(
                        {"type": "session.updated", "session": {"type": "realtime", **session}}
                    )
                elif kind == "input_audio_buffer.append":
                    ulaw = base64.b64decode(event["audio"])
                    self._arrived(ulaw)
                    change = vad.feed(audioop.ulaw2lin(ulaw, 2), len(ulaw) // 8)
                    if change == "started":
                        if speaking is not None and not speaking.done():
                            speaking.cancel()  # interrupt_response
                        self.script.speech_started_at.append(time.perf_counter())
                        await send(
                            {
                                "type": "input_audio_buffer.speech_started",
                                "audio_start_ms": 0,
                                "item_id": f"item_{next(ids)}",
                            }
                        )
                    elif change == "stopped":
                        await send(
                            {
                                "type": "input_audio_buffer.speech_stopped",
                                "audio_end_ms": 0,
                                "item_id": "",
                            }
                        )
                        await caller_done()
                elif kind == "response.create":
                    instructions = (event.get("response") or {}).get("instructions", "")
                    said = instructions.partition("nothing else: ")[2]
                    if said:
                        start_answer(said)
                    elif state.get("pending") is not None:
                        start_answer(state.pop("pending") or "Done.")
                elif kind == "conversation.item.create":
                    item = event.get("item", {})
                    if item.get("type") == "function_call_output":
                        self.script.tool_results.append(item.get("output", ""))
                elif kind == "conversation.item.truncate":
                    self.script.truncations.append((event["item_id"], int(event["audio_end_ms"])))
                    await send(
                        {
                            "type": "conversation.item.truncated",
                            "item_id": event["item_id"],
                            "content_index": 0,
                            "audio_end_ms": event["audio_end_ms"],
                        }
                    )
        if speaking is not None:
            speaking.cancel()


class FakeGeminiLive(_Fake):
    """Gemini's Live API (BidiGenerateContent) over TLS: google-genai speaks only wss:// to
    a base URL with an API key. `certificate` is the CA file its clients must trust
    (SSL_CERT_FILE)."""

    def __init__(self, script: Script | None = None) -> None:
        super().__init__(script)
        self.certificate = Path()
        self._directory = tempfile.TemporaryDirectory(prefix="aura-fake-gemini-")

    async def start(self, port: int = 0) -> FakeGeminiLive:
        from aura_dev.certificates import self_signed

        certificate, key = self_signed(Path(self._directory.name))
        self.certificate = certificate
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(certificate, key)
        await self._serve(self._session, port, tls)
        return self

    async def close(self) -> None:
        await super().close()
        self._directory.cleanup()

    async def _session(self, ws: ServerConnection) -> None:
        vad = EnergyVad(500)
        speaking: asyncio.Task[None] | None = None
        turn = itertools.count(1)
        pending: dict[str, str] = {}
        resumed = "handle" in str(ws.request.path if ws.request else "")

        async def send(message: dict[str, Any]) -> None:
            await ws.send(json.dumps(message))

        async def respond(text: str) -> None:
            pcm = tone(speech_ms(text), 24000).tobytes()
            step = 48 * CHUNK_MS
            for offset in range(0, len(pcm), step):
                part = {
                    "inlineData": {
                        "mimeType": "audio/pcm;rate=24000",
                        "data": base64.b64encode(pcm[offset : offset + step]).decode(),
                    }
                }
                await send({"serverContent": {"modelTurn": {"parts": [part]}}})
                await asyncio.sleep(0)
            await send({"serverContent": {"outputTranscription": {"text": text}}})
            await send({"serverContent": {"generationComplete": True}})
            await send({"serverContent": {"turnComplete": True}})

        def start_answer(text: str) -> None:
            nonlocal speaking
            speaking = asyncio.create_task(respond(text))

        async def caller_done() -> None:
            words = self.script.next_words(next(turn))
            await send({"serverContent": {"inputTranscription": {"text": words, "finished": True}}})
            if self.script.drop_after_words and self.script.drop_after_words in words:
                await ws.close(1011, "injected failure")
                return
            if self.script.silent_after_words and self.script.silent_after_words in words:
                return
            if self.script.go_away_after_words and self.script.go_away_after_words in words:
                self.script.go_away_after_words = ""
                await send({"goAway": {"timeLeft": "0s"}})
                await ws.close(1000, "go away")
                return
            rule = self.script.answer(words)
            if rule.call is not None:
                name, arguments = rule.call
                pending["say"] = rule.say
                await send(
                    {
                        "toolCall": {
                            "functionCalls": [
                                {"id": f"fc{next(turn)}", "name": name, "args": arguments}
                            ]
                        }
                    }
                )
            else:
                start_answer(rule.say)

        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                message = _camel(json.loads(raw))
                if "setup" in message:
                    setup = message["setup"]
                    self.script.sessions.append(setup)
                    instruction = setup.get("systemInstruction", {})
                    self.script.instructions.append(
                        " ".join(p.get("text", "") for p in instruction.get("parts", []))
                    )
                    detection = (setup.get("realtimeInputConfig") or {}).get(
                        "automaticActivityDetection"
                    ) or {}
                    vad.silence_ms = int(detection.get("silenceDurationMs", 500))
                    await send({"setupComplete": {}})
                    if resumed or (setup.get("sessionResumption") or {}).get("handle"):
                        log.info("gemini fake: a session resumed")
                    await send(
                        {
                            "sessionResumptionUpdate": {
                                "newHandle": f"handle-{self.connections}",
                                "resumable": True,
                            }
                        }
                    )
                elif "realtimeInput" in message:
                    audio = (message["realtimeInput"].get("audio") or {}).get("data")
                    if not audio:
                        continue
                    pcm = _b64(audio)
                    change = vad.feed(pcm, len(pcm) // 32)
                    if change == "started":
                        self.script.speech_started_at.append(time.perf_counter())
                        await send({"voiceActivity": {"type": "ACTIVITY_START"}})
                        if speaking is not None and not speaking.done():
                            speaking.cancel()
                            await send({"serverContent": {"interrupted": True}})
                    elif change == "stopped":
                        await send({"voiceActivity": {"type": "ACTIVITY_END"}})
                        await caller_done()
                elif "clientContent" in message:
                    turns = message["clientContent"].get("turns") or []
                    text = " ".join(p.get("text", "") for t in turns for p in t.get("parts", []))
                    said = text.partition("nothing else: ")[2]
                    if said:
                        start_answer(said)
                elif "toolResponse" in message:
                    for response in message["toolResponse"].get("functionResponses", []):
                        self.script.tool_results.append(json.dumps(response.get("response")))
                        if response.get("scheduling") != "SILENT":
                            start_answer(pending.pop("say", "") or "Done.")
                elif "contextUpdate" in message or "systemInstruction" in json.dumps(message)[:200]:
                    self.script.instructions.append(json.dumps(message))
        if speaking is not None:
            speaking.cancel()


def _camel(value: Any) -> Any:
    """A Live API message with its keys in camelCase: the server takes both spellings,
    and google-genai sends some in snake_case."""
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m[1].upper(), k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _b64(data: str) -> bytes:
    """Standard or URL-safe base64 (google-genai sends the latter)."""
    return base64.b64decode(data.replace("-", "+").replace("_", "/") + "=" * (-len(data) % 4))


def main() -> None:
    parser = argparse.ArgumentParser(description="A local fake of a realtime speech vendor.")
    parser.add_argument("--vendor", choices=["openai", "gemini"], default="openai")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--rules", type=Path, help="a JSON file of answer rules")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    async def run() -> None:
        script = Script(rules=load_rules(args.rules))
        fake: FakeOpenAIRealtime | FakeGeminiLive
        if args.vendor == "openai":
            fake = await FakeOpenAIRealtime(script).start(args.port)
            print(f"OPENAI_BASE_URL={fake.url}/v1 OPENAI_API_KEY=fake", flush=True)
        else:
            fake = await FakeGeminiLive(script).start(args.port)
            print(
                f"GEMINI_BASE_URL={fake.url} GEMINI_API_KEY=fake SSL_CERT_FILE={fake.certificate}",
                flush=True,
            )
        try:
            await asyncio.Event().wait()
        finally:
            await fake.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
