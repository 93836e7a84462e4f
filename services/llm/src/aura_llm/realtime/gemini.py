"""Gemini Live (native audio) through google-genai's Live API. Gemini hears 16-bit PCM at
16 kHz and speaks it at 24 kHz; Twilio's mu-law at 8 kHz is converted with `audioop` (the
standard library's G.711 codec; `audioop-lts` from Python 3.13) and soxr's streaming
resampler, one per direction and call, so that chunk edges do not click.

A connection lasts about ten minutes: on Gemini's `go_away`, and when it closes, the
session is resumed on a new connection with the latest resumption handle, and context
window compression lets the session itself run on. With GEMINI_BASE_URL the Live socket
goes to that server (google-genai always speaks wss:// to it)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

import numpy as np
import soxr
from google import genai
from google.genai import errors, types

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

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in 3.11, kept by -lts
    import audioop

log = logging.getLogger(__name__)

TWILIO_RATE, GEMINI_IN_RATE, GEMINI_OUT_RATE = 8000, 16000, 24000
IN_MIME = f"audio/pcm;rate={GEMINI_IN_RATE}"
# Past this many tokens of context Gemini slides its window, so sessions have no end.
COMPRESSION_TRIGGER_TOKENS = 25_600


def translate(error: BaseException) -> ProviderError:
    if isinstance(error, ProviderError):
        return error
    if isinstance(error, errors.APIError):
        code = error.code if isinstance(error.code, int) else 0
        if 400 <= code < 600:
            return status_error(code, str(error.message or error))
        return ProviderError("connection", f"the Live session closed: {error}", retryable=True)
    if isinstance(error, TimeoutError):
        return ProviderError("timeout", "the Live session did not open in time", retryable=False)
    return ProviderError("connection", f"Live transport failed: {error!r}", retryable=True)


class Transcoder:
    """Twilio's mu-law 8 kHz to Gemini's PCM16 16 kHz, and Gemini's 24 kHz back."""

    def __init__(self) -> None:
        self._up = soxr.ResampleStream(TWILIO_RATE, GEMINI_IN_RATE, 1, dtype="int16")
        self._down = soxr.ResampleStream(GEMINI_OUT_RATE, TWILIO_RATE, 1, dtype="int16")

    def to_gemini(self, ulaw: bytes) -> bytes:
        pcm = np.frombuffer(audioop.ulaw2lin(ulaw, 2), dtype="<i2")
        return bytes(self._up.resample_chunk(pcm).astype("<i2").tobytes())

    def to_twilio(self, pcm24k: bytes) -> bytes:
        samples = np.frombuffer(pcm24k[: len(pcm24k) // 2 * 2], dtype="<i2")
        pcm8k = self._down.resample_chunk(samples).astype("<i2").tobytes()
        return audioop.lin2ulaw(pcm8k, 2) if pcm8k else b""


def live_config(spec: SessionSpec, handle: str | None) -> types.LiveConnectConfig:
    speech = types.SpeechConfig(language_code=spec.language or None)
    if spec.voice:
        speech.voice_config = types.VoiceConfig(
            prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=spec.voice)
        )
    declarations = [
        types.FunctionDeclaration(
            name=t.name, description=t.description, parameters_json_schema=dict(t.parameters)
        )
        for t in spec.tools
    ]
    return types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        system_instruction=spec.instructions,
        speech_config=speech,
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        tools=[types.Tool(function_declarations=declarations)] if declarations else None,
        realtime_input_config=types.RealtimeInputConfig(
            automatic_activity_detection=types.AutomaticActivityDetection(
                disabled=False, silence_duration_ms=spec.silence_ms
            )
        ),
        context_window_compression=types.ContextWindowCompressionConfig(
            trigger_tokens=COMPRESSION_TRIGGER_TOKENS, sliding_window=types.SlidingWindow()
        ),
        session_resumption=types.SessionResumptionConfig(handle=handle),
    )


class GeminiRealtime(RealtimeProvider):
    name = "gemini"

    def __init__(self, *, api_key: str, model: str, base_url: str = "") -> None:
        self.model = model
        self._client = genai.Client(
            api_key=api_key, http_options=types.HttpOptions(base_url=base_url or None)
        )

    async def open(
        self, spec: SessionSpec, handle: str | None, seconds: float
    ) -> tuple[AbstractAsyncContextManager[Any], Any]:
        manager = self._client.aio.live.connect(model=self.model, config=live_config(spec, handle))
        try:
            async with asyncio.timeout(seconds):
                session = await manager.__aenter__()
        except Exception as error:
            raise translate(error) from error
        return manager, session

    async def connect(self, spec: SessionSpec, seconds: float) -> RealtimeConnection:
        manager, session = await self.open(spec, None, seconds)
        return _Session(self, spec, manager, session, seconds)


