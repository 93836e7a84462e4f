"""Proof that what operators look at shows data: the three services and a real Prometheus
on loopback, scripted calls that cause every event a panel plots, then every dashboard
query returns a non-zero value; every service's metrics pass `promtool check metrics`; and one turn
yields one trace across the three services, received by an OTLP receiver in the test."""

from __future__ import annotations

import contextlib
import json
import math
import re
import secrets
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2
from websockets.exceptions import ConnectionClosed

from aura_dev.fake_realtime import FakeGeminiLive, FakeOpenAIRealtime, Rule, Script
from aura_dev.stack import Stack, free_port
from aura_phone.media import StreamPlayer, stream_welcome
from aura_phone.relay import Action, RelayError, RelayPlayer
from aura_phone.rest import FakeTwilioRest
from aura_phone.twilio import Twilio
from aura_telephony import phrases
from aura_telephony.metrics import CALL_EVENT_NAMES, REJECTION_REASONS
from tests.support import eventually
from tests.support.fake_vendors import CallTools, Fail, FakeOpenAI, Reply, serving_in_thread
from tests.support.prometheus import Prometheus, tool
from tests.support.realtime import LiveStream, realtime_fake, until
from tests.support.redis_server import RedisServer
from tests.support.tool_servers import WebhookReceiver
from tests.support.twilio import FORM, TwilioPlayer, Twiml, new_call_sid, relay_url_for

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "helm" / "aura" / "dashboards").glob("*.json"))
TOKEN = "observability-token"

# Grafana's variables, as Grafana would substitute them for a short look-back.
VARIABLES = {
    "$__rate_interval": "2m",
    "$__interval": "15s",
    "$__range": "5m",
    "$namespace": ".*",
}


def substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def panel_queries() -> list[tuple[str, str]]:
    queries = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                queries.append(
                    (f"{path.stem}: {panel['title']} ({target['refId']})", target["expr"])
                )
    return queries


@pytest.fixture(scope="module")
def fake_model() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(script_summaries=False)
    fake.default = Reply("We are open from seven until six today.")
    with serving_in_thread(fake):
        yield fake


ACCOUNT = "AC" + "0" * 32  # the account TwilioPlayer signs for


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("observed-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def business() -> Iterator[WebhookReceiver]:
    """The business's post-call endpoint, down all along: records wait and are retried."""
    endpoint = WebhookReceiver("observed-secret", deque([503] * 100_000))
    with serving_in_thread(endpoint):
        yield endpoint


@pytest.fixture(scope="module")
def twilio_api() -> Iterator[FakeTwilioRest]:
    """Twilio's REST API for the recordings (CALL_RECORDING=on), with signed callbacks."""
    fake = FakeTwilioRest(ACCOUNT, TOKEN)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def speech_model() -> Iterator[FakeGeminiLive]:
    """The realtime model of the scenario's Media Streams call: Gemini Live's fake (the
    OpenAI fake above speaks HTTP only, so the realtime chain fails over to this one)."""
    script = Script(rules=[Rule("everything", " ".join(["word"] * 20))])
    with realtime_fake(FakeGeminiLive(script)) as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    fake_model: FakeOpenAI,
    redis: RedisServer,
    business: WebhookReceiver,
    speech_model: FakeGeminiLive,
    twilio_api: FakeTwilioRest,
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("observed")
    stack = Stack(
        env={
            "TWILIO_AUTH_TOKEN": TOKEN,
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "AI_PROVIDER": "openai",
            # gemini serves realtime calls only: local answers every text turn first.
            "AI_FALLBACK_PROVIDERS": "local,gemini",
            "OPENAI_API_KEY": "sk-local",
            "OPENAI_BASE_URL": f"{fake_model.base_url}/v1",
            "GEMINI_API_KEY": "gemini-local",
            "GEMINI_BASE_URL": speech_model.url,
            "SSL_CERT_FILE": str(speech_model.certificate),
            "LLM_MAX_RETRIES": "0",
            "MEMORY_STORE": "redis",
            "REDIS_URL": redis.url,
            # Short enough that a hung llm service turns into a holding line quickly.
            "TURN_BUDGET_SECONDS": "2",
            "MAX_CALLS_PER_NUMBER_PER_HOUR": "2",
            "RELAY_FILLER_SECONDS": "0.1",
            "POST_CALL_WEBHOOK_URL": business.url,
            "POST_CALL_WEBHOOK_SECRET": "observed-secret",
            "POST_CALL_RETRY_SECONDS": "0.5",
            "POST_CALL_POLL_SECONDS": "0.5",
            # Calls hear the recording notice first; one is recorded, then refuses.
            "CALL_RECORDING": "on",
            "TWILIO_API_BASE_URL": twilio_api.url,
        },
        log_dir=workdir,
        cwd=workdir,
    )
    with stack.running():
        yield stack
        LIVE_SESSIONS.close()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, stack: Stack) -> Iterator[Prometheus]:
    server = Prometheus(
        tmp_path_factory.mktemp("prometheus"),
        {f"aura-{name}": url for name, url in stack.metrics_urls.items()},
    )
    server.start()
    yield server
    server.stop()


