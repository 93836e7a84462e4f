"""Plays aura-eval's scenarios against a deployment, as many times as asked and as many at
once, and checks each call: what was heard at each step and in the whole call, the
outcome, the tools the model called (read back through the transcript API), grounding,
turn latency, and criteria a judge model scores (through the deployment's own llm
service). A check that cannot be made (no admin token, no judge model, no key for a
model-played caller) is skipped, never passed."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from aura_phone.media import StreamError, StreamPlayer, stream_welcome
from aura_phone.scenarios import Check, Persona, Scenario
from aura_phone.script import Step, since
from aura_phone.simulator import Call, CallError, Input, Turn
from aura_phone.twilio import new_call_sid, new_caller_number

Status = Literal["pass", "fail", "skipped"]
# Where a caller played by a model comes from: an OpenAI-compatible chat API.
CALLER_MODEL = "gpt-4o-mini"
END_OF_CALL = "[HANG UP]"
JUDGE_SECONDS = 90.0


@dataclass(frozen=True)
class Target:
    """The deployment under evaluation, and how to reach it as Twilio and as its admin."""

    base_url: str
    auth_token: str = ""
    public_url: str = ""
    account_sid: str = "AC" + "0" * 32
    admin_token: str = ""
    timeout: float = 15.0
    # Twilio Media Streams (VOICE_MODE=realtime): the caller speaks audio; what the
    # assistant said is read back from the transcript API.
    realtime: bool = False


@dataclass
class CheckResult:
    name: str
    status: Status
    reason: str = ""
    # Where in the run's transcript it went wrong (an index into Run.transcript).
    at: int | None = None
    # A step's check: the request (an index into the call's turns) that answered it.
    turn: int | None = None


@dataclass
class Run:
    scenario: str
    index: int
    call_sid: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    # What happened, in order: (who, text); who is caller, aura or call.
    transcript: list[tuple[str, str]] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    dialed: str = ""  # the number the call was put through to
    hung_up: bool = False  # the deployment ended the call
    error: str = ""  # the call could not be played to its end
    skipped: str = ""  # the scenario cannot run here (a model-played caller without a key)

    @property
    def passed(self) -> bool:
        return not self.error and all(c.status != "fail" for c in self.checks)


def run_suite(
    target: Target,
    scenarios: list[Scenario],
    repeat: int = 1,
    concurrency: int = 1,
    on_run: Callable[[Run], None] = lambda run: None,
) -> list[Run]:
    """Every scenario `repeat` times, `concurrency` calls at once; runs in suite order."""
    jobs = [(s, i) for s in scenarios for i in range(repeat)]

    def play(job: tuple[Scenario, int]) -> Run:
        run = run_scenario(target, *job)
        on_run(run)
        return run

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(play, jobs))


def run_scenario(target: Target, scenario: Scenario, index: int = 0) -> Run:
    run = Run(scenario.name, index)
    caller: Callable[[Turn], Input] | None = None
    if scenario.persona is not None:
        caller, run.skipped = _persona(scenario.persona)
        if caller is None:
            return run
    with httpx.Client(timeout=target.timeout) as client:
        if target.realtime:
            if caller is not None:
                run.skipped = "a model-played caller is not played over realtime streams"
                return run
            asyncio.run(_play_stream(client, target, scenario, run))
        else:
            _play_twiml(client, target, scenario, run, caller)
        record = _record(client, target, run.call_sid) if not run.error else None
        for check in scenario.checks:
            run.checks.append(_checked(check, run, record, target))
        if scenario.judge:
            run.checks += _judged(client, target, run.call_sid, scenario.judge, run.error)
    _place(run)
    return run


def caller_number(scenario: Scenario) -> str:
    """The scenario's `from`, else a number of its own for each call: a suite repeated
    many times must not meet the deployment's per-number limit."""
    return scenario.caller_number or new_caller_number()


def _call(client: httpx.Client, target: Target, scenario: Scenario, call_sid: str = "") -> Call:
    return Call(
        target.base_url,
        target.auth_token,
        target.public_url,
        account_sid=target.account_sid,
        client=client,
        language=scenario.language or "",
        caller=caller_number(scenario),
        callee=scenario.callee_number or Call.callee,
        call_sid=call_sid or new_call_sid(),
    )


