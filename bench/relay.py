"""Relay mode (ConversationRelay) under load: what Aura adds between a caller's final
words and the first sentence they hear (beyond the model's own time to write it), how soon an interruption stops the vendor's
stream, and what an idle live session costs telephony.

Starts the stack on loopback with an OpenAI-compatible fake that streams like a real
model (its time to first token and tokens per second are set below), opens `--sessions`
signed WebSockets that each speak every few seconds, then interrupts a sample of answers,
then holds `--idle` silent sessions open. Prints figures and writes .bench/relay.json. It
measures; it asserts nothing.

Usage: python -m bench.relay [--sessions 200] [--duration 20] [--ttft 0.3] [--idle 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from aura_dev.stack import Stack
from aura_phone.relay import welcome
from aura_phone.twilio import Twilio, new_call_sid
from bench.calls import cpu_seconds, percentiles, rss_mib
from bench.memory import machine
from tests.support.fake_vendors import FakeOpenAI, Reply, serving_in_thread

OUT = Path(".bench/relay.json")
TOKEN = "bench-token"
ANSWER = (
    "We open at seven on weekdays and at eight on Saturdays. ",
    "Sunday mornings we open at eight and close at one. ",
    "Holidays follow the Sunday hours. ",
)


def streaming_model(ttft: float, tokens_per_second: float) -> Reply:
    """A model that thinks `ttft` seconds, then streams words at `tokens_per_second`."""
    words = [w + " " for sentence in ANSWER for w in sentence.split()]
    return Reply("".join(words), chunks=tuple(words), delay=ttft, chunk_delay=1 / tokens_per_second)


class Session:
    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket

    async def first_token(self, said: str) -> tuple[float, int]:
        """Seconds from the final prompt to the first answer token (fillers skipped), and
        how many pieces of the answer were streamed to the caller."""
        await self.socket.send(json.dumps({"type": "prompt", "voicePrompt": said, "last": True}))
        asked = time.perf_counter()
        first = 0.0
        pieces = 0
        while True:
            message = json.loads(await self.socket.recv())
            if message.get("type") != "text":
                continue
            token = message.get("token", "")
            if token.strip() and token.strip() != "One moment.":
                pieces += 1
                if not first:
                    first = time.perf_counter() - asked
            if message.get("last"):
                return first, pieces

    async def interrupt_after_first(self, said: str) -> float:
        """Send a prompt, interrupt at its first sentence; when the interrupt left."""
        await self.socket.send(json.dumps({"type": "prompt", "voicePrompt": said, "last": True}))
        while True:
            message = json.loads(await self.socket.recv())
            if message.get("type") == "text" and message.get("token", "").strip() not in (
                "",
                "One moment.",
            ):
                break
        sent = time.monotonic()
        heard = message["token"]
        await self.socket.send(json.dumps({"type": "interrupt", "utteranceUntilInterrupt": heard}))
        return sent


async def open_session(stack: Stack, twilio: Twilio) -> Session:
    """A call welcomed as Twilio does, then its relay session on the URL issued for it."""
    call_sid = new_call_sid()
    # Each its own caller, as the per-number limit would refuse one calling this often.
    caller = Twilio(auth_token=twilio.auth_token, caller=f"+1555{random.randrange(10**7):07d}")
    url = await asyncio.to_thread(welcome, stack.base_url, caller, call_sid, 30.0)
    socket = await connect(url, additional_headers=twilio.signature(url, {}), open_timeout=30)
    await socket.send(json.dumps({"type": "setup", "callSid": call_sid}))
    return Session(socket)


async def talk(
    stack: Stack, sessions: int, duration: float, every: float
) -> tuple[list[float], int]:
    """Each prompt's time to first token, and the answer pieces streamed in all."""
    twilio = Twilio(auth_token=TOKEN)
    opened = await asyncio.gather(*(open_session(stack, twilio) for _ in range(sessions)))
    samples: list[float] = []
    pieces = 0
    deadline = time.monotonic() + duration

    async def caller(session: Session) -> None:
        nonlocal pieces
        await asyncio.sleep(random.uniform(0, every))
        while time.monotonic() < deadline:
            first, streamed = await session.first_token("When do you open?")
            samples.append(first)
            pieces += streamed
            await asyncio.sleep(random.expovariate(1 / every))

    await asyncio.gather(*(caller(s) for s in opened))
    await asyncio.gather(*(s.socket.close() for s in opened))
    return samples, pieces


