"""Twilio's path on the cluster as on a user's: the webhooks, ConversationRelay's
WebSocket and the realtime Media Stream over HTTPS through the ingress controller, signed
for the public URL; and the chart's NetworkPolicies enforced both ways: what they admit
gets through, nothing else.

Run by `make e2e-kind` (AURA_BASE_URL is the ingress's https:// URL there); skipped
without a cluster."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from aura_dev.fake_realtime import FakeOpenAIRealtime, Script
from aura_phone.cli import main as aura_call
from aura_phone.media import StreamPlayer, stream_welcome
from tests.cluster.kube import ROOT, helm_upgrade, kubectl, node_address, pods, ready
from tests.support import eventually
from tests.support.realtime import realtime_fake, until
from tests.support.twilio import TwilioPlayer, new_call_sid

pytestmark = pytest.mark.skipif(
    not os.environ.get("KUBECONFIG") or not os.environ.get("AURA_BASE_URL"),
    reason="needs a cluster: make kind-up kind-load deploy e2e-kind",
)

BAKERY_RELAY = ROOT / "tests" / "e2e" / "scripts" / "bakery-relay.yaml"
OUTSIDER = "aura-outsider"  # a namespace no policy names
SCRAPERS = "monitoring"  # the chart's default metricsFrom: Prometheus's pods there
INGRESS = "traefik"  # the chart's default ingressFrom

# Run in a probe pod: which host:port targets accept a TCP connection (3 s each).
CONNECT = """
import json, socket, sys
reached = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        reached[target] = True
    except OSError:
        reached[target] = False
print(json.dumps(reached))
"""


@dataclass(frozen=True)
class Probe:
    namespace: str
    name: str

    def reaches(self, *targets: str) -> dict[str, bool]:
        command = ("exec", self.name, "--", "python3", "-c", CONNECT, *targets)
        reached: dict[str, bool] = json.loads(kubectl(*command, namespace=self.namespace))
        return reached


def https_only() -> None:
    if not os.environ["AURA_BASE_URL"].startswith("https://"):
        pytest.skip("the release is reached without its ingress (AURA_BASE_URL is not https)")


@pytest.fixture(scope="module")
def targets() -> dict[str, str]:
    """host:port of each port of one ready pod per component: e.g. telephony.http."""
    found = {}
    for component in ("telephony", "llm", "memory"):
        pod = next(p for p in pods(component) if ready(p))
        for port in pod["spec"]["containers"][0]["ports"]:
            found[f"{component}.{port['name']}"] = (
                f"{pod['status']['podIP']}:{port['containerPort']}"
            )
    assert set(found) == {
        "telephony.http",
        "telephony.metrics",
        "llm.grpc",
        "llm.metrics",
        "memory.grpc",
        "memory.metrics",
    }, found
    return found


def probe_pod(name: str, labels: dict[str, str], image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"aura-test": "network-probe", **labels}},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python3", "-c", "import time; time.sleep(3600)"],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def probes() -> Iterator[dict[str, Probe]]:
    """Pods that only make connections, from the telephony image (it has Python): one in a
    namespace no policy names, one in the ingress controller's, a scraper and a pod that is
    not one in the scrapers' namespace."""
    image = kubectl(
        "get",
        "deployment",
        "aura-telephony",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    )
    existing = set(kubectl("get", "namespaces", "-o", "name", namespace="default").split())
    made = [n for n in (OUTSIDER, SCRAPERS) if f"namespace/{n}" not in existing]
    for namespace in made:
        kubectl("create", "namespace", namespace, namespace="default")
    wanted = {
        "outsider": (OUTSIDER, {}),
        "ingress": (INGRESS, {}),
        "scraper": (SCRAPERS, {"app.kubernetes.io/name": "prometheus"}),
        "bystander": (SCRAPERS, {}),
    }
    found = {}
    try:
        for role, (namespace, labels) in wanted.items():
            name = f"aura-probe-{role}"
            kubectl(
                "apply",
                "-f",
                "-",
                namespace=namespace,
                stdin=json.dumps(probe_pod(name, labels, image)),
            )
            found[role] = Probe(namespace, name)
        for probe in found.values():
            kubectl(
                "wait",
                "--for=condition=Ready",
                f"pod/{probe.name}",
                "--timeout=120s",
                namespace=probe.namespace,
            )
        yield found
    finally:
        for probe in found.values():
            kubectl("delete", "pod", probe.name, "--wait=false", namespace=probe.namespace)
        for namespace in made:
            kubectl("delete", "namespace", namespace, "--wait=false", namespace="default")


def admitted_then_refused(
    probe: Probe, targets: dict[str, str], admitted: set[str], what: str
) -> None:
    """`probe` reaches every port in `admitted` (once the policy engine has seen the new
    pod), and then none of the others."""
    admitted_targets = [targets[name] for name in admitted]
    if admitted_targets:
        eventually(
            lambda: all(probe.reaches(*admitted_targets).values()),
            timeout=60,
            what=f"{what} reaching {sorted(admitted)}",
        )
    refused = {name: target for name, target in targets.items() if name not in admitted}
    reached = probe.reaches(*refused.values())
    assert [name for name, target in refused.items() if reached[target]] == [], what


def test_the_ingress_controllers_namespace_reaches_the_webhooks_and_nothing_else(
    probes: dict[str, Probe], targets: dict[str, str]
) -> None:
    admitted_then_refused(
        probes["ingress"], targets, {"telephony.http"}, "a pod in namespace traefik"
    )