def _play_twiml(
    client: httpx.Client,
    target: Target,
    scenario: Scenario,
    run: Run,
    caller: Callable[[Turn], Input] | None,
) -> None:
    """A call in gather or relay mode, followed as Twilio follows TwiML."""
    call = _call(client, target, scenario)
    run.call_sid = call.call_sid
    answers: dict[int, Input] = {}
    try:
        if caller is not None:
            _play_persona(call, caller, answers)
        else:
            run.checks += _play_steps(call, scenario.steps, answers)
    except CallError as error:
        run.error = str(error)
        call.ended = True
    run.transcript, ends = _transcript(call, answers)
    for result in run.checks:
        if result.turn is not None and result.turn < len(ends):
            result.at = ends[result.turn]
    run.latencies_ms = [t.seconds * 1000 for t in call.turns]
    run.dialed = call.dialed
    run.hung_up = bool(call.turns) and call.turns[-1].hung_up


# --- playing the call ---------------------------------------------------------------


def _play_steps(call: Call, steps: list[Step], answers: dict[int, Input]) -> list[CheckResult]:
    """The scripted caller; each step's expectations become checks (the call goes on
    after a miss, so every later check is still made)."""
    if steps[0].action is not None:
        steps = [Step(None), *steps]
    results: list[CheckResult] = []
    position = 0
    answered: Turn | None = None

    def expect(index: int, turn: Turn) -> None:
        place = next((i for i, t in enumerate(call.turns) if t is turn), len(call.turns) - 1)
        for name, problem in steps[index].expectations(index, turn):
            status: Status = "fail" if problem else "pass"
            results.append(CheckResult(name, status, problem, turn=place))

    def answer(turn: Turn) -> Input:
        nonlocal position, answered
        answered = turn
        expect(position, turn)
        if steps[position].ends_call:
            name = f"step {position} ends the call"
            results.append(CheckResult(name, "fail", "the call went on"))
            return Input("hangup")
        position += 1
        action = steps[position].action if position < len(steps) else None
        if action is None:
            return Input("hangup")  # every step played (a step without an action ends it)
        answers[id(turn)] = action
        return action

    call.start(answer)
    if position < len(steps):
        # The deployment ended the call at step `position`: check it against what was
        # said last (a warm transfer puts the caller through in a later request).
        expect(position, since(call.turns, answered))
        for later in range(position + 1, len(steps)):
            name = f"step {later} is played"
            results.append(CheckResult(name, "fail", f"the call ended at step {position}"))
    return results


# A realtime answer: it must begin within this long of the caller's words, and it is over
# once no audio has come for QUIET_SECONDS and what came has been played.
ANSWER_SECONDS = 30.0
QUIET_SECONDS = 1.0
# How long the assistant's words of an answer heard may take to reach the transcript.
STORED_SECONDS = 5.0


