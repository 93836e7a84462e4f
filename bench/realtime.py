"""Realtime mode (Media Streams and a speech-to-speech model) under load: what Aura adds
to each piece of audio on its way (the fake vendor to Twilio's socket, and Twilio's socket
to the vendor), how soon Twilio's buffer is cleared after the model hears the caller start
speaking, and what a live stream costs the three services in CPU and memory.

Starts the stack on loopback with the OpenAI Realtime fake (aura_dev.fake_realtime), in
this process so that its clock is ours: the fake tags each piece of audio it sends and the
simulated Twilio side notes when it arrives, and the callers tag each 20 ms frame they send
and the fake notes when it arrives. `--streams` callers each send frames in real time for
`--duration` seconds, speaking every few seconds and talking over every other answer.
Prints figures and writes .bench/realtime.json. It measures; it asserts nothing.

Usage: python -m bench.realtime [--streams 20] [--duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from aura_dev.fake_realtime import FakeOpenAIRealtime, Rule, Script
from aura_dev.stack import Stack
from aura_phone.media import StreamPlayer, silence_ulaw, stream_welcome, tone_ulaw
from aura_phone.twilio import Twilio, new_call_sid
from bench.calls import cpu_seconds, percentiles, rss_mib
from bench.memory import machine
from tests.support.realtime import realtime_fake, until

OUT = Path(".bench/realtime.json")
TOKEN = "bench-token"
ANSWER = " ".join(["word"] * 12)  # 3.6 s of audio: long enough to talk over


class Clock:
    """Arrival times of tagged audio on the simulated Twilio side, and of clears."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.to_twilio: list[float] = []
        self.sent_at: dict[bytes, float] = {}  # caller frames
        self.clears: list[float] = []
        self._frames = 0

    def media(self, audio: bytes, at: float) -> None:
        sent = self.script.sent_at.pop(audio[:6], None)
        if sent is not None:
            self.to_twilio.append(at - sent)

    def tag(self, frame: bytes) -> bytes:
        self._frames += 1
        tag = b"TW" + self._frames.to_bytes(4, "big")
        self.sent_at[tag] = time.perf_counter()
        return tag + frame[len(tag) :]

    def to_vendor(self) -> list[float]:
        arrived = self.script.received_at
        return [arrived[t] - sent for t, sent in self.sent_at.items() if t in arrived]


async def caller(stack: Stack, clock: Clock, duration: float, index: int) -> int:
    """One caller: speaks, listens, and every other time talks over the answer. Returns
    how many barge-ins it made."""
    twilio = Twilio(auth_token=TOKEN)
    call_sid = new_call_sid()
    twiml = await asyncio.to_thread(stream_welcome, stack.base_url, twilio, call_sid, 30.0)
    player = StreamPlayer(stack.base_url, twilio, call_sid)
    player.on_media = clock.media
    player.on_clear = clock.clears.append
    await player.open(twiml)
    end = time.monotonic() + duration
    barge_ins = 0
    turn = index  # callers start out of step
    try:
        while time.monotonic() < end and not player.closed.is_set():
            turn += 1
            await player.speak(tone_ulaw(400) + silence_ulaw(700), clock.tag)
            if turn % 2 == 0:
                # Wait for the answer to start playing, then talk over it.
                while not player.playing and time.monotonic() < end:
                    await player.speak(silence_ulaw(100), clock.tag)
                await player.speak(silence_ulaw(600), clock.tag)
                await player.speak(tone_ulaw(300) + silence_ulaw(700), clock.tag)
                barge_ins += 1
            await player.speak(silence_ulaw(2000), clock.tag)
    finally:
        await player.hang_up()
    return barge_ins


async def load(stack: Stack, clock: Clock, streams: int, duration: float) -> int:
    made = await asyncio.gather(*(caller(stack, clock, duration, i) for i in range(streams)))
    return sum(made)


