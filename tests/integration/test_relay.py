"""Relay mode (ConversationRelay) through real processes and real WebSockets: the phone
simulator plays Twilio. Barge-in reaches the vendor (its HTTP stream is closed), what is
stored is what the caller heard, an unsigned upgrade is refused, a malformed message harms
no other session, and a SIGTERM hands a live caller over to another replica."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from aura_dev.stack import Stack, free_port
from aura_phone.cli import main, run_script
from aura_phone.relay import Action, Heard, RelayError, RelayPlayer, welcome
from aura_phone.script import load_script
from aura_phone.simulator import Call
from aura_phone.twilio import Twilio, new_call_sid
from aura_telephony import phrases
from tests.support import eventually
from tests.support.fake_vendors import CallTools, FakeOpenAI, Reply, serving_in_thread
from tests.support.stored import history, transcript
from tests.support.tool_servers import SECRET, FakeToolServer

TOKEN = "relay-token"
SCRIPTS = Path(__file__).resolve().parents[1] / "e2e" / "scripts"
SLOW = Reply(
    "We bake sourdough every morning. Rye on Tuesdays. Croissants at seven. Cakes to order.",
    chunks=(
        "We bake sourdough every morning. ",
        "Rye on Tuesdays. ",
        "Croissants at seven. ",
        "Cakes to order.",
    ),
    chunk_delay=0.4,
)


@pytest.fixture(scope="module")
def fake_model() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    with serving_in_thread(fake):
        yield fake


def relay_env(fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {
        "TWILIO_AUTH_TOKEN": TOKEN,
        "VOICE_MODE": "relay",
        "AI_PROVIDER": "openai",
        "AI_FALLBACK_PROVIDERS": "local",
        "OPENAI_API_KEY": "sk-local",
        "OPENAI_BASE_URL": f"{fake.base_url}/v1",
        "RELAY_IDLE_SECONDS": "1",
        "RELAY_FILLER_SECONDS": "5",
        # The malformed-session test sends garbage for a while before its setup.
        "RELAY_SETUP_SECONDS": "30",
        **extra,
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fake_model: FakeOpenAI) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("relay")
    stack = Stack(env=relay_env(fake_model), log_dir=workdir, cwd=workdir)
    with stack.running():
        yield stack


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Relay mode on the local provider and the sample's tools, as `make run` would be."""
    workdir = tmp_path_factory.mktemp("relay-local")
    env = {"TWILIO_AUTH_TOKEN": TOKEN, "VOICE_MODE": "relay", "RELAY_IDLE_SECONDS": "1"}
    stack = Stack(env=env, log_dir=workdir, cwd=workdir)
    with stack.running():
        yield stack


@pytest.fixture(scope="module")
def shop() -> Iterator[FakeToolServer]:
    server = FakeToolServer()
    with serving_in_thread(server):
        yield server


MANAGER = "+15005550011"


@pytest.fixture(scope="module")
def tools_stack(
    tmp_path_factory: pytest.TempPathFactory, fake_model: FakeOpenAI, shop: FakeToolServer
) -> Iterator[Stack]:
    """Relay mode on the fake model, with a department and a signed HTTP tool."""
    workdir = tmp_path_factory.mktemp("relay-tools")
    tools = workdir / "tools.yaml"
    tools.write_text(
        f"""
departments: {{manager: "{MANAGER}"}}
tools:
  - builtin: transfer_call
  - name: order_status
    description: Where an order is.
    parameters: {{type: object, properties: {{order_number: {{type: string}}}}}}
    http: {{url: "{shop.base_url}/order-status", timeout_seconds: 3}}
"""
    )
    env = relay_env(fake_model, TOOLS_PATH=str(tools), TOOLS_SIGNING_SECRET=SECRET)
    stack = Stack(env=env, log_dir=workdir, cwd=workdir)
    with stack.running():
        yield stack


def relay_url(stack: Stack, call_sid: str, twilio: Twilio | None = None) -> str:
    """Welcome the call; the relay URL its TwiML issued for it."""
    url = welcome(stack.base_url, twilio or Twilio(auth_token=TOKEN), call_sid)
    assert url.startswith(f"ws://{stack.host}:{stack.telephony_port}/api/voice/relay/{call_sid}.")
    return url


def test_the_sample_script_over_relay(local_stack: Stack) -> None:
    numbers, steps = load_script(SCRIPTS / "bakery-relay.yaml")
    call = Call(local_stack.base_url, TOKEN, caller=numbers["from"], callee=numbers["to"])
    run_script(call, steps)  # it ends put through to the manager's number
    stored = history(local_stack, call.call_sid)
    assert stored[0][0] == "assistant"  # the welcome
    # The interrupted answer is stored as heard, and marked so.
    interrupted = [turn for turn in stored if turn[2]]
    assert len(interrupted) == 1
    assert stored[-1] == ("assistant", "Of course. Let me put you through to our manager.", False)
    [message] = transcript(local_stack, call.call_sid).messages
    assert (message.caller_name, message.callback_number) == ("Jo Baker", "555 0100")
    assert message.text == "Please call me about a birthday cake for Saturday."