async def _play_stream(client: httpx.Client, target: Target, scenario: Scenario, run: Run) -> None:
    """A call in realtime mode: the caller's words spoken as audio over Twilio Media
    Streams (espeak-ng when installed, else a tone: a real speech-to-speech model needs
    the former), the assistant's answers heard as audio and read back, as words, from the
    transcript API; when the stream ends, its <Connect action> is followed as Twilio does."""
    call = _call(client, target, scenario)
    run.call_sid = call.call_sid
    twilio = call.twilio
    steps = scenario.steps
    if steps[0].action is not None:
        steps = [Step(None), *steps]
    player = StreamPlayer(target.base_url, twilio, call.call_sid)
    try:
        welcome = await asyncio.to_thread(
            stream_welcome, target.base_url, twilio, call.call_sid, target.timeout
        )
        await player.open(welcome)
    except (StreamError, httpx.HTTPError, OSError) as error:
        run.error = f"the stream did not open: {error}"
        return
    read = 0  # the assistant's turns already read back
    position = 0
    try:
        for position, step in enumerate(steps):
            action = step.action if position else None
            if action is not None:
                run.transcript.append(("caller", _spoken(action)))
                if action.kind == "speech":
                    await player.say(action.value)
                elif action.kind == "digits":
                    for digit in action.value:
                        await player.press(digit)
            spoke = time.perf_counter()
            latency = await _answer(player, spoke)
            if latency is not None:
                run.latencies_ms.append(latency)
            words, read = await _words(client, target, call.call_sid, read)
            turn = Turn("/api/voice/stream", words or [], (latency or 0) / 1000)
            run.transcript += [("aura", text) for text in words or []]
            if player.closed.is_set():
                after = await asyncio.to_thread(_after_stream, call, run)
                run.transcript += [("aura", text) for text in after]
                turn = Turn(turn.path, turn.heard + after, turn.seconds, dialed=run.dialed)
            for name, problem in step.expectations(position, turn):
                if words is None and " hears " in name:
                    reason = "a realtime call's words need ADMIN_API_TOKEN"
                    run.checks.append(CheckResult(name, "skipped", reason))
                    continue
                status: Status = "fail" if problem else "pass"
                at = len(run.transcript) - 1 if problem else None
                run.checks.append(CheckResult(name, status, problem, at))
            if player.closed.is_set():
                break
        for later in range(position + 1, len(steps)):
            reason = f"the call ended at step {position}"
            run.checks.append(CheckResult(f"step {later} is played", "fail", reason))
    finally:
        if not player.closed.is_set():
            await player.hang_up()
            await asyncio.to_thread(call.hang_up)  # the status callback, as Twilio sends it
        else:
            await player.close()


def _after_stream(call: Call, run: Run) -> list[str]:
    """The stream ended: Twilio posts its <Connect action>, and follows what comes back
    (a transfer's dial, a goodbye, a fallback to turns). What the caller heard there."""
    try:
        call.follow("/api/voice/stream/ended", lambda turn: Input("hangup"))
    except CallError as error:
        run.error = str(error)
        call.hang_up()
    run.dialed = call.dialed
    run.hung_up = bool(call.turns) and call.turns[-1].hung_up
    return [text for turn in call.turns for text in turn.heard if text]


async def _answer(player: StreamPlayer, since: float) -> float | None:
    """Wait for the answer to `since` to be played to its end (or the stream to close);
    ms from `since` to its first audio, or None when none came."""
    deadline = since + ANSWER_SECONDS
    began: float | None = None
    while time.perf_counter() < deadline and not player.closed.is_set():
        began = next((t for t in player.playback.audio_since if t >= since), began)
        if began is not None and not player.playing and player.quiet_seconds > QUIET_SECONDS:
            break
        await asyncio.sleep(0.05)
    return (began - since) * 1000 if began is not None else None


async def _words(
    client: httpx.Client, target: Target, call_sid: str, read: int
) -> tuple[list[str] | None, int]:
    """The assistant's turns stored after the first `read` (None without the admin
    token), and how many there are now. An answer is stored once heard: it may lag."""
    if not target.admin_token:
        return None, read
    deadline = time.perf_counter() + STORED_SECONDS
    while True:
        record = await asyncio.to_thread(_record, client, target, call_sid)
        said = [t["text"] for t in (record or {}).get("turns", []) if t.get("role") == "assistant"]
        if len(said) > read or time.perf_counter() > deadline:
            return said[read:], len(said)
        await asyncio.sleep(0.2)


_CALLER_PROMPT = (
    "You are playing a caller phoning a business, to test its automated phone assistant. "
    "Stay in character: {persona} Your goal: {goal} Say one short, natural thing a caller "
    "would say next, nothing else. When your goal is reached, or the call is clearly over, "
    "say only " + END_OF_CALL + "."
)


