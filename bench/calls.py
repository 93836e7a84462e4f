"""Calls through all three services, as Twilio drives them: how many turns per second one
machine carries, and how long callers wait.

Starts the stack locally (the local provider, or with --model openai-fake or gemini-fake a
fake of that vendor's API, which the official SDK talks to, with a fixed think time
standing in for a real model: 0 measures what the SDK path itself costs), warms up,
then plays calls with open-loop (Poisson) arrivals: each call a welcome, several turns
spaced by a think time, a goodbye and a status callback, all signed. Prints figures and
writes them to .bench/calls.json. It measures; it asserts nothing.

Usage: python -m bench.calls [--rates 50,100,200,300] [--duration 20] [--model local]
       [--model-delay-ms 300] [--pin auto|on|off] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from aura.memory.v1 import memory_service_pb2 as memory_pb
from aura.memory.v1 import memory_service_pb2_grpc as memory_grpc
from aura_dev.stack import Stack
from aura_phone.twilio import Twilio, new_call_sid
from bench import profiles
from bench.memory import machine
from tests.support.fake_vendors import FakeGemini, FakeOpenAI, Reply, serving_in_thread

OUT = Path(".bench/calls.json")
TOKEN = "bench-token"
QUESTIONS = [
    "What time do you open on Saturday?",
    "Is there somewhere to park?",
    "Can I order a birthday cake?",
    "Do you have gluten free bread?",
    "Do you deliver?",
]
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    turn_ends: list[float] = field(default_factory=list)  # monotonic time each turn completed
    window: tuple[float, float] = (0.0, 0.0)

    @property
    def turns(self) -> int:
        return len(self.turn_ends)

    def rate(self, start: float, end: float) -> float:
        """Turns per second completed between two instants (the steady part of a run)."""
        done = sum(1 for t in self.turn_ends if start <= t <= end)
        return round(done / max(end - start, 1e-9), 1)


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "count": len(ordered),
        "p50_ms": at(0.5),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


class Caller:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, run: Run) -> None:
        self.session = session
        self.base_url = base_url
        self.run = run
        self.twilio = Twilio(auth_token=TOKEN)

    async def post(self, path: str, params: dict[str, str]) -> str:
        headers = self.twilio.headers(self.base_url, path, params)
        route = path.split("?")[0]
        started = time.perf_counter()
        try:
            async with self.session.post(
                self.base_url + path, data=params, headers=headers
            ) as response:
                body = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            self.run.errors[type(error).__name__] += 1
            return ""
        self.run.latencies[route].append(time.perf_counter() - started)
        if status != 200:
            self.run.errors[f"http_{status}"] += 1
        elif "trouble answering" in body:
            self.run.errors["apology"] += 1
        elif "took too long" in body:
            self.run.errors["holding"] += 1
        return body

    async def call(self, turns: int, think: float) -> None:
        caller = f"+1555{random.randrange(10**7):07d}"  # apart from the per-number limit
        base = self.twilio.call_params(new_call_sid(), From=caller, Caller=caller)
        await self.post("/api/voice", {**base, "CallStatus": "ringing"})
        for question in [*random.sample(QUESTIONS, turns), "ok thanks, bye"]:
            await asyncio.sleep(think)
            await self.post(
                "/api/voice/process", {**base, "SpeechResult": question, "Confidence": "0.9"}
            )
            self.run.turn_ends.append(time.monotonic())
        await self.post(
            "/api/voice/status", {**base, "CallStatus": "completed", "CallDuration": "30"}
        )


async def load(
    base_url: str, turns_per_second: float, duration: float, turns: int, think: float
) -> Run:
    """Open-loop arrivals for `duration` seconds, then wait for the calls in flight. The
    steady window, over which turns/s is counted, runs from when the first calls reach
    their last turn to the end of arrivals."""
    run = Run()
    run.window = (time.monotonic() + (turns + 1) * think, time.monotonic() + duration)
    call_rate = turns_per_second / (turns + 1)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=15)
    ) as session:
        caller = Caller(session, base_url, run)
        calls: list[asyncio.Task[None]] = []
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            calls.append(asyncio.create_task(caller.call(turns, think)))
            await asyncio.sleep(random.expovariate(call_rate))
        await asyncio.gather(*calls)
    return run


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return round(int(match.group(1)) / 1024, 1) if match else 0.0


def provider_seconds(stack: Stack) -> tuple[float, float]:
    """Sum and count of the llm service's provider attempt durations so far."""
    text = stack.metrics("llm")
    total = sum(
        float(v) for v in re.findall(r"^aura_llm_attempt_seconds_sum\{.*\} (\S+)$", text, re.M)
    )
    count = sum(
        float(v) for v in re.findall(r"^aura_llm_attempt_seconds_count\{.*\} (\S+)$", text, re.M)
    )
    return total, count