def play_calls(stack: Stack, fake_model: FakeOpenAI, redis: RedisServer) -> None:
    """Calls that cause everything a dashboard panel plots: answers, a failover, a goodbye,
    silence, low confidence, keys, a transfer, a refused caller, forged webhooks, a hung llm
    service and a memory outage. One call is left open, as live calls are."""
    with httpx.Client(base_url=stack.base_url, timeout=20) as client:
        twilio = TwilioPlayer(client=client, auth_token=TOKEN)

        def post(path: str, call_sid: str, **params: str) -> Twiml:
            params.setdefault("From", unique_number())
            response = twilio.post(path, twilio.call_params(call_sid, **params))
            assert response.status_code == 200
            return Twiml(response.text)

        first = new_call_sid()
        post("/api/voice", first)
        fake_model.script(Fail(503, "overloaded"))  # the next answer comes from the fallback
        assert (
            "Monday to Friday"
            in post("/api/voice/process", first, SpeechResult="when are you open").spoken
        )
        # A time the knowledge does not hold: counted as ungrounded (GROUNDING=flag).
        fake_model.script(Reply("On Sundays we open at nine."))
        post("/api/voice/process", first, SpeechResult="and today?", Confidence="0.9")
        post("/api/voice/process", first, SpeechResult="mumble", Confidence="0.1")
        assert post("/api/voice/process", first, SpeechResult="thanks, bye").hangs_up
        post("/api/voice/status", first, CallStatus="completed")

        second = new_call_sid()
        post("/api/voice", second)
        post("/api/voice/consent", second, Digits="9")  # no recording, from the notice
        post("/api/voice/process", second, SpeechResult="")  # silence: a reprompt
        # Twilio retries a webhook it got no answer to: the retry is replayed from memory.
        retried = twilio.call_params(second, Digits="5", From=unique_number())
        headers = {
            **twilio.sign("/api/voice/process", retried),
            "I-Twilio-Idempotency-Token": secrets.token_hex(8),
        }
        for _ in range(2):  # the keypad help, then its replay
            response = client.post("/api/voice/process", data=retried, headers=headers)
            assert response.status_code == 200
        post("/api/voice/process", second, Digits="0")  # no transfer number: nobody available
        post("/api/voice/status", second, CallStatus="no-answer")

        # The model takes a message with a tool: a tool call, an action, a message kept.
        # The call is recorded after its notice, until the caller says no.
        message = new_call_sid()
        post("/api/voice", message)
        post("/api/voice/consent", message)
        note = {"caller_name": "Jo", "callback_number": "555 0100", "message": "Call me."}
        fake_model.script(CallTools((("take_message", note),)), Reply("Thanks, I've noted it."))
        taken = post("/api/voice/process", message, SpeechResult="please take a message")
        assert taken.spoken == "Thanks, I've noted it."
        refused = post("/api/voice/process", message, SpeechResult="please don't record me")
        assert refused.spoken == phrases.english().RECORDING_STOPPED
        post("/api/voice/status", message, CallStatus="completed")

        # An outbound call that reaches an answering machine: the voicemail message.
        machine = twilio.call_params(
            new_call_sid(), Direction="outbound-api", AnsweredBy="machine_end_beep"
        )
        left = twilio.post("/api/voice?purpose=your+order&voicemail=It+is+ready.", machine)
        assert Twiml(left.text).spoken == "It is ready."

        # One number calling more often than MAX_CALLS_PER_NUMBER_PER_HOUR is refused.
        pest = unique_number()
        spoken = [post("/api/voice", new_call_sid(), From=pest).spoken for _ in range(3)]
        assert spoken[-1] == phrases.english().TOO_MANY_CALLS

        # Still live at the end: a hung llm service, then a memory outage.
        open_call = new_call_sid()
        post("/api/voice", open_call)
        stack.processes["llm"].send_signal(signal.SIGSTOP)
        try:
            late = post("/api/voice/process", open_call, SpeechResult="do you sell cakes")
        finally:
            stack.processes["llm"].send_signal(signal.SIGCONT)
        assert late.spoken == phrases.english().HOLDING
        redis.stop()
        try:
            down = post("/api/voice/process", open_call, SpeechResult="do you sell cakes")
        finally:
            redis.start()
        assert down.spoken == phrases.english().APOLOGY
        # A call that ends after the outage: its record waits in the outbox (Redis here
        # keeps nothing across a restart), the business's endpoint being down.
        after = new_call_sid()
        post("/api/voice", after)
        post("/api/voice/status", after, CallStatus="completed")

        play_relay(stack, fake_model)
        play_realtime(stack)

        # Forged webhooks: unsigned, wrongly signed, and validly signed for another account.
        client.post("/api/voice", data={"CallSid": "CAx"}, headers=FORM)
        client.post(
            "/api/voice", data={"CallSid": "CAx"}, headers={**FORM, "X-Twilio-Signature": "AAAA"}
        )
        stranger = {**twilio.call_params(new_call_sid()), "AccountSid": "AC" + "9" * 32}
        assert twilio.post("/api/voice", stranger).status_code == 403


