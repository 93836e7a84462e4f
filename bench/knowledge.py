"""What the knowledge costs: retrieval time on a generated 10,000-passage directory, the
llm's CPU per turn with the knowledge off, whole (the sample) and retrieved (the
directory), and the knowledge characters each request carries.

In-process, on one core (one thread: retrieval is single-threaded numpy and rapidfuzz),
through the Assistant as the llm service runs it, with a provider that answers at once
(its answer states a time, so the guard reads it too). It measures; it asserts nothing.

Usage: python -m bench.knowledge [--passages 10000] [--turns 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from aura_llm.assistant import Assistant
from aura_llm.config import SAMPLE_KNOWLEDGE_BASE, SAMPLE_TOOLS
from aura_llm.failover import FailoverRouter
from aura_llm.knowledge.library import LiveKnowledge
from aura_llm.providers import Completion, Prompt, Provider
from aura_llm.tools import ToolsConfig, build_toolbox
from bench.memory import machine, percentile
from tests.support.knowledge import BURIED_QUESTION, write_policy_directory

OUT = Path(".bench/knowledge.json")
SECTIONS = 5  # per generated document
QUESTIONS = [
    "what time do you open on saturday",
    "how do you handle refunds and exchanges",
    "do you sell pizza",
    "when are the ovens cleaned",
    "and on sunday?",
    "is there a fire safety checklist",
    BURIED_QUESTION,
    "can I pay with a gift card",
]


class Instant(Provider):
    """Answers at once, with a time in it, and records the system prompt's size."""

    name = "instant"
    model = "instant-1"
    min_attempt_seconds = 0.01

    def __init__(self) -> None:
        self.system_chars: list[int] = []

    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        self.system_chars.append(len(prompt.system_prompt))
        return Completion("We open at 8 on Saturday and close at 4.")


def retrieval_times(library: LiveKnowledge, count: int) -> list[float]:
    rng = random.Random(3)
    times = []
    for _ in range(count):
        question = rng.choice(QUESTIONS)
        started = time.perf_counter()
        library.index.for_turn(question, previous="when are you open")
        times.append(time.perf_counter() - started)
    return times


async def cpu_per_turn(library: LiveKnowledge | None, turns: int) -> dict[str, float]:
    provider = Instant()
    router = FailoverRouter([provider], attempt_timeout=5, max_retries=0)
    toolbox = build_toolbox(ToolsConfig.load(SAMPLE_TOOLS), "", httpx.AsyncClient())
    assistant = Assistant(router, toolbox, 3, library, "flag")
    base = "You are Aura, a friendly voice assistant answering the phone."
    rng = random.Random(5)
    started = time.process_time()
    for n in range(turns):
        prompt = Prompt(f"CA{n}", "Aura", base, (), rng.choice(QUESTIONS))
        await assistant.answer(prompt, time.monotonic() + 5)
    cpu = (time.process_time() - started) / turns
    await toolbox.close()
    chars = provider.system_chars
    return {
        "cpu_ms_per_turn": round(cpu * 1000, 3),
        "system_prompt_chars_mean": round(sum(chars) / len(chars)),
        "system_prompt_chars_max": max(chars),
    }


def main() -> None:
    # Every answer of the benchmark's provider is flagged by design; one line each is noise.
    logging.getLogger("aura_llm.guard").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passages", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_policy_directory(Path(tmp), documents=args.passages // SECTIONS)
        started = time.perf_counter()
        directory = LiveKnowledge(root)
        load_seconds = time.perf_counter() - started
        sample = LiveKnowledge(SAMPLE_KNOWLEDGE_BASE)
        retrieval_times(directory, 200)  # warm up
        times = retrieval_times(directory, args.turns)
        runs: dict[str, Any] = {}
        for label, library in (("off", None), ("sample_whole", sample), ("directory", directory)):
            asyncio.run(cpu_per_turn(library, 200))  # warm up
            runs[label] = asyncio.run(cpu_per_turn(library, args.turns))
        # The knowledge's share of each request: the system prompt beyond the one without.
        for figures in runs.values():
            extra = figures["system_prompt_chars_mean"] - runs["off"]["system_prompt_chars_mean"]
            figures["knowledge_chars_mean"] = extra
    retrieval = {
        "p50": round(percentile(times, 0.5) * 1000, 3),
        "p99": round(percentile(times, 0.99) * 1000, 3),
        "max": round(max(times) * 1000, 3),
    }
    report = {
        "benchmark": "knowledge: retrieval and the llm's CPU per turn, in-process",
        "machine": machine(),
        "passages": len(directory.knowledge.passages),
        "characters": directory.knowledge.chars,
        "load_seconds": round(load_seconds, 2),
        "retrieval_ms": retrieval,
        "per_turn": runs,
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    r = retrieval
    print(
        f"knowledge: {len(directory.knowledge.passages):,} passages "
        f"({directory.knowledge.chars:,} characters), "
        f"loaded in {load_seconds:.1f} s"
    )
    print(
        f"  retrieval per turn   p50 {r['p50']:.2f} ms   p99 {r['p99']:.2f} ms   "
        f"max {r['max']:.2f} ms"
    )
    off = runs["off"]["cpu_ms_per_turn"]
    for label, figures in runs.items():
        print(
            f"  llm CPU per turn, knowledge {label:12} {figures['cpu_ms_per_turn']:.3f} ms "
            f"({figures['cpu_ms_per_turn'] / off:.2f}x off)   "
            f"knowledge chars per request {figures['knowledge_chars_mean']:,}"
        )
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