def memory_per_call(stack: Stack, calls: int = 5000) -> float:
    """KiB of memory-service RSS per live call with a welcome and four turns."""
    pid = stack.processes["memory"].pid
    before = rss_mib(pid)
    with grpc.insecure_channel(stack.memory_address) as channel:
        stub = memory_grpc.MemoryServiceStub(channel)
        turn = memory_pb.Turn(
            role=memory_pb.ROLE_USER, text="What time do you open on Saturday, please?"
        )
        answer = memory_pb.Turn(
            role=memory_pb.ROLE_ASSISTANT,
            text=(
                "We are open Monday to Friday from 7 in the morning to 6 in the evening, "
                "Saturday from 8 to 4, and Sunday from 8 to 1."
            ),
        )
        for i in range(calls):
            stub.AppendTurns(
                memory_pb.AppendTurnsRequest(
                    call_id=f"CAmem{i:08d}", turns=[answer, turn, answer, turn, answer]
                ),
                timeout=5,
            )
    return round((rss_mib(pid) - before) * 1024 / calls, 2)


MODELS = ("local", "openai-fake", "gemini-fake")


@contextlib.contextmanager
def model(kind: str, delay: float) -> Iterator[dict[str, str]]:
    """The llm service's provider settings: the local provider, or a fake of a vendor's
    API (run in a thread of this process) that the official SDK talks to over HTTP."""
    if kind == "local":
        yield {}
        return
    fake = FakeOpenAI() if kind == "openai-fake" else FakeGemini()
    fake.default = Reply("We are open from seven until six today.", delay=delay)
    with serving_in_thread(fake) as url:
        if kind == "openai-fake":
            yield {
                "AI_PROVIDER": "openai",
                "OPENAI_API_KEY": "sk-bench",
                "OPENAI_BASE_URL": f"{url}/v1",
            }
        else:
            yield {"AI_PROVIDER": "gemini", "GEMINI_API_KEY": "g-bench", "GEMINI_BASE_URL": url}


def pin(service_pids: Iterable[int], mode: str) -> str:
    """Keep the load generator off the measured cores where the machine allows: it takes
    the last core and the services the others (every thread of each). `auto` does so with
    4 cores or more; with 2 the three services would lose half the machine, so the load
    shares the cores and the report says so."""
    cpus = sorted(os.sched_getaffinity(0))
    if mode == "off" or len(cpus) < 2 or (mode == "auto" and len(cpus) < 4):
        return f"the load generator shares the {len(cpus)} cores with the services"
    mine, theirs = {cpus[-1]}, set(cpus[:-1])
    for pid in service_pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            os.sched_setaffinity(int(task.name), theirs)
    for task in Path("/proc/self/task").iterdir():
        os.sched_setaffinity(int(task.name), mine)
    return f"services on cores {sorted(theirs)}, the load generator alone on core {cpus[-1]}"