def _persona(persona: Persona) -> tuple[Callable[[Turn], Input] | None, str]:
    """A caller a model plays, or why it cannot be played here."""
    key = os.environ.get("OPENAI_API_KEY", "")
    if not key:
        return None, "a model plays this caller: set OPENAI_API_KEY (any OpenAI-compatible API)"
    try:
        from openai import OpenAI  # optional: aura-phone[persona]
    except ImportError:
        return None, "a model plays this caller: install the openai package"
    client = OpenAI(api_key=key, base_url=os.environ.get("OPENAI_BASE_URL") or None)
    model = os.environ.get("AURA_EVAL_CALLER_MODEL", CALLER_MODEL)
    system = _CALLER_PROMPT.format(persona=persona.persona, goal=persona.goal)
    messages: list[Any] = [{"role": "system", "content": system}]
    turns = 0

    def answer(turn: Turn) -> Input:
        nonlocal turns
        messages.append({"role": "user", "content": " ".join(turn.heard) or "(silence)"})
        if turns >= persona.max_turns:
            return Input("hangup")
        turns += 1
        reply = client.chat.completions.create(model=model, messages=messages, max_tokens=120)
        said = (reply.choices[0].message.content or "").strip()
        messages.append({"role": "assistant", "content": said})
        if not said or END_OF_CALL in said:
            return Input("hangup")
        return Input("speech", said)

    return answer, ""


def _play_persona(call: Call, caller: Callable[[Turn], Input], answers: dict[int, Input]) -> None:
    def answer(turn: Turn) -> Input:
        action = caller(turn)
        answers[id(turn)] = action
        return action

    call.start(answer)


def _transcript(call: Call, answers: dict[int, Input]) -> tuple[list[tuple[str, str]], list[int]]:
    """The call as lines, and for each request the index of its last line heard."""
    lines: list[tuple[str, str]] = []
    ends = []
    for turn in call.turns:
        lines += [("aura", text) for text in turn.heard if text]
        if turn.dialed:
            lines.append(("call", f"put through to {turn.dialed}"))
        if turn.hung_up:
            lines.append(("call", "the deployment hung up"))
        ends.append(max(0, len(lines) - 1))
        action = answers.get(id(turn))
        if action is not None:
            lines.append(("caller", _spoken(action)))
    return lines, ends


def _spoken(action: Input) -> str:
    if action.kind == "speech":
        return action.value
    if action.kind == "digits":
        return f"(presses {action.value})"
    return "(says nothing)" if action.kind == "silence" else f"({action.kind})"


# --- checks on the whole call -------------------------------------------------------


def _record(client: httpx.Client, target: Target, call_sid: str) -> dict[str, Any] | None:
    """The call as the deployment kept it (the transcript API), or None without access."""
    if not target.admin_token:
        return None
    try:
        response = client.get(
            f"{target.base_url.rstrip('/')}/api/calls/{call_sid}/transcript",
            headers={"Authorization": f"Bearer {target.admin_token}"},
        )
    except httpx.HTTPError:
        return None
    found: dict[str, Any] | None = response.json() if response.status_code == 200 else None
    return found


def _heard(run: Run) -> list[tuple[int, str]]:
    return [(i, text) for i, (who, text) in enumerate(run.transcript) if who == "aura"]


def _checked(check: Check, run: Run, record: dict[str, Any] | None, target: Target) -> CheckResult:
    name = check.name
    if run.error:
        return CheckResult(name, "fail", f"the call did not finish: {run.error}")
    if check.needs_transcript and record is None:
        why = "set ADMIN_API_TOKEN" if not target.admin_token else "the transcript API answered no"
        return CheckResult(name, "skipped", f"needs the call's transcript: {why}")
    heard = _heard(run)
    kind = check.kind
    if kind in ("heard", "heard_regex", "never_heard", "never_heard_regex"):
        pattern = str(getattr(check, kind))
        regex = re.compile(pattern if kind.endswith("regex") else re.escape(pattern), re.I)
        found = next(((i, text) for i, text in heard if regex.search(text)), None)
        if kind.startswith("never"):
            if found is None:
                return CheckResult(name, "pass")
            return CheckResult(name, "fail", f"heard {found[1]!r}", found[0])
        if found is not None:
            return CheckResult(name, "pass")
        return CheckResult(name, "fail", "never heard it", len(run.transcript) - 1)
    if kind == "max_turn_ms":
        slowest = max(run.latencies_ms, default=0.0)
        limit = float(check.max_turn_ms or 0)
        return _verdict(name, slowest <= limit, f"the slowest turn took {slowest:.0f} ms")
    if kind == "ended":
        ended = run.hung_up
        return _verdict(
            name, ended == check.ended, "the deployment hung up" if ended else "the caller hung up"
        )
    if kind == "transferred":
        return _transferred(check, run, record, name)
    assert record is not None
    if kind == "outcome":
        outcome = record.get("outcome", "")
        return _verdict(name, outcome == check.outcome, f"the outcome was {outcome!r}")
    if kind == "message":
        return _message(check, record, name)
    if kind in ("tool", "no_tool"):
        return _tool(check, record, name)
    ungrounded = [t["text"] for t in record.get("turns", []) if t.get("ungrounded")]
    grounded = not ungrounded
    return _verdict(
        name,
        grounded == check.grounded,
        f"ungrounded: {ungrounded[0]!r}" if ungrounded else "every answer grounded",
    )


