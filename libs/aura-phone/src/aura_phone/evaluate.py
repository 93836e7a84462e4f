"""Plays aura-eval's scenarios against a deployment, as many times as asked and as many at
once, and checks each call: what was heard at each step and in the whole call, the
outcome, the tools the model called (read back through the transcript API), grounding,
turn latency, and criteria a judge model scores (through the deployment's own llm
service). A check that cannot be made (no admin token, no judge model, no key for a
model-played caller) is skipped, never passed."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from aura_phone.scenarios import Check, Persona, Scenario
from aura_phone.script import Step, since
from aura_phone.simulator import Call, CallError, Input, Turn

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
        call = Call(
            target.base_url,
            target.auth_token,
            target.public_url,
            account_sid=target.account_sid,
            client=client,
            language=scenario.language or "",
            caller=scenario.caller_number or Call.caller,
            callee=scenario.callee_number or Call.callee,
        )
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
        record = _record(client, target, call.call_sid) if not run.error else None
        for check in scenario.checks:
            run.checks.append(_checked(check, call, run, record, target))
        if scenario.judge:
            run.checks += _judged(client, target, call.call_sid, scenario.judge, run.error)
    _place(run)
    return run


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


def _checked(
    check: Check, call: Call, run: Run, record: dict[str, Any] | None, target: Target
) -> CheckResult:
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
        ended = bool(call.turns) and call.turns[-1].hung_up
        return _verdict(
            name, ended == check.ended, "the deployment hung up" if ended else "the caller hung up"
        )
    if kind == "transferred":
        return _transferred(check, call, record, name)
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


def _transferred(check: Check, call: Call, record: dict[str, Any] | None, name: str) -> CheckResult:
    dialed = call.dialed
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