def climb(
    base_url: str,
    args: argparse.Namespace,
    provider: Callable[[], tuple[float, float]],
    pids: Collection[int],
) -> tuple[list[dict[str, Any]], float | None]:
    """The figures at each rate of --rates, and the highest rate whose turns kept p99
    under --bound-ms with no errors. `provider` reads the provider's (sum, count) of
    attempt seconds, to tell what the model took from what Aura added; the CPU per turn is
    that of the `pids` together."""
    ladder: list[dict[str, Any]] = []
    for rate in [float(r) for r in args.rates.split(",") if r]:
        print(f"rate {rate:.0f} turns/s ...", flush=True)
        before, cpu_before = provider(), sum(map(cpu_seconds, pids))
        step = asyncio.run(load(base_url, rate, args.duration, args.turns, args.think))
        after, cpu_after = provider(), sum(map(cpu_seconds, pids))
        count = after[1] - before[1]
        figures = summarise(step, (after[0] - before[0]) / count if count else 0.0)
        figures["offered_turns_per_second"] = rate
        figures["cpu_ms_per_turn"] = round((cpu_after - cpu_before) / max(step.turns, 1) * 1e3, 2)
        ladder.append(figures)
    within = [
        step["turns_per_second"]
        for step in ladder
        if step["routes"].get("/api/voice/process", {}).get("p99_ms", 1e9) < args.bound_ms
        and not step["errors"]
    ]
    return ladder, max(within, default=None)


def load_options(parser: argparse.ArgumentParser) -> None:
    """The options the calls benchmark and its single-process baseline share."""
    parser.add_argument("--rates", default="50,100,200,300,400", help="turns/s to try, in order")
    parser.add_argument("--sustained", type=float, default=100.0, help="the fixed rate (turns/s)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of arrivals per rate")
    parser.add_argument(
        "--turns", type=int, default=3, help="questions per call, before the goodbye"
    )
    parser.add_argument("--think", type=float, default=1.0, help="seconds between a caller's turns")
    parser.add_argument(
        "--bound-ms", type=float, default=100.0, help="the p99 bound for the highest rate"
    )
    parser.add_argument(
        "--pin",
        choices=["auto", "on", "off"],
        default="auto",
        help="keep the load generator off the services' cores (auto: with 4 cores or more)",
    )


