"""aura-eval against real processes: the sample suite passes at 100% with the local
provider (judge criteria and the model-played caller skipped, never passed); a changed
answer in the knowledge fails the right scenario with a readable reason; the judge scores
a call through the deployment's own model (fake OpenAI and Gemini servers, their official
SDKs); a caller a model plays reaches its goal; a realtime call is played as audio and its
words read back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from aura_dev.fake_realtime import FakeOpenAIRealtime, Rule
from aura_dev.stack import Stack
from aura_llm.config import SAMPLE_KNOWLEDGE_BASE
from aura_phone.evaluate import Target, run_suite
from aura_phone.scenarios import load_suite
from tests.support.fake_vendors import FakeGemini, FakeOpenAI, FakeVendor, Reply, serving_in_thread
from tests.support.realtime import realtime_fake

TOKEN = "eval-token"
ADMIN = "eval-admin"
SUITE = Path(__file__).resolve().parents[2] / "evals" / "sample-bakery"


def eval_stack(tmp_path: Path, **extra: str) -> Stack:
    env = {"TWILIO_AUTH_TOKEN": TOKEN, "ADMIN_API_TOKEN": ADMIN, **extra}
    return Stack(env=env, log_dir=tmp_path, cwd=tmp_path)


def aura_eval(
    stack: Stack, tmp_path: Path, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("aura-eval")),
            "--json",
            str(report),
            "--quiet",
            *args,
        ],
        env={
            "AURA_BASE_URL": stack.base_url,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "ADMIN_API_TOKEN": ADMIN,
            "PATH": "",
            **env,
        },
        cwd=tmp_path,  # no .env of the repository's
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    found: dict[str, object] = json.loads(report.read_text()) if report.exists() else {}
    return result, found


def scenarios(report: dict[str, object]) -> dict[str, dict[str, object]]:
    listed = report["scenarios"]
    assert isinstance(listed, list)
    return {s["name"]: s for s in listed}


def test_the_sample_suite_passes_with_the_local_provider(tmp_path: Path) -> None:
    with eval_stack(tmp_path).running() as stack:
        junit, page = tmp_path / "junit.xml", tmp_path / "report.html"
        result, report = aura_eval(
            stack,
            tmp_path,
            "--suite",
            str(SUITE),
            "--concurrency",
            "4",
            "--junit",
            str(junit),
            "--html",
            str(page),
        )
    assert result.returncode == 0, result.stdout + result.stderr
    found = scenarios(report)
    assert len(found) >= 20
    assert report["passed"] is True
    played = {n: s for n, s in found.items() if s["skipped"] is None}
    assert all(s["pass_rate"] == 1.0 for s in played.values())
    # Without a model the judge's criteria and the model-played caller are skipped.
    persona = found["A caller a model plays, planning a party"]
    assert persona["pass_rate"] is None
    assert "set OPENAI_API_KEY" in str(persona["skipped"])
    judged = [c for s in played.values() for c in s["checks"] if c["name"].startswith("judge:")]  # type: ignore[attr-defined]
    assert judged
    assert all(c["pass_rate"] is None and c["skipped"] == 1 for c in judged)
    assert "judge criteria skipped: no model" in result.stdout
    suite = ElementTree.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures")) == (str(len(found)), "0")
    assert page.read_text().startswith("<!doctype html>")


def test_a_changed_answer_fails_the_right_scenario_with_a_readable_reason(tmp_path: Path) -> None:
    knowledge = tmp_path / "bakery.yaml"
    original = SAMPLE_KNOWLEDGE_BASE.read_text()
    knowledge.write_text(original.replace("Saturday from 8 to 4", "Saturday from 9 to 3"))
    with eval_stack(tmp_path, KNOWLEDGE_BASE_PATH=str(knowledge)).running() as stack:
        result, report = aura_eval(stack, tmp_path, "--suite", str(SUITE))
    assert result.returncode == 1
    failing = {n for n, s in scenarios(report).items() if s["pass_rate"] not in (1.0, None)}
    assert failing == {"Saturday opening hours"}
    assert (
        "FAIL Saturday opening hours: step 1 hears 'Saturday from 8 to 4' passed 0%: "
        "expected to hear 'Saturday from 8 to 4', heard 'We are open Monday to Friday "
        "from 7 in the morning to 6 in the evening, Saturday from 9 to 3"
    ) in result.stdout


DELIVERY = """
name: Delivery promises
steps:
  - say: Do you deliver cakes?
judge:
  - The assistant answered the question about delivery.
  - The assistant never promised a delivery time.