def test_only_telephony_reaches_llm_and_memory(targets: dict[str, str]) -> None:
    telephony = next(p for p in pods("telephony") if ready(p))["metadata"]["name"]
    admitted_then_refused(
        Probe("aura", telephony),
        {name: target for name, target in targets.items() if not name.startswith("telephony")},
        {"llm.grpc", "memory.grpc"},
        "telephony",
    )


def test_only_the_scraper_reaches_the_metrics_ports(
    probes: dict[str, Probe], targets: dict[str, str]
) -> None:
    metrics = {name for name in targets if name.endswith(".metrics")}
    admitted_then_refused(probes["scraper"], targets, metrics, "Prometheus in namespace monitoring")
    admitted_then_refused(
        probes["bystander"], targets, set(), "another pod in namespace monitoring"
    )


def test_a_pod_in_another_namespace_reaches_no_port_of_aura(
    probes: dict[str, Probe], targets: dict[str, str]
) -> None:
    outsider = probes["outsider"]
    # Its network works: it reaches what no policy guards (the ingress controller's pod).
    traefik = next(
        p
        for p in json.loads(kubectl("get", "pods", "-o", "json", namespace=INGRESS))["items"]
        if p["metadata"]["name"].startswith("traefik") and ready(p)
    )
    port = traefik["spec"]["containers"][0]["ports"][0]["containerPort"]
    entry = f"{traefik['status']['podIP']}:{port}"
    eventually(lambda: outsider.reaches(entry)[entry], timeout=60, what="the outsider's network")
    admitted_then_refused(outsider, targets, set(), f"a pod in namespace {OUTSIDER}")


def test_the_ingress_serves_only_the_webhooks_over_https_signed_for_the_public_url(
    twilio: TwilioPlayer,
) -> None:
    https_only()
    client = twilio.client
    assert client.get("/health").json()["status"] == "healthy"  # TLS verified (SSL_CERT_FILE)
    # The admin API and the metrics stay inside the cluster.
    assert client.get(f"/api/calls/{new_call_sid()}").status_code == 404
    assert client.get("/metrics").status_code == 404
    # Telephony checks signatures over the public https:// URL, not what it sees behind the
    # proxy: one signed for the Service's own URL is refused.
    params = twilio.call_params(new_call_sid())
    inside = TwilioPlayer(
        client=client, auth_token=twilio.auth_token, public_base_url="http://aura-telephony"
    )
    assert twilio.post("/api/voice", params).status_code == 200
    assert inside.post("/api/voice", params).status_code == 403


def test_a_relay_call_speaks_over_its_websocket_through_the_ingress(
    twilio: TwilioPlayer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The release switched to relay mode: the bakery script's whole call, its
    ConversationRelay WebSocket (wss://, upgraded by the proxy) included."""
    https_only()
    url = str(twilio.client.base_url).rstrip("/")
    helm_upgrade("telephony.voiceMode=relay")
    try:
        args = ["--url", url, "--public-url", twilio.public_base_url, "--token", twilio.auth_token]
        args += ["--from", twilio.caller]
        assert aura_call([*args, "--relay", "--script", str(BAKERY_RELAY)]) == 0
        assert "[script passed" in capsys.readouterr().out
    finally:
        helm_upgrade("telephony.voiceMode=gather")


LOCAL_CLUSTER = ROOT / ".tools" / "cluster"


@pytest.mark.skipif(
    not (LOCAL_CLUSTER / "pids").exists(),
    reason="the cluster of deploy/cluster only: its pods reach a vendor fake on the node",
)
async def test_a_realtime_call_streams_its_audio_through_the_ingress(twilio: TwilioPlayer) -> None:
    """The release switched to realtime mode with OpenAI's Realtime API (a fake of it on
    the node's address): the caller's Media Stream (wss://, through the proxy) carries the
    model's greeting, the caller's words and the model's answer."""
    https_only()
    url = str(twilio.client.base_url).rstrip("/")
    fake = FakeOpenAIRealtime(Script(), host=node_address())
    fake.script.transcripts.append("when do you open on saturday")
    with realtime_fake(fake):
        helm_upgrade(
            "telephony.voiceMode=realtime",
            "llm.provider=openai",
            "llm.openai.apiKey=sk-cluster-fake",
            f"llm.openai.baseUrl={fake.url}/v1",
        )
        try:
            call_sid = new_call_sid()
            twiml = stream_welcome(url, twilio, call_sid)
            assert (
                twiml.url == twilio.public_base_url.replace("https", "wss", 1) + "/api/voice/stream"
            )
            player = StreamPlayer(url, twilio, call_sid)
            await player.open(twiml)
            try:
                await until(lambda: player.playback.received_ms > 0, 60, "the greeting's audio")
                await until(lambda: not player.playing, what="the greeting played")
                greeting_ms = player.playback.received_ms
                await player.say("when do you open on saturday")
                await until(lambda: player.playback.received_ms > greeting_ms, what="the answer")
                assert fake.script.heard == ["when do you open on saturday"]
            finally:
                await player.hang_up()
        finally:
            helm_upgrade(
                "telephony.voiceMode=gather",
                "llm.provider=local",
                "llm.openai.apiKey=",
                "llm.openai.baseUrl=",
            )