def summarise(run: Run, provider_mean: float) -> dict[str, Any]:
    routes = {route: percentiles(samples) for route, samples in sorted(run.latencies.items())}
    speech = routes.get("/api/voice/process", {})
    added = {
        k.replace("_ms", "_added_ms"): round(v - provider_mean * 1000, 2)
        for k, v in speech.items()
        if k.endswith("_ms")
    }
    return {
        "turns_per_second": run.rate(*run.window),
        "turns": run.turns,
        "routes": routes,
        "provider_mean_ms": round(provider_mean * 1000, 2),
        "added_by_aura": added,
        "errors": dict(run.errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    load_options(parser)
    parser.add_argument("--model", choices=MODELS, default="local")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample each service with py-spy during the sustained run (into .bench/)",
    )
    parser.add_argument(
        "--model-delay-ms",
        type=float,
        default=300.0,
        help="the fake model's think time (0: it answers at once, to measure the SDK paths)",
    )
    args = parser.parse_args()
    delay = args.model_delay_ms / 1000 if args.model != "local" else 0.0

    with tempfile.TemporaryDirectory() as tmp, model(args.model, delay) as model_env:
        workdir = Path(tmp)
        stack = Stack(
            env={
                "TWILIO_AUTH_TOKEN": TOKEN,
                "LOG_LEVEL": "WARNING",
                "LOG_FORMAT": "json",
                "MAX_CALLS_PER_NUMBER_PER_HOUR": "0",
                **model_env,
            },
            log_dir=workdir,
            cwd=workdir,
        )
        with stack.running():
            pids = {name: process.pid for name, process in stack.processes.items()}
            placement = pin(pids.values(), args.pin)
            asyncio.run(load(stack.base_url, 20, 5, args.turns, 0.2))  # warm-up
            print(
                f"sustained run at {args.sustained:.0f} turns/s for {args.duration:.0f} s ...",
                flush=True,
            )
            cpu_before = {n: cpu_seconds(p) for n, p in pids.items()}
            provider_before = provider_seconds(stack)
            calls_before = stack.grpc_calls()
            profiled: dict[str, Path] = {}
            with contextlib.ExitStack() as sampling:
                if args.profile:
                    profiled = sampling.enter_context(
                        profiles.sampling(pids, args.duration, OUT.parent)
                    )
                run = asyncio.run(
                    load(stack.base_url, args.sustained, args.duration, args.turns, args.think)
                )
            provider_after = provider_seconds(stack)
            attempts = provider_after[1] - provider_before[1]
            provider_mean = (provider_after[0] - provider_before[0]) / attempts if attempts else 0.0
            sustained = summarise(run, provider_mean)
            sustained["cpu_seconds_per_turn"] = {
                n: round((cpu_seconds(p) - cpu_before[n]) / max(run.turns, 1), 5)
                for n, p in pids.items()
            }
            sustained["rss_mib"] = {n: rss_mib(p) for n, p in pids.items()}
            made = stack.grpc_calls() - calls_before
            sustained["grpc_calls_per_turn"] = {
                "total": round(sum(made.values()) / max(run.turns, 1), 2),
                **{m: round(n / max(run.turns, 1), 2) for m, n in sorted(made.items())},
            }

            ladder, best = climb(
                stack.base_url, args, lambda: provider_seconds(stack), pids.values()
            )
            memory_kib = memory_per_call(stack)

    report: dict[str, Any] = {
        "benchmark": "calls through telephony, llm and memory, as Twilio drives them",
        "machine": f"{machine()}; {placement}",
        "model": args.model
        if args.model == "local"
        else f"{args.model}, answering in {args.model_delay_ms:.0f} ms",
        "call": f"welcome, {args.turns} questions {args.think:.1f} s apart, goodbye, status callback",
        "sustained": {"offered_turns_per_second": args.sustained, **sustained},
        "highest_rate_with_p99_under_bound": {
            "bound_ms": args.bound_ms,
            "turns_per_second": best,
        },
        "ladder": ladder,
        "memory_store_kib_per_active_call": memory_kib,
    }
    out = OUT if args.model == "local" else OUT.with_name(f"calls-{args.model}.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    s: dict[str, Any] = report["sustained"]
    print(
        f"\nsustained {s['turns_per_second']} turns/s (offered {args.sustained:.0f}); errors {s['errors'] or 'none'}"
    )
    for route, f in s["routes"].items():
        print(
            f"  {route:20} p50 {f['p50_ms']:7.1f}  p95 {f['p95_ms']:7.1f}  p99 {f['p99_ms']:7.1f}  max {f['max_ms']:7.1f} ms"
        )
    print(
        f"  added by Aura (speech turn minus provider {s['provider_mean_ms']} ms): p50 "
        f"{s['added_by_aura'].get('p50_added_ms')}  p99 {s['added_by_aura'].get('p99_added_ms')} ms"
    )
    print(f"  CPU s/turn: {s['cpu_seconds_per_turn']}   RSS MiB: {s['rss_mib']}")
    print(f"  gRPC calls per turn: {s['grpc_calls_per_turn']}")
    print(f"  memory store: {memory_kib} KiB per active call")
    for row in ladder:
        p99 = row["routes"].get("/api/voice/process", {}).get("p99_ms")
        print(
            f"  offered {row['offered_turns_per_second']:5.0f} -> {row['turns_per_second']:6.1f} turns/s, "
            f"p99 {p99} ms, CPU {row['cpu_ms_per_turn']} ms per turn, errors {row['errors'] or 'none'}"
        )
    if ladder:  # no rates to climb (--rates ""), no highest rate to tell
        print(f"  highest rate with p99 < {args.bound_ms:.0f} ms and no errors: {best} turns/s")
    for path in profiled.values():
        print(profiles.summary(path, top=15))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