def test_barge_in_closes_the_vendor_stream_and_keeps_what_was_heard(
    stack: Stack, fake_model: FakeOpenAI
) -> None:
    fake_model.default = SLOW
    before = len(fake_model.abandoned)
    call_sid = new_call_sid()
    url = relay_url(stack, call_sid)
    steps = iter(
        [
            Action("speech", "what do you bake", interrupt_after=1),
            Action("speech", "ok thanks, bye"),
        ]
    )
    heard: list[Heard] = []

    def decide(now: Heard) -> Action:
        heard.append(now)
        return next(steps)

    player = RelayPlayer(stack.base_url, Twilio(auth_token=TOKEN), call_sid)
    outcome = player.play(url, "Hello!", decide)
    assert json.loads(outcome.handoff) == {"reason": "goodbye"}
    cut = heard[1]
    assert cut.interrupted
    assert cut.text == "We bake sourdough every morning."
    # The vendor saw its HTTP stream closed before the answer's end: no tokens paid for.
    eventually(lambda: len(fake_model.abandoned) > before, what="the vendor stream closed")
    assert fake_model.abandoned[-1] < len(SLOW.chunks)
    assert history(stack, call_sid)[1:3] == [
        ("user", "what do you bake", False),
        ("assistant", "We bake sourdough every morning.", True),
    ]


def talk(stack: Stack, said: str) -> tuple[list[Heard], str, str]:
    """One prompt in a new session, then a hang-up: what was heard, the end's handoffData
    (empty when the caller hung up) and the call's sid."""
    call_sid = new_call_sid()
    heard: list[Heard] = []
    steps = iter([Action("speech", said)])

    def decide(now: Heard) -> Action:
        heard.append(now)
        return next(steps, Action("hangup"))

    player = RelayPlayer(stack.base_url, Twilio(auth_token=TOKEN), call_sid)
    outcome = player.play(relay_url(stack, call_sid), "Hello!", decide)
    return player.heard, outcome.handoff, call_sid


def test_while_a_tool_runs_the_caller_hears_the_filler_then_the_answer(
    tools_stack: Stack, fake_model: FakeOpenAI, shop: FakeToolServer
) -> None:
    fake_model.script(
        CallTools((("order_status", {"order_number": "A17"}),), text="Let me look that up."),
        Reply("Your order A17 is baked and ready to collect."),
    )
    calls_before = len(shop.calls)
    heard, _, call_sid = talk(tools_stack, "where is my order A17")
    assert heard[1].tokens == [
        "Let me look that up. ",
        phrases.english().FILLER + " ",
        "Your order A17 is baked and ready to collect. ",
    ]
    [call] = shop.calls[calls_before:]
    assert call.verified
    assert call.body["arguments"] == {"order_number": "A17"}
    # What is stored is what the model said; the filler is ours. The turn is stored as the
    # session settles, which may be just after the caller's hang-up reached us.
    said = (
        "assistant",
        "Let me look that up. Your order A17 is baked and ready to collect.",
        False,
    )
    eventually(lambda: history(tools_stack, call_sid)[-1] == said, what="the turn stored")


def test_a_transfer_the_model_decides_ends_the_session_with_the_departments_number(
    tools_stack: Stack, fake_model: FakeOpenAI
) -> None:
    fake_model.script(
        CallTools((("transfer_call", {"department": "manager"}),), text="Putting you through.")
    )
    heard, handoff, _ = talk(tools_stack, "I need the manager")
    assert heard[1].text == "Putting you through."
    assert json.loads(handoff) == {"reason": "transfer", "number": MANAGER}


def test_an_unsigned_upgrade_is_refused(stack: Stack) -> None:
    url = relay_url(stack, new_call_sid())
    for headers in ({}, {"X-Twilio-Signature": "Zm9yZ2Vk"}):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers=headers, open_timeout=5)
        assert refused.value.response.status_code == 403