"""


@pytest.mark.parametrize("vendor", ["openai", "gemini"])
def test_the_judge_scores_the_call_with_the_deployments_model(tmp_path: Path, vendor: str) -> None:
    fake: FakeVendor = FakeOpenAI() if vendor == "openai" else FakeGemini()
    verdicts = {
        "verdicts": [
            {"criterion": 1, "pass": True, "reason": "It said it delivers cakes."},
            {"criterion": 2, "pass": False, "reason": "It promised delivery by noon."},
        ]
    }
    fake.script(
        Reply("Yes, we deliver cakes, and yours will be there by noon."),
        Reply(json.dumps(verdicts)),
    )
    (tmp_path / "delivery.yaml").write_text(DELIVERY)
    with serving_in_thread(fake) as url:
        provider = (
            {"AI_PROVIDER": "openai", "OPENAI_API_KEY": "sk-local", "OPENAI_BASE_URL": f"{url}/v1"}
            if vendor == "openai"
            else {"AI_PROVIDER": "gemini", "GEMINI_API_KEY": "local", "GEMINI_BASE_URL": url}
        )
        with eval_stack(tmp_path, **provider).running() as stack:
            result, report = aura_eval(stack, tmp_path, "--suite", str(tmp_path / "delivery.yaml"))
    assert result.returncode == 1  # a broken criterion fails the scenario
    [scenario] = scenarios(report).values()
    checks = {c["name"]: c for c in scenario["checks"]}  # type: ignore[attr-defined]
    met = checks["judge: The assistant answered the question about delivery."]
    broken = checks["judge: The assistant never promised a delivery time."]
    assert (met["pass_rate"], broken["pass_rate"]) == (1.0, 0.0)
    assert broken["reasons"] == ["It promised delivery by noon."]
    # The judge read the call as the deployment kept it.
    assert "yours will be there by noon" in json.dumps(fake.requests[-1].body)


MODEL_CALLER = """
name: A model asks about delivery
caller:
  persona: A short-spoken customer.
  goal: Find out whether the bakery delivers cakes.
  max_turns: 3
checks:
  - heard: eight dollars
"""


def test_a_caller_a_model_plays_reaches_its_goal(tmp_path: Path) -> None:
    caller = FakeOpenAI()
    caller.script(Reply("Hi, do you deliver cakes?"), Reply("Thanks. [HANG UP]"))
    (tmp_path / "caller.yaml").write_text(MODEL_CALLER)
    with serving_in_thread(caller) as url, eval_stack(tmp_path).running() as stack:
        result, report = aura_eval(
            stack,
            tmp_path,
            "--suite",
            str(tmp_path / "caller.yaml"),
            OPENAI_API_KEY="sk-local",
            OPENAI_BASE_URL=f"{url}/v1",
        )
    assert result.returncode == 0, result.stdout + result.stderr
    [scenario] = scenarios(report).values()
    assert scenario["pass_rate"] == 1.0
    first = caller.requests[0].body["messages"]
    assert "Find out whether the bakery delivers cakes." in first[0]["content"]
    assert "How can I help" in first[1]["content"]  # the caller model heard the welcome


REALTIME = """
name: A realtime call
steps:
  - hear: I'm Aura                       # the welcome the model said
  - say: when do you open on saturday
    hear: "You said: when do you open on saturday"
  - say: please put me through to orders
    transfer_to: "+15555550112"
checks:
  - transferred: {department: orders}
  - tool: transfer_call
    arguments: {department: orders}
"""


def test_a_realtime_call_is_played_as_audio_and_read_back(tmp_path: Path) -> None:
    fake = FakeOpenAIRealtime()
    fake.script.transcripts.extend(
        ["when do you open on saturday", "please put me through to orders"]
    )
    fake.script.rules.append(
        Rule("put me through", "", ("transfer_call", {"department": "orders"}))
    )
    (tmp_path / "realtime.yaml").write_text(REALTIME)
    with realtime_fake(fake):
        env = {
            "VOICE_MODE": "realtime",
            "AI_PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-local",
            "OPENAI_BASE_URL": f"{fake.url}/v1",
        }
        with eval_stack(tmp_path, **env).running() as stack:
            target = Target(stack.base_url, TOKEN, admin_token=ADMIN, realtime=True)
            [run] = run_suite(target, load_suite(tmp_path / "realtime.yaml"))
    failed = [(c.name, c.reason) for c in run.checks if c.status != "pass"]
    assert not run.error, run.transcript
    assert not failed, (failed, run.transcript)
    assert run.latencies_ms  # each answer's first audio, timed
    assert run.dialed == "+15555550112"