async def idle_memory(stack: Stack, count: int) -> dict[str, float]:
    """Memory each service holds per live, silent stream."""
    pids = {name: p.pid for name, p in stack.processes.items()}
    before = {name: rss_mib(pid) for name, pid in pids.items()}
    players = []
    for _ in range(count):
        twilio = Twilio(auth_token=TOKEN)
        call_sid = new_call_sid()
        twiml = await asyncio.to_thread(stream_welcome, stack.base_url, twilio, call_sid, 30.0)
        player = StreamPlayer(stack.base_url, twilio, call_sid)
        await player.open(twiml)
        players.append(player)
    # Measured once every greeting has been said: the streams then sit idle.
    await until(
        lambda: all(p.playback.received_ms and not p.playing for p in players),
        seconds=120,
        what="every greeting said",
    )
    after = {name: rss_mib(pid) for name, pid in pids.items()}
    for player in players:
        await player.hang_up()
    return {name: round((after[name] - before[name]) * 1024 / count, 1) for name in pids}


def histogram_quantiles(exposition: str, name: str) -> dict[str, float]:
    """p50 and p99 (ms, the upper bound of the bucket they fall in) of a histogram in a
    Prometheus exposition."""
    buckets = [
        (float(le), float(count))
        for le, count in re.findall(rf'^{name}_bucket\{{le="([^"]+)"\}} (\S+)$', exposition, re.M)
    ]
    total = buckets[-1][1] if buckets else 0.0
    found: dict[str, float] = {"count": total}
    for label, q in (("p50_ms_at_most", 0.5), ("p99_ms_at_most", 0.99)):
        found[label] = next((le * 1000 for le, count in buckets if count >= q * total), 0.0)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--idle", type=int, default=50, help="silent streams for memory")
    args = parser.parse_args()
    script = Script(rules=[Rule(".*", ANSWER)], tag_audio=True)
    with realtime_fake(FakeOpenAIRealtime(script)) as fake, tempfile.TemporaryDirectory() as logs:
        env = {
            "TWILIO_AUTH_TOKEN": TOKEN,
            "VOICE_MODE": "realtime",
            "AI_PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": f"{fake.url}/v1",
            "LOG_LEVEL": "WARNING",
            "RELAY_IDLE_SECONDS": "60",
            "MAX_CALLS_PER_NUMBER_PER_HOUR": "0",
        }
        stack = Stack(env=env, log_dir=Path(logs), cwd=Path(logs))
        with stack.running():
            clock = Clock(script)
            pids = {name: p.pid for name, p in stack.processes.items()}
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            started = time.monotonic()
            barge_ins = asyncio.run(load(stack, clock, args.streams, args.duration))
            elapsed = time.monotonic() - started
            cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            share = histogram_quantiles(stack.metrics("telephony"), "aura_realtime_relay_seconds")
            per_idle = asyncio.run(idle_memory(stack, args.idle))
    stream_seconds = args.streams * elapsed
    speech_started = script.speech_started_at
    clear_after = [
        min(c - s for c in clock.clears if c >= s)
        for s in speech_started
        if any(c >= s for c in clock.clears)
    ]
    result: dict[str, Any] = {
        "machine": machine(),
        "streams": args.streams,
        "seconds": round(elapsed, 1),
        # Measured from the fake's send to this process's receive: both of Aura's hops, and
        # this process's own event loop, busy playing every caller.
        "vendor_to_twilio": percentiles(clock.to_twilio),
        # Telephony's own part of that: from the llm stream to Twilio's socket.
        "telephony_share": share,
        "twilio_to_vendor": percentiles(clock.to_vendor()),
        "barge_ins": barge_ins,
        "clear_after_speech_started": percentiles(clear_after),
        "cpu_percent_of_a_core_per_stream": {
            name: round(seconds / stream_seconds * 100, 3) for name, seconds in cpu.items()
        },
        "cpu_percent_of_a_core_per_stream_total": round(
            sum(cpu.values()) / stream_seconds * 100, 3
        ),
        "kib_per_idle_stream": per_idle,
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