LIVE_SESSIONS = contextlib.ExitStack()  # closed when the module's stack stops


def welcomed_in_gather(stack: Stack, call_sid: str) -> str:
    """Welcome a call (this deployment gathers), then the relay URL it would issue for it:
    a relay session is played on the same deployment, for the panels that plot them."""
    with httpx.Client(base_url=stack.base_url, timeout=20) as client:
        twilio = TwilioPlayer(client=client, auth_token=TOKEN)
        params = twilio.call_params(call_sid, From=unique_number())
        assert twilio.post("/api/voice", params).status_code == 200
    return relay_url_for(stack.base_url, call_sid, TOKEN)


def play_relay(stack: Stack, fake_model: FakeOpenAI) -> None:
    """A ConversationRelay session: a slow answer (a filler), a new prompt while it streams
    (a preemption), the caller talking over the next answer (an interruption), a goodbye."""
    slow = Reply(
        "One. Two. Three.", chunks=("One. ", "Two. ", "Three."), delay=0.5, chunk_delay=0.5
    )
    fake_model.script(slow, slow)
    call_sid = new_call_sid()
    player = RelayPlayer(stack.base_url, Twilio(auth_token=TOKEN), call_sid)
    url = welcomed_in_gather(stack, call_sid)
    with player.connect(url) as socket:

        def send(message: dict[str, object]) -> None:
            socket.send(json.dumps(message))

        def next_text() -> dict[str, object]:
            while True:
                message: dict[str, object] = json.loads(socket.recv(timeout=10))
                if message["type"] == "text" and message["token"]:
                    return message

        setup = {"type": "setup", "callSid": call_sid, "accountSid": ACCOUNT}
        send({**setup, "from": unique_number()})
        asked_before = len(fake_model.requests)
        send({"type": "prompt", "voicePrompt": "count for me", "last": True})
        assert next_text()["token"] == phrases.english().FILLER + " "
        # The model has the first prompt (and takes its scripted answer) before the second
        # preempts it: otherwise that answer would be left for the next calls to hear.
        eventually(
            lambda: any(
                r.body.get("messages", [{}])[-1].get("content") == "count for me"
                for r in fake_model.requests[asked_before:]
            ),
            what="the first prompt at the model",
        )
        send({"type": "prompt", "voicePrompt": "count again", "last": True})  # preempts
        heard = next_text()
        while heard["token"] == phrases.english().FILLER + " ":
            heard = next_text()
        send({"type": "interrupt", "utteranceUntilInterrupt": heard["token"]})
        send({"type": "prompt", "voicePrompt": "ok thanks, bye", "last": True})
        while json.loads(socket.recv(timeout=10))["type"] != "end":
            pass
    # A relay URL nobody issued, and a setup for another call than its URL's: both refused.
    with pytest.raises(RelayError):
        player.connect(f"{url.rsplit('/', 1)[0]}/{call_sid}.forged")
    stray = new_call_sid()
    with player.connect(welcomed_in_gather(stack, stray)) as socket:
        socket.send(json.dumps({"type": "setup", "callSid": call_sid, "accountSid": ACCOUNT}))
        with contextlib.suppress(ConnectionClosed):
            socket.recv(timeout=10)
    # A session still live when Prometheus looks, as there are on a working day.
    live_sid = new_call_sid()
    live_url = welcomed_in_gather(stack, live_sid)
    live = LIVE_SESSIONS.enter_context(player.connect(live_url))
    live.send(json.dumps({"type": "setup", "callSid": live_sid, "accountSid": ACCOUNT}))


