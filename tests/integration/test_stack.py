"""The three services as real processes on loopback: lifecycle, health, reflection, and
what a caller hears while a service is down and after it comes back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from aura.memory.v1 import memory_service_pb2 as memory_pb
from aura.memory.v1 import memory_service_pb2_grpc as memory_grpc
from aura_common.probe import grpc_serving
from aura_dev.certificates import self_signed
from aura_dev.stack import Stack, free_port
from aura_telephony import phrases
from tests.support import eventually
from tests.support.twilio import TwilioPlayer, Twiml, new_call_sid

TOKEN = "integration-token"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(env={"TWILIO_AUTH_TOKEN": TOKEN}, log_dir=tmp_path, cwd=tmp_path)
    with stack.running():
        yield stack


@pytest.fixture
def twilio(stack: Stack) -> Iterator[TwilioPlayer]:
    with httpx.Client(base_url=stack.base_url, timeout=20) as client:
        yield TwilioPlayer(client=client, auth_token=TOKEN)


def say(twilio: TwilioPlayer, call_sid: str, said: str) -> Twiml:
    response = twilio.post("/api/voice/process", twilio.call_params(call_sid, SpeechResult=said))
    assert response.status_code == 200, response.text
    return Twiml(response.text)


def stored_turns(stack: Stack, call_sid: str) -> list[str]:
    with grpc.insecure_channel(stack.memory_address) as channel:
        reply = memory_grpc.MemoryServiceStub(channel).GetHistory(
            memory_pb.GetHistoryRequest(call_id=call_sid), timeout=5
        )
    return [t.text for t in reply.turns]


def test_status_callback_clears_the_history(stack: Stack, twilio: TwilioPlayer) -> None:
    call_sid = new_call_sid()
    twilio.post("/api/voice", twilio.call_params(call_sid))
    say(twilio, call_sid, "do you have vegan bread")
    assert len(stored_turns(stack, call_sid)) == 3  # welcome, question, answer
    twilio.post("/api/voice/status", twilio.call_params(call_sid, CallStatus="completed"))
    assert stored_turns(stack, call_sid) == []


def test_llm_killed_mid_call_apologises_then_recovers(stack: Stack, twilio: TwilioPlayer) -> None:
    call_sid = new_call_sid()
    assert "Monday to Friday" in say(twilio, call_sid, "when are you open").spoken

    stack.stop_service("llm", signal.SIGKILL)
    apology = say(twilio, call_sid, "where are you located")
    assert apology.spoken == phrases.english().APOLOGY
    assert apology.gather is not None  # the caller can simply try again

    stack.start_service("llm")
    assert "Harbor Lane" in say(twilio, call_sid, "where are you located").spoken


def test_memory_down_apologises_instead_of_failing(stack: Stack, twilio: TwilioPlayer) -> None:
    stack.stop_service("memory", signal.SIGKILL)
    answer = say(twilio, new_call_sid(), "when are you open")
    assert answer.spoken == phrases.english().APOLOGY
    assert answer.gather is not None
    welcome = twilio.post("/api/voice", twilio.call_params(new_call_sid()))
    assert welcome.status_code == 200
    assert "How can I help" in Twiml(welcome.text).spoken


@pytest.mark.parametrize(
    ("service", "name"),
    [("llm", "aura.llm.v1.LlmService"), ("memory", "aura.memory.v1.MemoryService")],
)
def test_health_and_reflection(stack: Stack, service: str, name: str) -> None:
    address = stack.llm_address if service == "llm" else stack.memory_address
    assert grpc_serving(address)
    with grpc.insecure_channel(address) as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert name in services
    assert "grpc.health.v1.Health" in services


@pytest.mark.parametrize("service", ["memory", "llm", "telephony"])
def test_sigterm_stops_each_service_cleanly(stack: Stack, service: str) -> None:
    assert stack.stop_service(service, signal.SIGTERM) == 0


def test_runner_stops_every_service_on_sigterm(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": "0",
    }
    stack = Stack()  # only for free ports
    env.update(
        PORT=str(stack.telephony_port),
        LLM_PORT=str(stack.llm_port),
        MEMORY_PORT=str(stack.memory_port),
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "aura_dev.stack"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert runner.stdout is not None
    banner = ""
    for line in runner.stdout:
        banner += line
        if "Aura is running" in line or "did not start" in line:
            break
    assert f"http://127.0.0.1:{stack.telephony_port}" in banner, banner
    assert grpc_serving(stack.llm_address)
    runner.send_signal(signal.SIGTERM)
    output, _ = runner.communicate(timeout=30)
    assert runner.returncode == 0, banner + output
    assert not grpc_serving(stack.llm_address)
    assert not grpc_serving(stack.memory_address)


def start_alone(module: str, workdir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Start one service with `env` and wait for it to exit (it is expected to refuse)."""
    return subprocess.run(
        [sys.executable, "-m", module],
        env={**os.environ, **env},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_llm_without_its_key_refuses_to_start(tmp_path: Path) -> None:
    result = start_alone(
        "aura_llm", tmp_path, AI_PROVIDER="openai", OPENAI_API_KEY="", LLM_PORT=str(free_port())
    )
    assert result.returncode == 2
    assert "OPENAI_API_KEY" in result.stderr


def test_invalid_setting_is_reported_without_a_traceback(tmp_path: Path) -> None:
    result = start_alone("aura_telephony", tmp_path, SPEECH_TIMEOUT="soon", PORT=str(free_port()))
    assert result.returncode == 2
    assert "SPEECH_TIMEOUT" in result.stderr
    assert "Traceback" not in result.stderr


def test_probe_command_reports_health(stack: Stack) -> None:
    healthy = subprocess.run(
        [
            sys.executable,
            "-m",
            "aura_common.probe",
            "--http",
            f"{stack.base_url}/health",
            "--grpc",
            f"{stack.llm_address}/aura.llm.v1.LlmService",
            "--grpc",
            stack.memory_address,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert healthy.returncode == 0, healthy.stdout
    assert healthy.stdout.count("ok") == 3
    stack.stop_service("llm")
    down = subprocess.run(
        [
            sys.executable,
            "-m",
            "aura_common.probe",
            "--timeout",
            "1",
            "--within",
            "2",
            "--grpc",
            stack.llm_address,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert down.returncode == 1
    assert "FAIL grpc" in down.stdout


def test_make_call_signs_with_the_token_from_dotenv(tmp_path: Path) -> None:
    """`make call` runs `aura-call` with no options: against a `make run` whose token is set
    only in .env, it must find the same token (and port) there, or every webhook is a 403."""
    stack = Stack(log_dir=tmp_path, cwd=tmp_path)
    (tmp_path / ".env").write_text(f"TWILIO_AUTH_TOKEN='{TOKEN}'\nPORT={stack.telephony_port}\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TWILIO_AUTH_TOKEN", "PORT", "AURA_BASE_URL", "PUBLIC_BASE_URL")
    }
    script = Path(__file__).parents[1] / "e2e" / "scripts" / "bakery.yaml"
    with stack.running():
        done = subprocess.run(
            [Path(sys.executable).with_name("aura-call"), "--script", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert "script passed" in done.stdout


@pytest.mark.parametrize(
    ("service", "setting"),
    [("memory", "MEMORY_METRICS_PORT"), ("llm", "LLM_PORT"), ("telephony", "PORT")],
)
def test_a_port_in_use_is_one_line_naming_the_setting(
    tmp_path: Path, service: str, setting: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        fields = {
            "MEMORY_METRICS_PORT": "memory_metrics_port",
            "LLM_PORT": "llm_port",
            "PORT": "telephony_port",
        }
        stack = Stack(log_dir=tmp_path, cwd=tmp_path, **{fields[setting]: port})
        with pytest.raises(RuntimeError, match=f"^{service} exited with code 1"):
            stack.start_service(service)
        stack.stop()
    log = (tmp_path / f"{service}.log").read_text()
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use; set {setting}" in log
    assert "Traceback" not in log
    assert "Event loop is closed" not in log


def scrape(stack: Stack, service: str, name: str) -> float:
    """One sample of a metric without labels, from a service's /metrics."""
    text = stack.metrics(service)
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def test_a_call_whose_status_callback_is_lost_is_counted_live_then_archived(
    tmp_path: Path,
) -> None:
    """The memory service knows which calls exist: a call counts as live until it expires,
    and one that never got its final status is then kept as ended with status unknown."""
    stack = Stack(
        env={
            "TWILIO_AUTH_TOKEN": TOKEN,
            "ADMIN_API_TOKEN": "admin",
            # Live for longer than the gauge's 2 s refresh, so it is seen live first.
            "CONVERSATION_TTL_SECONDS": "6",
        },
        log_dir=tmp_path,
        cwd=tmp_path,
    )
    with stack.running(), httpx.Client(base_url=stack.base_url, timeout=20) as client:
        twilio = TwilioPlayer(client=client, auth_token=TOKEN)
        call_sid = new_call_sid()
        assert twilio.post("/api/voice", twilio.call_params(call_sid)).status_code == 200
        active = "aura_active_calls "
        eventually(lambda: scrape(stack, "memory", active) == 1, what="one live call")
        # No status callback ever comes: the call expires and is archived, not lost.
        eventually(lambda: scrape(stack, "memory", active) == 0, timeout=30, what="no live call")

        def archived() -> dict[str, Any] | None:
            response = client.get(
                f"/api/calls/{call_sid}/transcript", headers={"Authorization": "Bearer admin"}
            )
            body: dict[str, Any] = response.json()
            return body if response.status_code == 200 and body["status"] else None

        eventually(lambda: archived() is not None, timeout=30, what="the archived transcript")
        record = archived()
        assert record is not None
        assert record["status"] == "unknown"
        assert record["ended_at"] is not None
        assert [t["role"] for t in record["turns"]] == ["assistant"]  # the welcome
        assert scrape(stack, "memory", "aura_memory_calls_expired_total ") == 1


def test_calls_work_over_tls_with_the_shared_token(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    stack = Stack(
        env={
            "TWILIO_AUTH_TOKEN": TOKEN,
            "GRPC_AUTH_TOKEN": "shared-secret",
            "GRPC_TLS_CERT_FILE": str(cert),
            "GRPC_TLS_KEY_FILE": str(key),
            "GRPC_TLS_CA_FILE": str(cert),
            "GRPC_REFLECTION": "false",
        },
        log_dir=tmp_path,
        cwd=tmp_path,
    )
    with stack.running(), httpx.Client(base_url=stack.base_url, timeout=20) as client:
        twilio = TwilioPlayer(client=client, auth_token=TOKEN)
        call_sid = new_call_sid()
        twilio.post("/api/voice", twilio.call_params(call_sid))
        assert "Saturday" in say(twilio, call_sid, "what time do you open on saturday").spoken
        # Without the token, memory refuses to show the conversation.
        credentials = grpc.ssl_channel_credentials(cert.read_bytes())
        with (
            grpc.secure_channel(stack.memory_address, credentials) as channel,
            pytest.raises(grpc.RpcError) as refused,
        ):
            memory_grpc.MemoryServiceStub(channel).GetHistory(
                memory_pb.GetHistoryRequest(call_id=call_sid), timeout=5
            )
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