def closed_with(socket: Connection) -> int:
    """The close code of a socket the server closes within 10 s."""

    def read_until_closed() -> None:
        while True:
            socket.recv(timeout=10)

    with pytest.raises(ConnectionClosed) as closed:
        read_until_closed()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def test_a_relay_url_serves_its_own_call_once_at_a_time_and_not_after_it_ended(
    stack: Stack, fake_model: FakeOpenAI
) -> None:
    fake_model.default = Reply("We are open Saturday from 8 to 4.")
    call_sid = new_call_sid()
    url = relay_url(stack, call_sid)
    base = f"ws://{stack.host}:{stack.telephony_port}/api/voice/relay"
    # Signed upgrades to URLs this deployment did not issue are refused before a socket.
    for made_up in (base, f"{base}/{call_sid}", f"{base}/{call_sid}.AAAAAAAAAAAAAAAAAAAAAAAA"):
        with pytest.raises(RelayError, match="HTTP 403"):
            RelayPlayer(stack.base_url, Twilio(auth_token=TOKEN), call_sid).connect(made_up)
    # The URL issued for one call opens no session of another live call.
    other = new_call_sid()
    relay_url(stack, other)  # welcomed, live
    player = RelayPlayer(stack.base_url, Twilio(auth_token=TOKEN), other)
    with player.connect(url) as socket:
        socket.send(json.dumps({"type": "setup", "callSid": other}))
        assert closed_with(socket) == 1008
    # One session at a time: while the call's session is live, a replayed upgrade of the
    # same URL is refused.
    first = RelayPlayer(stack.base_url, Twilio(auth_token=TOKEN), call_sid)
    with first.connect(url) as live:
        live.send(json.dumps({"type": "setup", "callSid": call_sid}))
        live.send(json.dumps({"type": "prompt", "voicePrompt": "when are you open", "last": True}))
        assert json.loads(live.recv(timeout=10))["type"] == "text"
        with first.connect(url) as replayed:
            replayed.send(json.dumps({"type": "setup", "callSid": call_sid}))
            assert closed_with(replayed) == 1008
    # Once the call has ended, its URL serves nobody.
    twilio = Twilio(auth_token=TOKEN)
    params = twilio.call_params(call_sid, CallStatus="completed")
    ended = httpx.post(
        f"{stack.base_url}/api/voice/status",
        data=params,
        headers=twilio.headers(stack.base_url, "/api/voice/status", params),
        timeout=10,
    )
    assert ended.status_code == 200
    with first.connect(url) as late:
        late.send(json.dumps({"type": "setup", "callSid": call_sid}))
        assert closed_with(late) == 1008
    assert history(stack, other) == [("assistant", history(stack, other)[0][1], False)]


def test_a_malformed_session_leaves_others_untouched(stack: Stack, fake_model: FakeOpenAI) -> None:
    fake_model.default = Reply("We are open Saturday from 8 to 4.")
    bad_sid = new_call_sid()
    player = RelayPlayer(stack.base_url, Twilio(auth_token=TOKEN), bad_sid)
    with player.connect(relay_url(stack, bad_sid)) as bad:
        for garbage in (
            "not json",
            "[1, 2]",
            json.dumps({"type": "prompt", "voicePrompt": "before any setup"}),
            json.dumps({"type": "setup"}),
            json.dumps({"type": "setup", "callSid": "CAbad", "from": 5}),
            json.dumps({"type": "prompt"}),
            json.dumps({"type": "dtmf", "digit": None}),
            json.dumps({"type": "interrupt", "utteranceUntilInterrupt": 7}),
            json.dumps({"type": "no-such-type"}),
            "x" * 100_000,
            "[" * 30_000 + "]" * 30_000,  # nested deeper than the JSON parser goes
            b"\x00\xff binary",
        ):
            bad.send(garbage)
        # Another caller's session goes on as usual meanwhile.
        good_sid = new_call_sid()
        good = RelayPlayer(stack.base_url, Twilio(auth_token=TOKEN), good_sid)
        answers = iter([Action("speech", "when are you open"), Action("hangup")])
        good.play(relay_url(stack, good_sid), "", lambda heard: next(answers))
        assert "Saturday" in good.heard[-1].text
        # And the malformed one still answers once it sends something valid.
        bad.send(json.dumps({"type": "setup", "callSid": bad_sid}))
        bad.send(json.dumps({"type": "prompt", "voicePrompt": "when are you open", "last": True}))
        reply = json.loads(bad.recv(timeout=10))
        assert reply["type"] == "text"