def play_realtime(stack: Stack) -> None:
    """A Media Streams call (the realtime mode's socket works whatever VOICE_MODE
    welcomes): the OpenAI fake has no realtime socket, so Gemini's takes over (a vendor
    error, a failover); a question, the caller talking over the answer (a barge-in). It
    stays live when Prometheus looks."""
    call_sid = new_call_sid()
    ticket = welcomed_in_gather(stack, call_sid).rsplit("/", 1)[1]
    live = LiveStream(stack.base_url, Twilio(auth_token=TOKEN), call_sid, ticket)
    LIVE_SESSIONS.callback(live.close)
    live.ask_and_interrupt()


def unique_number() -> str:
    return "+1555" + str(secrets.randbelow(10**7)).zfill(7)


def nonzero(result: list[dict[str, Any]]) -> bool:
    values = [float(sample["value"][1]) for sample in result]
    return any(not math.isnan(v) and v != 0 for v in values)


def test_every_dashboard_query_shows_what_the_calls_caused(
    stack: Stack, prometheus: Prometheus, fake_model: FakeOpenAI, redis: RedisServer
) -> None:
    eventually(lambda: len(prometheus.query("up == 1")) == 3, timeout=60, what="targets up")
    # A series is born at its first value, so rate() sees no increase until a later
    # scrape: play the calls once to create every series, once more to move them.
    play_calls(stack, fake_model, redis)
    played = time.time()

    def scraped_since_played() -> bool:
        stamps = prometheus.query("timestamp(up)")
        return len(stamps) == 3 and all(float(s["value"][1]) > played for s in stamps)

    eventually(scraped_since_played, timeout=60, what="every target scraped after the calls")
    play_calls(stack, fake_model, redis)
    queries = panel_queries()
    assert len(queries) >= 20
    for name, expr in queries:
        query = substitute(expr)

        def moved(query: str = query) -> bool:
            return nonzero(prometheus.query(query))

        try:
            eventually(moved, timeout=60, what=f"{name}: {query}")
        except AssertionError as failure:
            # What Prometheus holds, to tell a scrape gap from a missing series.
            up = prometheus.query("up")
            raise AssertionError(f"{failure}\nup: {up}\ngot: {prometheus.query(query)}") from None
    for metric, label, values in (
        # Every event the "What turns led to" panel plots, and every rejection reason.
        ("aura_call_events_total", "event", CALL_EVENT_NAMES),
        ("aura_signature_rejections_total", "reason", REJECTION_REASONS),
    ):
        rates = prometheus.query(f"sum by ({label}) (increase({metric}[5m])) > 0")
        assert {r["metric"][label] for r in rates} >= set(values), rates
    failovers = prometheus.query("sum by (from_provider, to_provider) (aura_llm_failovers_total)")
    assert [f["metric"] for f in failovers] == [{"from_provider": "openai", "to_provider": "local"}]
    # One scripted 503 per play; the turn the hung llm service took up again after its
    # SIGCONT may fail over too, when the little time left runs out at openai.
    assert int(failovers[0]["value"][1]) >= 2


