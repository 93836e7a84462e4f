"""OpenAI Realtime (GA) through the official SDK's realtime client, with `audio/pcmu` both
ways: Twilio's mu-law bytes go to OpenAI and back untouched. With OPENAI_BASE_URL set the
socket goes to that same server (the SDK turns http into ws, https into wss), so
OpenAI-compatible realtime servers and local fakes work like the text path."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import openai
import websockets
from openai.resources.realtime.realtime import AsyncRealtimeConnection

from aura_llm.providers.base import ProviderError, ToolCall, status_error
from aura_llm.realtime.base import (
    AnswerDone,
    AssistantSaid,
    Audio,
    CallerSaid,
    Event,
    RealtimeConnection,
    RealtimeProvider,
    SessionSpec,
    SpeechStarted,
    SpeechStopped,
    ToolAsked,
)

log = logging.getLogger(__name__)

DEFAULT_VOICE = "marin"
# Errors OpenAI reports for a cancel or a response that raced with its own VAD: harmless.
_BENIGN_ERRORS = {"response_cancel_not_active", "conversation_already_has_active_response"}


def translate(error: BaseException) -> ProviderError:
    """A ProviderError for what connecting or talking to the vendor raised."""
    if isinstance(error, ProviderError):
        return error
    if isinstance(error, websockets.exceptions.InvalidStatus):
        return status_error(error.response.status_code, "realtime connection refused")
    if isinstance(error, TimeoutError):
        return ProviderError(
            "timeout", "the realtime session did not open in time", retryable=False
        )
    if isinstance(error, websockets.exceptions.ConnectionClosed):
        return ProviderError("connection", f"the realtime session closed: {error}", retryable=True)
    return ProviderError("connection", f"realtime transport failed: {error!r}", retryable=True)


def session_config(spec: SessionSpec, model: str, transcription_model: str) -> dict[str, Any]:
    detection: dict[str, Any] = {"type": spec.turn_detection, "create_response": True}
    if spec.turn_detection == "server_vad":
        detection["silence_duration_ms"] = spec.silence_ms
    detection["interrupt_response"] = True
    transcription: dict[str, Any] = {"model": transcription_model}
    if spec.language:
        transcription["language"] = spec.language.split("-")[0]
    return {
        "type": "realtime",
        "model": model,
        "instructions": spec.instructions,
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": transcription,
                "turn_detection": detection,
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": spec.voice or DEFAULT_VOICE},
        },
        "tools": [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": dict(t.parameters),
            }
            for t in spec.tools
        ],
        "tool_choice": "auto",
    }


class OpenAIRealtime(RealtimeProvider):
    name = "openai"

    def __init__(
        self, *, api_key: str, model: str, base_url: str = "", transcription_model: str
    ) -> None:
        self.model = model
        self._transcription_model = transcription_model
        # No SDK retries or reconnects: failing over is the caller's choice to make.
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url or None, max_retries=0)

    async def connect(self, spec: SessionSpec, seconds: float) -> RealtimeConnection:
        try:
            async with asyncio.timeout(seconds):
                connection = await self._client.realtime.connect(model=self.model).enter()
                await connection.session.update(
                    session=session_config(spec, self.model, self._transcription_model)  # type: ignore[arg-type]
                )
        except Exception as error:
            raise translate(error) from error
        return _Session(connection, spec.call_id)


class _Session(RealtimeConnection):
    def __init__(self, connection: AsyncRealtimeConnection, call_id: str) -> None:
        self._connection = connection
        self._call_id = call_id

    async def events(self) -> AsyncIterator[Event]:
        # Raw frames, decoded as JSON: the SDK's typed events cost 15 times as much to
        # build, on every piece of audio of every call.
        try:
            while True:
                raw = await self._connection.recv_bytes()
                try:
                    event = json.loads(raw)
                except (ValueError, RecursionError) as error:
                    raise ProviderError(
                        "bad_response", "a realtime event is not JSON", retryable=True
                    ) from error
                if isinstance(event, dict):
                    for mine in self._translate(event):
                        yield mine
        except ProviderError:
            raise
        except Exception as error:
            raise translate(error) from error

    def _translate(self, event: dict[str, Any]) -> list[Event]:
        kind = event.get("type")
        if kind == "response.output_audio.delta":
            item_id = str(event.get("item_id", ""))
            return [Audio(item_id, base64.b64decode(str(event.get("delta", ""))))]
        if kind == "input_audio_buffer.speech_started":
            return [SpeechStarted()]
        if kind == "input_audio_buffer.speech_stopped":
            return [SpeechStopped()]
        if kind == "conversation.item.input_audio_transcription.completed":
            text = " ".join(str(event.get("transcript") or "").split())
            return [CallerSaid(text)] if text else []
        if kind == "response.output_audio_transcript.done":
            return [
                AssistantSaid(str(event.get("item_id", "")), str(event.get("transcript") or ""))
            ]
        if kind == "response.output_item.done":
            item = event.get("item") or {}
            if item.get("type") == "function_call" and item.get("status") == "completed":
                call = ToolCall(
                    str(item.get("call_id") or ""),
                    str(item.get("name") or ""),
                    str(item.get("arguments") or ""),
                )
                return [ToolAsked(call)]
            return []
        if kind == "response.done":
            output = (event.get("response") or {}).get("output") or []
            items = [str(o.get("id", "")) for o in output if o.get("type") == "message"]
            return [AnswerDone(items[-1] if items else "")]
        if kind == "error":
            error = event.get("error") or {}
            code = str(error.get("code") or "")
            if code in _BENIGN_ERRORS:
                log.debug("call %s: realtime: %s", self._call_id, code)
                return []
            message = f"realtime error {code}: {error.get('message', '')}"
            raise ProviderError("bad_request", message, retryable=False)
        return []

    async def _send(self, call: Any) -> None:
        try:
            await call
        except Exception as error:
            raise translate(error) from error

    async def send_audio(self, ulaw: bytes) -> None:
        # The SDK's raw send: its typed one checks every event against its schema first
        # (0.1 ms, 25 times a second for each call).
        append = {"type": "input_audio_buffer.append", "audio": base64.b64encode(ulaw).decode()}
        await self._send(self._connection.send_raw(json.dumps(append)))

    async def say(self, text: str) -> None:
        instructions = f"Say exactly this, word for word, and nothing else: {text}"
        await self._send(self._connection.response.create(response={"instructions": instructions}))

    async def tool_result(self, call: ToolCall, content: str, respond: bool) -> None:
        item = {"type": "function_call_output", "call_id": call.id, "output": content}
        await self._send(self._connection.conversation.item.create(item=item))  # type: ignore[arg-type]
        if respond:
            await self._send(self._connection.response.create())

    async def truncate(self, item_id: str, audio_ms: int) -> None:
        await self._send(
            self._connection.conversation.item.truncate(
                item_id=item_id, content_index=0, audio_end_ms=audio_ms
            )
        )

    async def instruct(self, instructions: str) -> None:
        update = {"type": "realtime", "instructions": instructions}
        await self._send(self._connection.session.update(session=update))  # type: ignore[arg-type]

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # the vendor may already be gone
            await self._connection.close()
