"""Plays Twilio's side of a realtime call over Media Streams: opens the WebSocket that a
<Connect><Stream> names, signed like Twilio signs it, sends `connected` and `start` (with
the stream's <Parameter>s), then the caller's audio as 20 ms mu-law frames in real time,
and `dtmf` keys. What the deployment sends back is played as Twilio does: `media` is queued
and played at 8 kHz, each `mark` is echoed once the audio before it has played, and
`clear` empties the queue and echoes every mark still in it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import subprocess
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from aura_phone.twilio import Twilio, post_webhook, ring

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # the stdlib's G.711 codec
    import audioop

FRAME_BYTES = 160  # 20 ms of 8 kHz mu-law
FRAME_SECONDS = 0.02


class StreamError(Exception):
    """The deployment refused the stream, or answered without one."""


@dataclass(frozen=True)
class StreamTwiml:
    url: str
    parameters: dict[str, str]


def stream_welcome(
    base_url: str, twilio: Twilio, call_sid: str, timeout: float = 10.0, prompt_key: str = ""
) -> StreamTwiml:
    """Ring the deployment as Twilio does and return the <Stream> its answer names; a
    keypad-only prompt first (a recording notice) is answered with `prompt_key` (or no
    key) and followed, as Twilio does."""
    response = ring(base_url, twilio, call_sid, timeout)
    if response.status_code != 200:
        raise StreamError(f"the welcome answered HTTP {response.status_code}")
    prompt = ElementTree.fromstring(response.text).find("Gather")  # noqa: S314
    if prompt is not None and prompt.get("input") == "dtmf" and prompt.get("action"):
        params = twilio.call_params(call_sid, Digits=prompt_key)
        response = post_webhook(base_url, twilio, prompt.get("action", ""), params, timeout)
        if response.status_code != 200:
            raise StreamError(f"the notice's webhook answered HTTP {response.status_code}")
    return parse_stream(response.text)


def parse_stream(document: str) -> StreamTwiml:
    stream = ElementTree.fromstring(document).find("Connect/Stream")  # noqa: S314
    if stream is None or not stream.get("url"):
        raise StreamError("the answer has no <Connect><Stream>: is VOICE_MODE=realtime?")
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return StreamTwiml(stream.get("url", ""), parameters)


def tone_ulaw(ms: int, level: int = 8000) -> bytes:
    """A 440 Hz tone: speech as an energy detector hears it."""
    import math

    samples = [int(level * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(8 * ms)]
    pcm = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)
    return audioop.lin2ulaw(pcm, 2)


def silence_ulaw(ms: int) -> bytes:
    return b"\xff" * (8 * ms)  # mu-law's zero


def speech_ulaw(text: str) -> bytes:
    """`text` spoken by espeak-ng at 8 kHz mu-law; a tone as long as the words would take
    when espeak-ng is not installed."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        return tone_ulaw(max(1, len(text.split())) * 300)
    wav = subprocess.run(
        [espeak, "--stdout", "-s", "160", text], capture_output=True, check=True, timeout=30
    ).stdout
    rate = int.from_bytes(wav[24:28], "little")
    pcm = wav[44:]
    pcm8k, _ = audioop.ratecv(pcm, 2, 1, rate, 8000, None)
    return audioop.lin2ulaw(pcm8k, 2)


@dataclass
class Playback:
    """What the deployment sent and what of it was played."""

    received_ms: int = 0
    played_ms: int = 0
    clears: int = 0
    marks_echoed: list[str] = field(default_factory=list)
    first_audio_at: float | None = None
    audio_since: list[float] = field(default_factory=list)  # when each answer began