def _verdict(name: str, held: bool, reason: str) -> CheckResult:
    return CheckResult(name, "pass" if held else "fail", "" if held else reason)


def _transferred(check: Check, run: Run, record: dict[str, Any] | None, name: str) -> CheckResult:
    dialed = run.dialed
    wanted = check.transferred
    said = f"put through to {dialed}" if dialed else "never put through"
    if wanted is True or wanted is False:
        return _verdict(name, bool(dialed) == wanted, said)
    if isinstance(wanted, dict):
        department = (record or {}).get("transferred_to")
        held = bool(dialed) and department == wanted.get("department")
        return _verdict(name, held, f"{said}, for department {department!r}")
    return _verdict(name, dialed == wanted, said)


def _message(check: Check, record: dict[str, Any], name: str) -> CheckResult:
    messages = record.get("messages", [])
    if check.message is False:
        return _verdict(name, not messages, f"a message was kept: {messages[:1]}")
    if not messages:
        return CheckResult(name, "fail", "no message was kept")
    wanted = check.message if isinstance(check.message, dict) else {}
    for message in messages:
        if all(str(v).lower() in str(message.get(k, "")).lower() for k, v in wanted.items()):
            return CheckResult(name, "pass")
    return CheckResult(name, "fail", f"messages kept: {messages}")


def _tool(check: Check, record: dict[str, Any], name: str) -> CheckResult:
    calls = record.get("tool_calls", [])
    if check.kind == "no_tool":
        used = [c for c in calls if c.get("tool") == check.no_tool]
        return _verdict(name, not used, f"it was called: {used[:1]}")
    wanted = {k: str(v).lower() for k, v in (check.arguments or {}).items()}
    for used in calls:
        arguments = {k: str(v).lower() for k, v in (used.get("arguments") or {}).items()}
        if used.get("tool") == check.tool and all(arguments.get(k) == v for k, v in wanted.items()):
            return CheckResult(name, "pass")
    made = [(c.get("tool"), c.get("arguments")) for c in calls]
    return CheckResult(name, "fail", f"tools called: {made or 'none'}")


def _judged(
    client: httpx.Client, target: Target, call_sid: str, criteria: list[str], error: str
) -> list[CheckResult]:
    names = [f"judge: {c}" for c in criteria]
    if error:
        return [CheckResult(n, "fail", f"the call did not finish: {error}") for n in names]
    if not target.admin_token:
        return [CheckResult(n, "skipped", "the judge needs ADMIN_API_TOKEN") for n in names]
    try:
        response = client.post(
            f"{target.base_url.rstrip('/')}/api/calls/{call_sid}/judge",
            json={"criteria": criteria},
            headers={"Authorization": f"Bearer {target.admin_token}"},
            timeout=JUDGE_SECONDS,
        )
    except httpx.HTTPError as problem:
        return [CheckResult(n, "skipped", f"the judge was not reached: {problem}") for n in names]
    if response.status_code != 200:
        why = f"the judge answered HTTP {response.status_code}"
        return [CheckResult(n, "skipped", why) for n in names]
    verdicts = response.json().get("verdicts", [])
    results = []
    for name, verdict in zip(names, verdicts, strict=False):
        said = verdict.get("verdict")
        status: Status = "pass" if said == "pass" else "fail" if said == "fail" else "skipped"
        results.append(CheckResult(name, status, str(verdict.get("reason") or "")))
    return results


def _place(run: Run) -> None:
    """Point a failed check without a place of its own at the end of the call."""
    for check in run.checks:
        if check.status == "fail" and check.at is None:
            check.at = len(run.transcript) - 1 if run.transcript else None