@pytest.mark.parametrize("service", ["telephony", "llm", "memory"])
def test_metrics_pass_promtool_and_carry_no_call_identifiers(stack: Stack, service: str) -> None:
    exposition = stack.metrics(service).encode()
    result = subprocess.run(
        [tool("promtool"), "check", "metrics"], input=exposition, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == b"", result.stdout
    text = exposition.decode()
    assert "aura_" in text
    assert not re.search(r"CA[0-9a-f]{32}", text), "a CallSid became a label value"
    assert "+1555" not in text, "a phone number became a label value"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps every span it is sent, with its service."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, trace_pb2.Span]] = []
        self._lock = threading.Lock()

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        with self._lock:
            for resource_spans in request.resource_spans:
                attributes = {
                    a.key: a.value.string_value for a in resource_spans.resource.attributes
                }
                service = attributes.get("service.name", "?")
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend((service, span) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def trace(self, trace_id: bytes) -> list[tuple[str, trace_pb2.Span]]:
        with self._lock:
            return [(s, span) for s, span in self.spans if span.trace_id == trace_id]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    server.start()
    yield servicer, port
    server.stop(None)


def traced_stack(workdir: Path, receiver_port: int) -> Stack:
    """The three services, exporting their spans to the receiver at once."""
    return Stack(
        env={
            "TWILIO_AUTH_TOKEN": TOKEN,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver_port}",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        },
        log_dir=workdir,
        cwd=workdir,
    )


def test_one_turn_is_one_trace_across_all_three_services(
    tmp_path: Path, receiver: tuple[Receiver, int]
) -> None:
    spans, port = receiver
    stack = traced_stack(tmp_path, port)
    with stack.running(), httpx.Client(base_url=stack.base_url, timeout=20) as client:
        twilio = TwilioPlayer(client=client, auth_token=TOKEN)
        params = twilio.call_params(new_call_sid(), SpeechResult="where are you")
        assert twilio.post("/api/voice/process", params).status_code == 200

        def root() -> trace_pb2.Span | None:
            return next(
                (
                    s
                    for svc, s in spans.spans
                    if svc == "aura-telephony"
                    and s.kind == trace_pb2.Span.SPAN_KIND_SERVER
                    and not s.parent_span_id
                    and s.name.startswith("POST /api/voice/process")
                ),
                None,
            )

        eventually(lambda: root() is not None, what="the webhook's root span")
        turn = root()
        assert turn is not None

        def services() -> set[str]:
            return {svc for svc, _ in spans.trace(turn.trace_id)}

        eventually(
            lambda: services() == {"aura-telephony", "aura-llm", "aura-memory"},
            what="spans from all three services",
        )
        eventually(
            lambda: any(s.name.startswith("llm.attempt") for _, s in spans.trace(turn.trace_id)),
            what="the provider attempt span",
        )

    trace = spans.trace(turn.trace_id)
    by_id = {span.span_id: (svc, span) for svc, span in trace}
    roots = [span for _, span in trace if not span.parent_span_id]
    assert roots == [turn]
    for _, span in trace:
        if span.parent_span_id:
            assert span.parent_span_id in by_id, f"{span.name} has a parent outside the trace"

    def parent(span: trace_pb2.Span) -> tuple[str, trace_pb2.Span]:
        return by_id[span.parent_span_id]

    servers = [
        (svc, s)
        for svc, s in trace
        if svc != "aura-telephony" and s.kind == trace_pb2.Span.SPAN_KIND_SERVER
    ]
    assert {svc for svc, _ in servers} == {"aura-llm", "aura-memory"}
    for _, server_span in servers:
        service, client_span = parent(server_span)
        assert service == "aura-telephony"
        assert client_span.kind == trace_pb2.Span.SPAN_KIND_CLIENT
    attempt = next(s for _, s in trace if s.name.startswith("llm.attempt"))
    attributes = {a.key: a.value for a in attempt.attributes}
    assert attributes["aura.llm.provider"].string_value == "local"
    assert attributes["aura.llm.outcome"].string_value == "ok"
    assert attributes["aura.llm.failover"].bool_value is False
    service, llm_server = parent(attempt)
    assert service == "aura-llm"
    assert llm_server.name.endswith("LlmService/Generate")


def test_a_tool_call_is_a_span_of_its_turns_trace(
    tmp_path: Path, receiver: tuple[Receiver, int]
) -> None:
    spans, port = receiver
    stack = traced_stack(tmp_path, port)
    with stack.running(), httpx.Client(base_url=stack.base_url, timeout=20) as client:
        twilio = TwilioPlayer(client=client, auth_token=TOKEN)
        params = twilio.call_params(new_call_sid(), SpeechResult="Can I speak to the manager?")
        response = twilio.post("/api/voice/process", params)
        # The local provider called transfer_call: a warm transfer, briefing a colleague.
        assert "/api/voice/transfer?" in response.text

        def tool_span() -> trace_pb2.Span | None:
            return next((s for svc, s in spans.spans if s.name == "llm.tool transfer_call"), None)

        eventually(lambda: tool_span() is not None, what="the tool's span")
        tool = tool_span()
        assert tool is not None
        eventually(
            lambda: any(
                svc == "aura-telephony" and not s.parent_span_id
                for svc, s in spans.trace(tool.trace_id)
            ),
            what="the turn's root span",
        )
    by_id = {s.span_id: (svc, s) for svc, s in spans.trace(tool.trace_id)}
    service, parent = by_id[tool.parent_span_id]
    assert service == "aura-llm"
    assert parent.name.endswith("LlmService/Generate")  # under the turn, beside the attempts
    attributes = {a.key: a.value.string_value for a in tool.attributes}
    assert attributes == {
        "aura.tool.name": "transfer_call",
        "aura.tool.kind": "builtin",
        "aura.tool.outcome": "ok",
    }


def test_one_relay_prompt_is_one_trace_across_all_three_services(
    tmp_path: Path, receiver: tuple[Receiver, int]
) -> None:
    spans, port = receiver
    stack = traced_stack(tmp_path, port)
    with stack.running():
        call_sid = new_call_sid()
        player = RelayPlayer(stack.base_url, Twilio(auth_token=TOKEN), call_sid)
        steps = iter([Action("speech", "where are you"), Action("speech", "and parking?")])
        player.play(
            welcomed_in_gather(stack, call_sid),
            "",
            lambda heard: next(steps, Action("hangup")),
        )

        def prompts() -> list[trace_pb2.Span]:
            return [
                s
                for svc, s in spans.spans
                if svc == "aura-telephony" and s.name == "relay.prompt" and not s.parent_span_id
            ]

        eventually(lambda: len(prompts()) == 2, what="a root span per prompt")
        for prompt in prompts():

            def all_three(trace_id: bytes = prompt.trace_id) -> bool:
                services = {svc for svc, _ in spans.trace(trace_id)}
                return services == {"aura-telephony", "aura-llm", "aura-memory"}

            eventually(all_three, what="spans from all three services under the prompt")
        assert len({p.trace_id for p in prompts()}) == 2


async def test_a_realtime_exchange_is_one_trace_across_the_services(
    tmp_path: Path, receiver: tuple[Receiver, int]
) -> None:
    """The caller's end of speech to the answer's first audio: the llm service's exchange
    span, telephony's answer span beneath it, and the caller's turn stored in memory."""
    spans, port = receiver
    with realtime_fake(FakeOpenAIRealtime()) as speech:
        speech.script.transcripts.append("when do you open")
        stack = traced_stack(tmp_path, port)
        stack.env = {
            **stack.env,
            "VOICE_MODE": "realtime",
            "AI_PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-local",
            "OPENAI_BASE_URL": f"{speech.url}/v1",
        }
        with stack.running():
            twilio = Twilio(auth_token=TOKEN)
            call_sid = new_call_sid()
            player = StreamPlayer(stack.base_url, twilio, call_sid)
            await player.open(stream_welcome(stack.base_url, twilio, call_sid))
            try:
                await until(lambda: player.playback.received_ms > 0 and not player.playing)
                await player.say("when do you open")

                def exchange() -> trace_pb2.Span | None:
                    return next((s for _, s in spans.spans if s.name == "realtime.exchange"), None)

                await until(lambda: exchange() is not None, what="the exchange span")
                root = exchange()
                assert root is not None
                await until(
                    lambda: (
                        {svc for svc, _ in spans.trace(root.trace_id)}
                        == {"aura-llm", "aura-telephony", "aura-memory"}
                    ),
                    what="spans of the three services in the exchange's trace",
                )
            finally:
                await player.hang_up()
    trace = spans.trace(root.trace_id)
    assert not root.parent_span_id
    answer = next(s for svc, s in trace if s.name == "realtime.answer")
    assert answer.parent_span_id == root.span_id