class _Session(RealtimeConnection):
    def __init__(
        self,
        provider: GeminiRealtime,
        spec: SessionSpec,
        manager: AbstractAsyncContextManager[Any],
        session: Any,
        connect_seconds: float,
    ) -> None:
        self._provider = provider
        self._spec = spec
        self._manager, self._session = manager, session
        self._connect_seconds = connect_seconds
        self._codec = Transcoder()
        self._handle: str | None = None
        self._resume = False  # go_away came: a new connection at the end of this turn
        self._answer = 0
        self._heard: list[str] = []
        self._said: list[str] = []
        self._speaking = False
        self._caller_speaking = False

    @property
    def _item(self) -> str:
        return f"gemini-{self._answer}"

    async def events(self) -> AsyncIterator[Event]:
        while True:
            try:
                async for message in self._session.receive():
                    for event in self._translate(message):
                        yield event
            except ProviderError:
                raise
            except Exception as error:
                failure = translate(error)
                if self._handle is None or failure.reason not in ("connection", "server_error"):
                    raise failure from error
                self._resume = True  # a dropped connection of a resumable session
            if self._resume:
                await self._reconnect()

    async def _reconnect(self) -> None:
        """The same session on a new connection, from the latest resumption handle."""
        self._resume = False
        old = self._manager
        self._manager, self._session = await self._provider.open(
            self._spec, self._handle, self._connect_seconds
        )
        log.info("call %s: Gemini Live session resumed", self._spec.call_id)
        await _quietly_exit(old)

    def _translate(self, message: Any) -> list[Event]:
        events: list[Event] = []
        update = message.session_resumption_update
        if update is not None and update.resumable and update.new_handle:
            self._handle = update.new_handle
        if message.go_away is not None:
            log.info(
                "call %s: Gemini go_away (%s left)", self._spec.call_id, message.go_away.time_left
            )
            self._resume = self._handle is not None
        if message.tool_call is not None:
            for call in message.tool_call.function_calls or []:
                arguments = json.dumps(call.args or {})
                events.append(ToolAsked(ToolCall(call.id or "", call.name or "", arguments)))
        activity = message.voice_activity
        if activity is not None and activity.voice_activity_type is not None:
            # Gemini's own detection of the caller's voice: the barge-in signal even when
            # its answer is all generated (and still playing at Twilio), which
            # `interrupted` does not report.
            kind = activity.voice_activity_type
            if kind == types.VoiceActivityType.ACTIVITY_START:
                events.extend(self._caller_started())
            elif kind == types.VoiceActivityType.ACTIVITY_END:
                events.append(SpeechStopped())
        content = message.server_content
        if content is None:
            return events
        if content.input_transcription is not None and content.input_transcription.text:
            self._heard.append(content.input_transcription.text)
        if content.interrupted:
            events.extend(self._end_answer())
            events.extend(self._caller_started())
        if content.model_turn is not None:
            for part in content.model_turn.parts or []:
                blob = part.inline_data
                if blob is not None and blob.data:
                    if not self._speaking:
                        events.extend(self._caller_done())
                        self._speaking = True
                    audio = self._codec.to_twilio(blob.data)
                    if audio:
                        events.append(Audio(self._item, audio))
        if content.output_transcription is not None and content.output_transcription.text:
            self._said.append(content.output_transcription.text)
        if content.turn_complete:
            events.extend(self._caller_done())
            events.extend(self._end_answer())
        return events

    def _caller_started(self) -> list[Event]:
        """SpeechStarted once per utterance, whichever of Gemini's signals comes first."""
        if self._caller_speaking:
            return []
        self._caller_speaking = True
        return [SpeechStarted()]

    def _caller_done(self) -> list[Event]:
        """The caller's turn is over (Gemini answers, or ends its turn): what they said.
        Gemini reports no end of speech of its own; its answer beginning is the nearest."""
        text = " ".join("".join(self._heard).split())
        self._heard = []
        self._caller_speaking = False
        return [SpeechStopped(), CallerSaid(text)] if text else []

    def _end_answer(self) -> list[Event]:
        if not self._speaking and not self._said:
            return []
        item, text = self._item, "".join(self._said)
        self._answer += 1
        self._said, self._speaking = [], False
        return [AssistantSaid(item, text), AnswerDone(item)]

    async def _call(self, sending: Any) -> None:
        try:
            await sending
        except Exception as error:
            raise translate(error) from error

    async def send_audio(self, ulaw: bytes) -> None:
        pcm = self._codec.to_gemini(ulaw)
        if pcm:
            blob = types.Blob(data=pcm, mime_type=IN_MIME)
            await self._call(self._session.send_realtime_input(audio=blob))

    async def say(self, text: str) -> None:
        turn = types.Content(
            role="user",
            parts=[types.Part(text=f"Say exactly this, word for word, and nothing else: {text}")],
        )
        await self._call(self._session.send_client_content(turns=turn, turn_complete=True))

    async def tool_result(self, call: ToolCall, content: str, respond: bool) -> None:
        try:
            result = json.loads(content)
        except ValueError:
            result = content
        response = types.FunctionResponse(
            id=call.id,
            name=call.name,
            response={"result": result},
            scheduling=None if respond else types.FunctionResponseScheduling.SILENT,
        )
        await self._call(self._session.send_tool_response(function_responses=response))

    async def truncate(self, item_id: str, audio_ms: int) -> None:
        """Gemini cuts its own answer where the caller's speech interrupted it."""

    async def instruct(self, instructions: str) -> None:
        self._spec = replace(self._spec, instructions=instructions)  # for a resumption
        await self._call(self._session.send_context_update(system_instruction=instructions))

    async def close(self) -> None:
        await _quietly_exit(self._manager)


async def _quietly_exit(manager: AbstractAsyncContextManager[Any]) -> None:
    with contextlib.suppress(Exception):  # the vendor may already be gone
        await manager.__aexit__(None, None, None)
