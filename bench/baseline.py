"""The yardstick for `bench.calls`: the same gather-mode turn done in one process, as a
single FastAPI backend would do it (the kind Aura replaces): the Twilio signature checked
with twilio's validator, the answer from the same local provider, the history in a dict,
TwiML from the twilio library. Driven by the same load generator at the same rate, it
prints its figures and, beside the latest `bench.calls` run (.bench/calls.json), the
ratios. It measures; it asserts nothing.

Usage: python -m bench.baseline [--sustained 100] [--rates 50,100,200,300,400] [--duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Gather, VoiceResponse

from aura_dev.stack import free_port
from aura_llm.config import SAMPLE_KNOWLEDGE_BASE
from aura_llm.providers import ChatTurn, Prompt
from aura_llm.providers.local import LocalProvider
from bench.calls import TOKEN, climb, cpu_seconds, load, load_options, pin, summarise
from bench.memory import machine
from tests.support import eventually

OUT = Path(".bench/baseline.json")
WELCOME = "Hello! I'm Aura, your AI assistant. How can I help you today?"

app = FastAPI()
_validator = RequestValidator(TOKEN)
_provider = LocalProvider.from_file(SAMPLE_KNOWLEDGE_BASE, "Aura")
_history: dict[str, list[ChatTurn]] = defaultdict(list)


async def _form(request: Request) -> dict[str, str] | None:
    """The form, when Twilio's signature over the URL and the form holds."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    url = f"http://{request.headers['host']}{request.url.path}"
    if not _validator.validate(url, form, request.headers.get("x-twilio-signature", "")):
        return None
    return form


def _ask(text: str) -> Response:
    response = VoiceResponse()
    gather = Gather(action="/api/voice/process", input="speech dtmf", speech_timeout="auto")
    gather.say(text)
    response.append(gather)
    return Response(str(response), media_type="application/xml")


@app.post("/api/voice")
async def incoming(request: Request) -> Response:
    form = await _form(request)
    if form is None:
        return Response(status_code=403)
    _history[form["CallSid"]] = [ChatTurn("assistant", WELCOME)]
    return _ask(WELCOME)


@app.post("/api/voice/process")
async def process(request: Request) -> Response:
    form = await _form(request)
    if form is None:
        return Response(status_code=403)
    history = _history[form["CallSid"]]
    said = form.get("SpeechResult", "")
    prompt = Prompt(form["CallSid"], "Aura", "", tuple(history[-20:]), said)
    answer = (await _provider.generate(prompt, 5.0)).text
    history += [ChatTurn("user", said), ChatTurn("assistant", answer)]
    return _ask(answer)


@app.post("/api/voice/status")
async def status(request: Request) -> Response:
    form = await _form(request)
    if form is None:
        return Response(status_code=403)
    _history.pop(form["CallSid"], None)
    return Response(str(VoiceResponse()), media_type="application/xml")


def _ratios(aura: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float | None]:
    """Aura's figures over the baseline's: CPU and latency from the two sustained runs, and
    the highest rate each kept p99 under the bound."""
    mine, theirs = baseline["sustained"], aura["sustained"]
    aura_cpu = sum(theirs["cpu_seconds_per_turn"].values())
    ratios: dict[str, float | None] = {
        "cpu_per_turn": round(aura_cpu / mine["cpu_seconds_per_turn"], 2)
    }
    for key in ("p50_ms", "p99_ms"):
        base = mine["routes"]["/api/voice/process"][key]
        ratios[f"turn_{key}"] = round(theirs["routes"]["/api/voice/process"][key] / base, 2)
    best = (
        aura["highest_rate_with_p99_under_bound"]["turns_per_second"],
        baseline["highest_rate_with_p99_under_bound"]["turns_per_second"],
    )
    ratios["highest_rate"] = round(best[0] / best[1], 2) if best[0] and best[1] else None
    # Both cost less per turn as the rate rises (one wakeup serves more requests), so the
    # CPU ratio is also given at each rate the two climbs shared.
    at_rate = {row["offered_turns_per_second"]: row for row in aura["ladder"]}
    for row in baseline["ladder"]:
        theirs_at = at_rate.get(row["offered_turns_per_second"], {})
        if theirs_at.get("cpu_ms_per_turn") and row["cpu_ms_per_turn"]:
            rate = f"{row['offered_turns_per_second']:.0f}"
            ratios[f"cpu_per_turn_at_{rate}"] = round(
                theirs_at["cpu_ms_per_turn"] / row["cpu_ms_per_turn"], 2
            )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    load_options(parser)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.baseline:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _up(base_url), timeout=30, what="the baseline app")
        placement = pin([server.pid], args.pin)
        asyncio.run(load(base_url, 20, 5, args.turns, 0.2))  # warm-up
        print(f"baseline: sustained run at {args.sustained:.0f} turns/s ...", flush=True)
        before = cpu_seconds(server.pid)
        run = asyncio.run(load(base_url, args.sustained, args.duration, args.turns, args.think))
        figures = summarise(run, 0.0)
        figures["cpu_seconds_per_turn"] = round(
            (cpu_seconds(server.pid) - before) / max(run.turns, 1), 5
        )
        ladder, best = climb(base_url, args, lambda: (0.0, 0.0), [server.pid])
    finally:
        server.terminate()
        server.wait(timeout=10)
    report: dict[str, Any] = {
        "benchmark": "the same turn in one FastAPI process (signature, local provider, dict)",
        "machine": f"{machine()}; {placement}",
        "sustained": {"offered_turns_per_second": args.sustained, **figures},
        "highest_rate_with_p99_under_bound": {"bound_ms": args.bound_ms, "turns_per_second": best},
        "ladder": ladder,
    }
    aura_file = Path(".bench/calls.json")
    if aura_file.exists():
        report["aura_over_baseline"] = _ratios(json.loads(aura_file.read_text()), report)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    process = figures["routes"].get("/api/voice/process", {})
    print(
        f"baseline at {figures['turns_per_second']} turns/s: turn p50 {process.get('p50_ms')} ms, "
        f"p99 {process.get('p99_ms')} ms; CPU {figures['cpu_seconds_per_turn'] * 1000:.2f} ms "
        f"per turn (one process); highest rate with p99 < {args.bound_ms:.0f} ms: {best} turns/s"
    )
    if "aura_over_baseline" in report:
        print(f"Aura over the baseline: {report['aura_over_baseline']}")
    print(f"written to {OUT}")


def _up(base_url: str) -> bool:
    try:
        return httpx.post(f"{base_url}/api/voice/status", timeout=1).status_code in (403, 422)
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"({time.monotonic() - started:.0f} s)")