def test_a_live_call_survives_the_sigterm_of_its_replica(
    tmp_path: Path, fake_model: FakeOpenAI
) -> None:
    """Two telephony replicas behind one public URL: the first drains on SIGTERM and hands
    the caller over; Twilio (the simulator) reconnects through the action URL to the
    second, which goes on with the same conversation from memory."""
    fake_model.default = Reply("We are open Saturday from 8 to 4.")
    env = relay_env(fake_model, DRAIN_SECONDS="1", RELAY_IDLE_SECONDS="30")
    stack = Stack(env=env, log_dir=tmp_path, cwd=tmp_path)
    with stack.running():
        second_port = free_port()
        second = subprocess.Popen(
            [sys.executable, "-m", "aura_telephony"],
            env={
                **stack._environment(),
                "PORT": str(second_port),
                "TELEPHONY_METRICS_PORT": str(free_port()),
            },
            cwd=tmp_path,
            stdout=(tmp_path / "second.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            second_url = f"http://{stack.host}:{second_port}"
            eventually(lambda: _healthy(second_url), timeout=30, what="the second replica")
            call_sid = new_call_sid()
            twilio = Twilio(auth_token=TOKEN)
            first = RelayPlayer(stack.base_url, twilio, call_sid)
            steps = iter([Action("speech", "what time do you open on saturday")])

            def decide(heard: Heard) -> Action:
                try:
                    return next(steps)
                except StopIteration:
                    # The answer is in: the replica is stopped while the caller listens.
                    stack.processes["telephony"].send_signal(signal.SIGTERM)
                    return Action("silence")

            outcome = first.play(relay_url(stack, call_sid), "", decide)
            assert json.loads(outcome.handoff) == {"reason": "handover"}
            assert stack.processes["telephony"].wait(timeout=30) == 0
            # Twilio posts the action URL; the load balancer sends it to the live replica.
            params = twilio.call_params(
                call_sid, SessionStatus="ended", HandoffData=outcome.handoff
            )
            path = "/api/voice/relay/ended"
            response = httpx.post(
                second_url + path,
                data=params,
                headers=twilio.headers(second_url, path, params),
                timeout=10,
            )
            assert "<ConversationRelay" in response.text
            assert "welcomeGreeting" not in response.text  # no second welcome
            # The reconnect's URL is issued for the same call, by the replica that answered.
            reconnect = ElementTree.fromstring(response.text).find("Connect/ConversationRelay")
            assert reconnect is not None
            again = RelayPlayer(second_url, twilio, call_sid)
            more = iter([Action("speech", "and on sunday?"), Action("hangup")])
            again.play(reconnect.get("url", ""), "", lambda h: next(more))
            # The second session keeps what was heard as its socket closes, after the hang-up.
            eventually(
                lambda: len(history(stack, call_sid)) >= 5, what="the second session's turns"
            )
            stored = [text for _, text, _ in history(stack, call_sid)]
            assert stored[1:] == [
                "what time do you open on saturday",
                "We are open Saturday from 8 to 4.",
                "and on sunday?",
                "We are open Saturday from 8 to 4.",
            ]
            # The model saw the whole conversation on the second replica.
            assert fake_model.requests[-1].body["messages"][-2]["content"] == (
                "We are open Saturday from 8 to 4."
            )
        finally:
            second.terminate()
            second.wait(timeout=30)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_aura_call_relay_plays_the_script(local_stack: Stack) -> None:
    script = str(SCRIPTS / "bakery-relay.yaml")
    url = local_stack.base_url
    args = ["--url", url, "--token", TOKEN, "--relay", "--quiet", "--script", script]
    assert main(args) == 0


def test_aura_call_relay_says_when_the_deployment_gathers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gathering = Stack(env={"TWILIO_AUTH_TOKEN": TOKEN}, log_dir=tmp_path, cwd=tmp_path)
    with gathering.running():
        assert main(["--url", gathering.base_url, "--token", TOKEN, "--relay"]) == 1
    assert "VOICE_MODE=relay" in capsys.readouterr().err


def test_with_the_llm_down_the_caller_hears_an_apology_and_the_session_goes_on(
    tmp_path: Path, fake_model: FakeOpenAI
) -> None:
    stack = Stack(env=relay_env(fake_model), log_dir=tmp_path, cwd=tmp_path)
    with stack.running():
        stack.stop_service("llm")
        call_sid = new_call_sid()
        player = RelayPlayer(stack.base_url, Twilio(auth_token=TOKEN), call_sid)
        steps = iter([Action("speech", "when are you open"), Action("digits", "5")])
        player.play(relay_url(stack, call_sid), "", lambda heard: next(steps, Action("hangup")))
        assert [h.text for h in player.heard] == [
            phrases.english().APOLOGY,
            phrases.english().KEYPAD_HELP,
        ]


def test_a_session_of_another_account_is_refused(tmp_path: Path, fake_model: FakeOpenAI) -> None:
    ours = "AC" + "1" * 32
    stack = Stack(
        env=relay_env(fake_model, TWILIO_ACCOUNT_SID=ours), log_dir=tmp_path, cwd=tmp_path
    )
    with stack.running():
        call_sid = new_call_sid()
        url = relay_url(stack, call_sid, Twilio(auth_token=TOKEN, account_sid=ours))
        player = RelayPlayer(stack.base_url, Twilio(auth_token=TOKEN), call_sid)
        with player.connect(url) as socket:  # signed, but its setup names another account
            socket.send(json.dumps({"type": "setup", "callSid": call_sid}))
            assert closed_with(socket) == 1008