class StreamPlayer:
    def __init__(self, base_url: str, twilio: Twilio, call_sid: str) -> None:
        self._base_url = base_url.rstrip("/")
        self._twilio = twilio
        self.call_sid = call_sid
        self.stream_sid = "MZ" + call_sid[2:]
        self._socket: ClientConnection | None = None
        self._queue: deque[tuple[str, bytes | str]] = deque()
        self._tasks: list[asyncio.Task[None]] = []
        self._sequence = 0
        self.playback = Playback()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._last_audio = 0.0
        # For measurements: called with each piece of audio received, and at each clear.
        self.on_media: Callable[[bytes, float], None] | None = None
        self.on_clear: Callable[[float], None] | None = None

    async def open(self, twiml: StreamTwiml) -> None:
        parts = urlsplit(twiml.url)
        target = self._base_url.replace("http", "ws", 1) + parts.path
        headers = self._twilio.signature(twiml.url, {})
        try:
            self._socket = await connect(target, additional_headers=headers, open_timeout=10)
        except InvalidStatus as error:
            raise StreamError(
                f"{target} refused the stream (HTTP {error.response.status_code})"
            ) from error
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        start = {
            "accountSid": self._twilio.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "customParameters": twiml.parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        await self._send({"event": "start", "start": start, "streamSid": self.stream_sid})
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._play())]

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._socket is not None
        self._sequence += 1
        message.setdefault("sequenceNumber", str(self._sequence))
        with contextlib.suppress(ConnectionClosed):
            await self._socket.send(json.dumps(message))

    async def _receive(self) -> None:
        assert self._socket is not None
        try:
            async for raw in self._socket:
                message = json.loads(raw)
                kind = message.get("event")
                if kind == "media":
                    audio = base64.b64decode(message["media"]["payload"])
                    now = time.perf_counter()
                    if self.on_media is not None:
                        self.on_media(audio, now)
                    if now - self._last_audio > 1.0:
                        self.playback.audio_since.append(now)
                    self._last_audio = now
                    if self.playback.first_audio_at is None:
                        self.playback.first_audio_at = now
                    self.playback.received_ms += len(audio) // 8
                    self._queue.append(("media", audio))
                elif kind == "mark":
                    self._queue.append(("mark", str(message["mark"]["name"])))
                elif kind == "clear":
                    if self.on_clear is not None:
                        self.on_clear(time.perf_counter())
                    self.playback.clears += 1
                    marks = [v for k, v in self._queue if k == "mark"]
                    self._queue.clear()
                    for name in marks:
                        await self._echo(str(name))
        except ConnectionClosed as closed:
            self.close_code = closed.rcvd.code if closed.rcvd else None
        finally:
            if self.close_code is None and self._socket is not None:
                self.close_code = self._socket.close_code
            self.closed.set()

    async def _echo(self, name: str) -> None:
        self.playback.marks_echoed.append(name)
        await self._send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    async def _play(self) -> None:
        """Play the queue at 8 kHz, 20 ms at a time, echoing marks as they are reached."""
        next_tick = time.perf_counter()
        while not self.closed.is_set():
            budget = FRAME_BYTES
            while self._queue and budget > 0:
                kind, value = self._queue[0]
                if kind == "mark":
                    self._queue.popleft()
                    await self._echo(str(value))
                    continue
                audio = bytes(value) if isinstance(value, bytes) else b""
                take = audio[:budget]
                budget -= len(take)
                self.playback.played_ms += len(take) // 8
                if len(take) < len(audio):
                    self._queue[0] = ("media", audio[len(take) :])
                else:
                    self._queue.popleft()
            next_tick += FRAME_SECONDS
            await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))

    @property
    def playing(self) -> bool:
        return any(kind == "media" for kind, _ in self._queue)

    @property
    def quiet_seconds(self) -> float:
        """How long since the deployment last sent audio."""
        return time.perf_counter() - self._last_audio

    async def speak(self, ulaw: bytes, tag: Callable[[bytes], bytes] | None = None) -> None:
        """Send `ulaw` as the caller's voice, 20 ms frames in real time (each through
        `tag` first, when given: the benchmark marks frames to time them)."""
        next_tick = time.perf_counter()
        for offset in range(0, len(ulaw), FRAME_BYTES):
            if self.closed.is_set():
                return
            frame = ulaw[offset : offset + FRAME_BYTES]
            if tag is not None:
                frame = tag(frame)
            chunk = str(offset // FRAME_BYTES)
            media = {
                "track": "inbound",
                "chunk": chunk,
                "timestamp": str(offset // 8),
                "payload": base64.b64encode(frame).decode(),
            }
            await self._send({"event": "media", "streamSid": self.stream_sid, "media": media})
            next_tick += FRAME_SECONDS
            await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))

    async def say(self, text: str, pause_ms: int = 800) -> None:
        """The caller says `text` (synthesised), then is quiet for `pause_ms`."""
        await self.speak(speech_ulaw(text) + silence_ulaw(pause_ms))

    async def press(self, digit: str) -> None:
        await self._send(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    async def hang_up(self) -> None:
        stop = {"accountSid": self._twilio.account_sid, "callSid": self.call_sid}
        await self._send({"event": "stop", "streamSid": self.stream_sid, "stop": stop})
        await self.close()

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.closed.set()


async def _transcript(base_url: str, admin_token: str, call_sid: str) -> list[dict[str, Any]]:
    """The call's turns from the admin API, when a token is at hand (else none)."""
    if not admin_token:
        return []
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(
            f"{base_url}/api/calls/{call_sid}/transcript",
            headers={"Authorization": f"Bearer {admin_token}"},
        )
    if response.status_code != 200:
        return []
    turns = response.json().get("turns", [])
    return turns if isinstance(turns, list) else []


async def interactive(
    base_url: str, twilio: Twilio, call_sid: str, admin_token: str = "", prompt_key: str = ""
) -> None:
    """A realtime call from a terminal: each line typed is spoken as the caller's voice
    (espeak-ng when installed), `#5` presses 5, typing while the assistant speaks talks
    over it. Each answer prints its timing, and its words when ADMIN_API_TOKEN is given."""
    player = StreamPlayer(base_url, twilio, call_sid)
    await player.open(stream_welcome(base_url, twilio, call_sid, prompt_key=prompt_key))
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def read_lines() -> None:
        try:
            while True:
                line = input()
                loop.call_soon_threadsafe(lines.put_nowait, line)
        except EOFError:
            loop.call_soon_threadsafe(lines.put_nowait, None)

    # A daemon thread: a blocked input() must not keep the process once the call is over.
    threading.Thread(target=read_lines, daemon=True).start()
    shown = 0
    spoke_at = time.perf_counter()
    try:
        while not player.closed.is_set():
            try:
                line = await asyncio.wait_for(lines.get(), 0.5)
            except TimeoutError:
                line = ""
            answered = player.playback.audio_since
            if answered and answered[-1] > spoke_at and not player.playing:
                first = answered[-1] - spoke_at
                print(f"aura> [answer: first audio {first * 1000:.0f} ms after you spoke]")
                spoke_at = float("inf")
                for turn in (await _transcript(base_url, admin_token, call_sid))[shown:]:
                    print(f"{turn.get('role', '?')}> {turn.get('text', '')}")
                    shown += 1
            if line is None:
                break
            if not line:
                continue
            if line.startswith("#"):
                await player.press(line[1:2])
                continue
            if player.playing:
                print("[talking over the answer]")
            await player.say(line)
            spoke_at = time.perf_counter()
    finally:
        await player.hang_up()
    print(f"[stream closed ({player.close_code}); the action URL continues the call]")