async def interrupts(stack: Stack, fake: FakeOpenAI, count: int) -> list[float]:
    twilio = Twilio(auth_token=TOKEN)
    gaps = []
    for _ in range(count):
        session = await open_session(stack, twilio)
        noticed = len(fake.abandoned_at)
        sent = await session.interrupt_after_first("Tell me about your hours")
        # The fake runs on another thread's event loop: poll what it records.
        while len(fake.abandoned_at) == noticed:  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        gaps.append(fake.abandoned_at[-1] - sent)
        await session.socket.close()
    return gaps


async def idle(stack: Stack, count: int) -> float:
    """KiB of telephony RSS per live, silent session."""
    twilio = Twilio(auth_token=TOKEN)
    pid = stack.processes["telephony"].pid
    before = rss_mib(pid)
    opened: list[Session] = []
    for start in range(0, count, 100):
        batch = min(100, count - start)
        opened += await asyncio.gather(*(open_session(stack, twilio) for _ in range(batch)))
    await asyncio.sleep(1)  # let the sessions settle before reading memory
    per_session = (rss_mib(pid) - before) * 1024 / count
    await asyncio.gather(*(s.socket.close() for s in opened))
    return round(per_session, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sessions", type=int, default=200, help="live sessions talking")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of talking")
    parser.add_argument("--every", type=float, default=4.0, help="mean seconds between prompts")
    parser.add_argument("--ttft", type=float, default=0.3, help="the model's time to first token")
    parser.add_argument("--tps", type=float, default=40.0, help="the model's tokens per second")
    parser.add_argument("--interrupts", type=int, default=50, help="answers to interrupt")
    parser.add_argument("--idle", type=int, default=2000, help="silent sessions to hold open")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of sockets

    fake = FakeOpenAI()
    fake.default = streaming_model(args.ttft, args.tps)
    workdir = Path(tempfile.mkdtemp(prefix="aura-bench-relay-"))
    with serving_in_thread(fake) as url:
        stack = Stack(
            env={
                "TWILIO_AUTH_TOKEN": TOKEN,
                "VOICE_MODE": "relay",
                "AI_PROVIDER": "openai",
                "OPENAI_API_KEY": "sk-bench",
                "OPENAI_BASE_URL": f"{url}/v1",
                "LOG_LEVEL": "WARNING",
                "RELAY_IDLE_SECONDS": "3600",
                "RELAY_MAX_SESSIONS": str(args.idle + args.sessions + 100),
            },
            log_dir=workdir,
            cwd=workdir,
        )
        with stack.running():
            pids = {name: process.pid for name, process in stack.processes.items()}
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            print(f"{args.sessions} live sessions, a prompt every ~{args.every:.0f} s each ...")
            firsts, pieces = asyncio.run(talk(stack, args.sessions, args.duration, args.every))
            cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            print(f"{args.interrupts} interrupted answers ...")
            gaps = asyncio.run(interrupts(stack, fake, args.interrupts))
            print(f"{args.idle} idle sessions ...")
            per_idle = asyncio.run(idle(stack, args.idle))
    # The model alone needs its time to first token, then the rest of the first sentence's
    # words, before a first sentence exists: what is left is what Aura adds.
    first_sentence = args.ttft + (len(ANSWER[0].split()) - 1) / args.tps
    added = [max(0.0, f - first_sentence) for f in firsts]
    report: dict[str, Any] = {
        "machine": machine(),
        "model": {
            "ttft_s": args.ttft,
            "tokens_per_second": args.tps,
            "first_sentence_ms": round(first_sentence * 1000, 1),
        },
        "sessions": args.sessions,
        "prompts": len(firsts),
        "first_token_ms": percentiles(firsts),
        "added_first_token_ms": percentiles(added),
        "interrupt_to_vendor_stream_closed_ms": percentiles(gaps),
        "cpu_ms_per_prompt": {
            name: round(seconds * 1000 / max(len(firsts), 1), 2) for name, seconds in cpu.items()
        },
        # A piece is what telephony sends as one `text` message: a sentence, as the
        # answer's sentences are complete.
        "pieces_streamed": pieces,
        "cpu_ms_per_streamed_sentence": round(sum(cpu.values()) * 1000 / max(pieces, 1), 2),
        "idle_sessions": args.idle,
        "telephony_kib_per_idle_session": per_idle,
    }
    print(json.dumps(report, indent=2))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
