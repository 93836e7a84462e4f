"""The Helm chart: lint, render every CI values file, validate each rendering against the
Kubernetes schemas of 1.31 to 1.35, assert on the rendered objects, and run checkov."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from aura_llm.knowledge.documents import load_knowledge
from aura_llm.tools import ToolsConfig
from aura_phone.scenarios import load_suite
from aura_telephony import phrases
from aura_telephony.config import Settings as TelephonySettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "aura"
SAMPLE_SUITE = ROOT / "evals" / "sample-bakery"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
KUBERNETES_VERSIONS = ["1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0"]
CRDS = ["monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule"]
SECRET_VALUES = (
    "test-token",
    "test-gemini-key",
    "redis://:secret@",
    "test-admin-token",
    "test-post-call-secret",
)
# `make tools` puts helm and checkov here; `make test` also has them on PATH.
TOOL_DIRS = (ROOT / ".tools" / "bin", ROOT / ".tools" / "checkov" / "bin", ROOT / ".venv" / "bin")


def tool(name: str) -> str:
    found = shutil.which(name, path=os.pathsep.join(map(str, TOOL_DIRS))) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: run `make tools`")
    return found


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("helm"), *args], capture_output=True, text=True, check=check)


@cache
def rendered_text(
    values: Path | None, *sets: str, crds: bool = True, apis: tuple[str, ...] = ()
) -> str:
    args = ["template", "aura", str(CHART), "--namespace", "voice"]
    for api in apis:
        args += ["--api-versions", api]
    if values is not None:
        args += ["-f", str(values)]
    for item in sets:
        args += ["--set", item]
    if crds:
        for crd in CRDS:
            args += ["--api-versions", crd]
    return helm(*args).stdout


def render(
    values: Path | None = None, *sets: str, crds: bool = True, apis: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    text = rendered_text(values, *sets, crds=crds, apis=apis)
    return [d for d in yaml.safe_load_all(text) if d]


def ci(name: str) -> Path:
    return CHART / "ci" / f"{name}-values.yaml"


def find(objects: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    assert len(matches) == 1, f"{kind} *{suffix}: {[o['metadata']['name'] for o in matches]}"
    return matches[0]


def env(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container["env"]}


def containers(
    objects: list[dict[str, Any]],
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for obj in objects:
        if obj["kind"] == "Deployment":
            spec = obj["spec"]["template"]["spec"]
        elif obj["kind"] == "Pod":
            spec = obj["spec"]
        else:
            continue
        for container in spec["containers"]:
            yield obj["metadata"]["name"], spec, container


def test_ci_values_cover_the_deployments_we_promise() -> None:
    assert {p.name for p in CI_VALUES} >= {
        "default-values.yaml",
        "openai-existing-secret-values.yaml",
        "gemini-redis-ingress-values.yaml",
        "monitoring-values.yaml",
        "grpc-tls-values.yaml",
        "relay-values.yaml",
        "knowledge-values.yaml",
        "languages-values.yaml",
    }


def test_helm_lint_strict() -> None:
    result = helm("lint", "--strict", str(CHART), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for values in CI_VALUES:
        result = helm("lint", "--strict", str(CHART), "-f", str(values), check=False)
        assert result.returncode == 0, f"{values.name}: {result.stdout}{result.stderr}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_renderings_validate_strictly(values: Path, version: str, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(rendered_text(values))
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, str(manifest)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Only the Prometheus Operator's CRDs may be unknown to the validator.
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("WARN"):
            assert "ServiceMonitor" in line or "PrometheusRule" in line, line


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_every_container_is_hardened(values: Path) -> None:
    objects = render(values)
    seen = 0
    for name, pod, container in containers(objects):
        seen += 1
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        assert security["runAsNonRoot"] is True, name
        assert not container["image"].endswith(":latest"), name
        assert container["resources"]["limits"]["memory"], name
    assert seen == 5  # three services and the helm test pods (health, aura-eval)
    for obj in objects:
        assert obj["metadata"].get("namespace", "voice") == "voice"


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_secrets_are_referenced_never_inlined(values: Path) -> None:
    objects = render(values)
    for name, _, container in containers(objects):
        for variable in container.get("env", []):
            for secret in SECRET_VALUES:
                assert secret not in str(variable.get("value", "")), (
                    f"{name} inlines {variable['name']}"
                )
    for obj in objects:
        if obj["kind"] in ("ConfigMap", "Deployment"):
            for secret in SECRET_VALUES:
                assert secret not in json.dumps(obj), f"{obj['kind']} {obj['metadata']['name']}"


def test_probes() -> None:
    objects = render(ci("default"))
    telephony = find(objects, "Deployment", "-telephony")["spec"]["template"]["spec"]["containers"][
        0
    ]
    # Readiness fails from the first SIGTERM on, while liveness holds.
    assert telephony["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert telephony["livenessProbe"]["httpGet"]["path"] == "/health"
    for component, port, service in (
        ("llm", 50051, "aura.llm.v1.LlmService"),
        ("memory", 50052, "aura.memory.v1.MemoryService"),
    ):
        container = find(objects, "Deployment", f"-{component}")["spec"]["template"]["spec"][
            "containers"
        ][0]
        assert container["livenessProbe"]["grpc"] == {"port": port}
        assert container["readinessProbe"]["grpc"] == {"port": port, "service": service}
        assert container["startupProbe"]["grpc"]["port"] == port


@pytest.mark.parametrize("budget", [8, 14])
def test_a_stopping_telephony_pod_outlasts_its_longest_turn(budget: int) -> None:
    objects = render(ci("default"), f"telephony.turnBudgetSeconds={budget}")
    pod = find(objects, "Deployment", "-telephony")["spec"]["template"]["spec"]
    pause = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pause >= 5
    drain = env(find(objects, "Deployment", "-telephony"))["DRAIN_SECONDS"]["value"]
    # preStop, the relay drain, then the service's own SIGTERM wait (the budget and 2 s).
    assert pod["terminationGracePeriodSeconds"] > pause + float(drain) + budget + 2


def test_relay_mode_and_autoscaling_on_live_calls() -> None:
    objects = render(ci("relay"), crds=False)
    variables = env(find(objects, "Deployment", "-telephony"))
    assert variables["VOICE_MODE"]["value"] == "relay"
    assert variables["RELAY_VOICE"]["value"] == "en-US-Journey-O"
    assert variables["DRAIN_SECONDS"]["value"] == "30"
    hpa = find(objects, "HorizontalPodAutoscaler", "-telephony")
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource"]  # no adapter, no Pods
    with_adapter = render(ci("relay"), crds=False, apis=("custom.metrics.k8s.io/v1beta1",))
    metrics = find(with_adapter, "HorizontalPodAutoscaler", "-telephony")["spec"]["metrics"]
    assert metrics[1] == {
        "type": "Pods",
        "pods": {
            "metric": {"name": "aura_relay_sessions"},
            "target": {"type": "AverageValue", "averageValue": "200"},
        },
    }


def test_grpc_over_tls_with_a_given_token() -> None:
    objects = render(ci("grpc-tls"))
    assert find(objects, "Secret")["stringData"]["GRPC_AUTH_TOKEN"] == "a-shared-grpc-token"
    for component, serves in (("telephony", False), ("llm", True), ("memory", True)):
        pod = find(objects, "Deployment", f"-{component}")["spec"]["template"]["spec"]
        variables = env(find(objects, "Deployment", f"-{component}"))
        assert variables["GRPC_TLS_CA_FILE"]["value"] == "/etc/aura/grpc-tls/ca.crt"
        assert ("GRPC_TLS_CERT_FILE" in variables) is serves
        assert {"name": "grpc-tls", "secret": {"secretName": "aura-grpc-tls"}} in pod["volumes"]
        if serves:
            # kubelet's gRPC probes cannot speak TLS: aura-probe does, with the CA.
            probe = pod["containers"][0]["readinessProbe"]["exec"]["command"]
            assert probe[0] == "/opt/aura/bin/aura-probe"
            assert probe[-2:] == ["--ca", "/etc/aura/grpc-tls/ca.crt"]
    test_pod = find(objects, "Pod", "-test")
    assert test_pod["spec"]["containers"][0]["args"][-2:] == ["--ca", "/etc/aura/grpc-tls/ca.crt"]


def test_default_is_local_in_memory_with_its_own_secret() -> None:
    objects = render(ci("default"))
    llm = env(find(objects, "Deployment", "-llm"))
    assert llm["AI_PROVIDER"]["value"] == "local"
    assert llm["AI_FALLBACK_PROVIDERS"]["value"] == ""
    memory = find(objects, "Deployment", "-memory")
    assert env(memory)["MEMORY_STORE"]["value"] == "memory"
    assert memory["spec"]["replicas"] == 1
    assert memory["spec"]["strategy"]["type"] == "Recreate"
    secret = find(objects, "Secret")
    # A gRPC token is generated when none is given (and kept across upgrades by lookup).
    generated = secret["stringData"].pop("GRPC_AUTH_TOKEN")
    assert len(generated) == 40
    assert secret["stringData"] == {"TWILIO_AUTH_TOKEN": "test-token"}
    for component in ("telephony", "llm", "memory"):
        variables = env(find(objects, "Deployment", f"-{component}"))
        assert variables["GRPC_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == (
            "GRPC_AUTH_TOKEN"
        )
        assert variables["GRPC_REFLECTION"]["value"] == "false"
        assert "GRPC_TLS_CA_FILE" not in variables
    token = env(find(objects, "Deployment", "-telephony"))["TWILIO_AUTH_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert not [
        o for o in objects if o["kind"] in ("Ingress", "ServiceMonitor", "HorizontalPodAutoscaler")
    ]


def test_openai_with_an_existing_secret() -> None:
    objects = render(ci("openai-existing-secret"))
    assert not [o for o in objects if o["kind"] == "Secret"]
    llm = env(find(objects, "Deployment", "-llm"))
    assert llm["AI_PROVIDER"]["value"] == "openai"
    assert llm["AI_FALLBACK_PROVIDERS"]["value"] == "local"
    assert llm["OPENAI_BASE_URL"]["value"] == "http://vllm.models.svc:8000/v1"
    assert llm["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "aura-credentials",
        "key": "OPENAI_API_KEY",
        "optional": True,
    }
    # The tools file reaches the pod as a ConfigMap the service parses, its signing secret
    # and the header's key from the operator's Secret.
    assert llm["TOOLS_PATH"]["value"] == "/etc/aura/tools/tools.yaml"
    assert llm["MAX_TOOL_ROUNDS"]["value"] == "3"
    assert llm["TOOLS_SIGNING_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "aura-credentials"
    assert llm["SHOP_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "SHOP_API_KEY"
    tools = ToolsConfig.parse(
        yaml.safe_load(find(objects, "ConfigMap", "-tools")["data"]["tools.yaml"])
    )
    assert [t.name for t in tools.http_tools] == ["order_status"]
    assert tools.departments["manager"] == "+15550001235"
    telephony = env(find(objects, "Deployment", "-telephony"))
    assert telephony["PUBLIC_BASE_URL"]["value"] == "https://calls.example.com"
    assert telephony["TRANSFER_NUMBER"]["value"] == "+15550001234"
    assert telephony["TWILIO_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "aura-credentials"


def test_gemini_with_redis_and_an_ingress() -> None:
    objects = render(ci("gemini-redis-ingress"))
    llm = find(objects, "Deployment", "-llm")
    variables = env(llm)
    assert variables["AI_PROVIDER"]["value"] == "gemini"
    assert variables["GEMINI_MODEL"]["value"] == "gemini-2.5-flash"
    assert variables["GEMINI_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "GEMINI_API_KEY"
    assert variables["KNOWLEDGE_BASE_PATH"]["value"] == "/etc/aura/knowledge/knowledge.yaml"
    knowledge = find(objects, "ConfigMap", "-knowledge")
    assert "Elm Clinic" in knowledge["data"]["knowledge.yaml"]
    memory = find(objects, "Deployment", "-memory")
    assert memory["spec"]["replicas"] == 3
    assert "strategy" not in memory["spec"]
    assert env(memory)["REDIS_URL"]["valueFrom"]["secretKeyRef"]["key"] == "REDIS_URL"
    assert find(objects, "PodDisruptionBudget", "-memory")["spec"]["minAvailable"] == 1
    ingress = find(objects, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert ingress["spec"]["tls"] == [{"hosts": ["calls.example.com"], "secretName": "aura-tls"}]
    paths = [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]]
    assert paths == ["/api/voice", "/health"]  # neither /metrics nor the admin API
    telephony = env(find(objects, "Deployment", "-telephony"))
    assert telephony["OUTBOUND_ALLOWED_PREFIXES"]["value"] == "+1555,+4420"
    assert telephony["POST_CALL_WEBHOOK_URL"]["value"] == "https://clinic.example/aura/calls"
    secret_key = telephony["POST_CALL_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]["key"]
    assert secret_key == "POST_CALL_WEBHOOK_SECRET"
    assert find(objects, "Secret")["stringData"]["POST_CALL_WEBHOOK_SECRET"]
    assert telephony["PUBLIC_BASE_URL"]["value"] == "https://calls.example.com"


def test_monitoring_objects_need_the_crds_and_their_switches() -> None:
    with_crds = render(ci("monitoring"))
    monitors = [o for o in with_crds if o["kind"] == "ServiceMonitor"]
    assert sorted(m["metadata"]["name"] for m in monitors) == [
        "aura-llm",
        "aura-memory",
        "aura-telephony",
    ]
    assert all(m["metadata"]["labels"]["release"] == "kube-prometheus-stack" for m in monitors)
    rule = find(with_crds, "PrometheusRule")
    assert {r["alert"] for r in rule["spec"]["groups"][0]["rules"]} == {
        "AuraTurnLatencySLOBurn",
        "AuraProviderFailingOver",
        "AuraWebhook5xx",
        "AuraServiceDown",
        "AuraMemoryStoreErrors",
        "AuraWebhookRejections",
        "AuraRelayFirstSentenceSlow",
        "AuraToolFailing",
        "AuraPostCallWebhooksBacklog",
        "AuraRealtimeFallingBack",
    }
    dashboards = [o for o in with_crds if o["metadata"]["name"].startswith("aura-dashboard-")]
    assert len(dashboards) == 4
    for dashboard in dashboards:
        assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
        (content,) = dashboard["data"].values()
        assert json.loads(content)["uid"].startswith("aura-")
    llm = env(find(with_crds, "Deployment", "-llm"))
    assert (
        llm["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"]
        == "http://otel-collector.observability.svc:4317"
    )
    assert llm["OTEL_SERVICE_NAME"]["value"] == "aura-llm"
    assert len([o for o in with_crds if o["kind"] == "HorizontalPodAutoscaler"]) == 2
    assert "replicas" not in find(with_crds, "Deployment", "-telephony")["spec"]

    without_crds = render(ci("monitoring"), crds=False)
    assert not [o for o in without_crds if o["kind"] in ("ServiceMonitor", "PrometheusRule")]


def test_network_policies_admit_only_whom_they_must() -> None:
    objects = render(ci("default"))
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    assert set(policies) == {"aura-telephony", "aura-llm", "aura-memory", "aura-test"}
    ingress = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}]
    grpc_clients = [
        {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/instance": "aura", "aura-grpc-client": "true"}
            }
        }
    ]
    scrapers = [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]

    def rule(sources: list[dict[str, Any]], port: int) -> dict[str, Any]:
        return {"from": sources, "ports": [{"port": port, "protocol": "TCP"}]}

    # Every rule of every policy: the webhooks are open to the ingress controller only, the
    # gRPC ports to telephony only, and only the metrics ports to the scrapers.
    tests = [
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "aura",
                    "app.kubernetes.io/instance": "aura",
                    "app.kubernetes.io/component": "test",
                }
            }
        }
    ]
    assert policies["aura-telephony"]["ingress"] == [
        rule(ingress, 8000),
        rule(tests, 8000),  # helm test's health check and aura-eval's calls
        rule(scrapers, 9466),
    ]
    assert policies["aura-llm"]["ingress"] == [rule(grpc_clients, 50051), rule(scrapers, 9464)]
    assert policies["aura-memory"]["ingress"] == [rule(grpc_clients, 50052), rule(scrapers, 9465)]
    telephony = find(objects, "Deployment", "-telephony")["spec"]["template"]["spec"]
    ports = {p["name"]: p["containerPort"] for p in telephony["containers"][0]["ports"]}
    assert ports == {"http": 8000, "metrics": 9466}
    service = find(objects, "Service", "aura-telephony")["spec"]["ports"]
    assert [(p["name"], p["targetPort"]) for p in service] == [
        ("http", "http"),
        ("metrics", "metrics"),
    ]
    assert policies["aura-test"]["ingress"] == []
    clients = {
        o["metadata"]["name"]
        for o in objects
        if o["kind"] in ("Deployment", "Pod")
        and (
            o["spec"]
            .get("template", {})
            .get("metadata", o["metadata"])["labels"]
            .get("aura-grpc-client")
        )
    }
    assert clients == {"aura-telephony", "aura-test"}


def test_helm_test_hook_checks_all_three_services() -> None:
    pod = find(render(ci("default")), "Pod", "-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    args = pod["spec"]["containers"][0]["args"]
    assert "http://aura-telephony:80/health" in args
    assert "aura-llm:50051/aura.llm.v1.LlmService" in args
    assert "aura-memory:50052/aura.memory.v1.MemoryService" in args


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (("llm.provider=openai",), "/llm/openai/apiKey"),
        (("llm.provider=gemini",), "/llm/gemini/apiKey"),
        (("llm.fallbackProviders={openai}",), "/llm/openai/apiKey"),
        (("memory.replicas=2",), "/memory/replicas"),
        (("memory.store=redis",), "/memory/redis/url"),
        (("ingress.enabled=true",), "/ingress/host"),
        (("image.tag=latest",), "/image/tag"),
        (("llm.provider=claude",), "/llm/provider"),
        (("surprise=1",), "surprise"),
        (("telephony.recording.enabled=true",), "/twilio/accountSid"),
        (("telephony.recording.optOutKey=0",), "/telephony/recording/optOutKey"),
    ],
)
def test_schema_refuses_broken_values(sets: tuple[str, ...], complaint: str) -> None:
    args = ["template", "aura", str(CHART)]
    for item in sets:
        args += ["--set", item]
    result = helm(*args, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


def test_notes_give_the_webhook_url() -> None:
    result = helm(
        "install", "aura", str(CHART), "--dry-run=client", "-f", str(ci("gemini-redis-ingress"))
    )
    assert "POST https://calls.example.com/api/voice" in result.stdout
    assert "POST https://calls.example.com/api/voice/status" in result.stdout


def test_checkov_finds_nothing_unexplained() -> None:
    result = subprocess.run(
        [
            tool("checkov"),
            "-d",
            str(CHART),
            "--framework",
            "helm",
            "--skip-download",
            "--config-file",
            str(CHART / ".checkov.yaml"),
            "--compact",
            "-o",
            "json",
        ],
        # checkov renders the chart with the helm it finds on PATH.
        env={**os.environ, "PATH": f"{Path(tool('helm')).parent}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip(), result.stderr
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    assert not failed, [(c["check_id"], c["resource"]) for c in failed]
    assert sum(r["summary"]["passed"] for r in reports) > 100
    for r in reports:
        for skipped in r["results"]["skipped_checks"]:
            assert skipped["check_result"].get("suppress_comment"), (
                f"{skipped['check_id']} skipped without a reason"
            )


def test_a_knowledge_directory_inline_reaches_the_pod_and_loads(tmp_path: Path) -> None:
    objects = render(ci("knowledge"))
    llm = find(objects, "Deployment", "-llm")
    variables = env(llm)
    assert variables["KNOWLEDGE_BASE_PATH"]["value"] == "/etc/aura/knowledge"
    assert (variables["KNOWLEDGE_TOP_K"]["value"], variables["KNOWLEDGE_MAX_CHARS"]["value"]) == (
        "6",
        "6000",
    )
    assert variables["GROUNDING"]["value"] == "strict"
    files = find(objects, "ConfigMap", "-knowledge")["data"]
    assert sorted(files) == ["appointments.md", "clinic.yaml", "parking.txt"]
    # Mounted whole, not by subPath, so that an update reaches the running pod; and no
    # checksum annotation, so that it does not restart it either.
    spec = llm["spec"]["template"]["spec"]
    [mount] = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "knowledge"]
    assert mount == {"name": "knowledge", "mountPath": "/etc/aura/knowledge", "readOnly": True}
    assert "checksum/knowledge" not in llm["spec"]["template"]["metadata"]["annotations"]
    # What the chart renders is knowledge the service loads.
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    knowledge = load_knowledge(tmp_path)
    assert knowledge.business_name == "Elm Clinic"
    assert "appointments.md#vaccinations" in {p.id for p in knowledge.passages}


def test_an_existing_knowledge_configmap_is_mounted_as_the_directory() -> None:
    objects = render(None, "llm.knowledgeConfigMap=clinic-docs")
    llm = find(objects, "Deployment", "-llm")
    assert env(llm)["KNOWLEDGE_BASE_PATH"]["value"] == "/etc/aura/knowledge"
    [volume] = [v for v in llm["spec"]["template"]["spec"]["volumes"] if v["name"] == "knowledge"]
    assert volume["configMap"]["name"] == "clinic-docs"
    assert not [o for o in objects if o["metadata"]["name"].endswith("-knowledge")]
    # Without any: the sample in the image, and the guard flags.
    default = env(find(render(), "Deployment", "-llm"))
    assert "KNOWLEDGE_BASE_PATH" not in default
    assert default["GROUNDING"]["value"] == "flag"


@pytest.mark.parametrize(
    ("sets", "says"),
    [
        (("llm.knowledgeConfigMap=docs", "llm.knowledgeBase=x: 1"), "set only one"),
        (("llm.grounding=sometimes",), "grounding"),
        (("llm.knowledge.notes\\.exe=hi",), "notes.exe"),
    ],
)
def test_knowledge_values_are_checked(sets: tuple[str, ...], says: str) -> None:
    args = ["template", "aura", str(CHART)]
    for item in sets:
        args += ["--set", item]
    result = helm(*args, check=False)
    assert result.returncode != 0
    assert says in result.stderr


def test_two_languages_reach_both_services_and_the_operators_lines_load(tmp_path: Path) -> None:
    objects = render(ci("languages"))
    telephony = find(objects, "Deployment", "-telephony")
    variables = env(telephony)
    assert variables["LANGUAGES"]["value"] == "en-US,es-ES"
    assert env(find(objects, "Deployment", "-llm"))["LANGUAGES"]["value"] == "en-US,es-ES"
    voices = json.loads(variables["LANGUAGE_VOICES"]["value"])
    assert voices["es-ES"]["say"] == "Polly.Conchita"
    assert variables["PHRASES_PATH"]["value"] == "/etc/aura/phrases"
    # A change of catalogue rolls the pods: a bad one stops a new pod, not running calls.
    assert "checksum/phrases" in telephony["spec"]["template"]["metadata"]["annotations"]
    files = find(objects, "ConfigMap", "-phrases")["data"]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    settings = TelephonySettings.model_validate(
        {"LANGUAGES": "en-US,es-ES", "LANGUAGE_VOICES": voices, "PHRASES_PATH": str(tmp_path)}
    )
    book = phrases.from_settings(settings)
    assert book("es-ES").FAREWELL == "Gracias por llamar a la clínica. ¡Hasta pronto!"
    assert book("es-ES").voices.say == "Polly.Conchita"


def test_recording_reaches_telephony_and_its_settings_load(tmp_path: Path) -> None:
    values = {
        "twilio": {"accountSid": "AC" + "1" * 32},
        "telephony": {
            "recording": {
                "enabled": True,
                "notice": "Calls are recorded; press {digit} to opt out.",
                "optOutKey": "8",
            }
        },
    }
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    objects = render(tmp_path / "values.yaml")
    variables = env(find(objects, "Deployment", "-telephony"))
    chosen = {
        name: variables[name]["value"]
        for name in ("CALL_RECORDING", "RECORDING_NOTICE", "RECORDING_OPT_OUT_KEY")
    }
    assert chosen["CALL_RECORDING"] == "on"
    credentials = {"TWILIO_ACCOUNT_SID": variables["TWILIO_ACCOUNT_SID"]["value"]}
    credentials["TWILIO_AUTH_TOKEN"] = "from-the-secret"
    settings = TelephonySettings.model_validate({**chosen, **credentials})
    assert (
        phrases.from_settings(settings)().notice("8") == "Calls are recorded; press 8 to opt out."
    )
    # Off by default, and no notice of the chart's own.
    default = env(find(render(), "Deployment", "-telephony"))
    assert default["CALL_RECORDING"]["value"] == "off"
    assert "RECORDING_NOTICE" not in default


def test_helm_test_plays_the_chosen_suite_with_the_releases_tokens(tmp_path: Path) -> None:
    objects = render(ci("default"))
    pod = find(objects, "Pod", "-eval")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["/opt/aura/bin/aura-eval"]
    assert container["args"] == ["--suite", "/etc/aura/evals", "--min-pass-rate", "1"]
    variables = {e["name"]: e for e in container["env"]}
    assert variables["AURA_BASE_URL"]["value"] == "http://aura-telephony:80"
    for secret in ("TWILIO_AUTH_TOKEN", "ADMIN_API_TOKEN"):
        assert variables[secret]["valueFrom"]["secretKeyRef"]["key"] == secret
    smoke = find(objects, "ConfigMap", "-evals")["data"]
    assert sorted(smoke) == sorted(p.name for p in (CHART / "files/evals/smoke").glob("*.yaml"))
    # Every shipped suite loads as aura-eval reads it; the chart's sample-bakery suite is
    # the sample suite's smoke scenarios, as they are.
    for name, text in smoke.items():
        (tmp_path / name).write_text(text)
    assert len(load_suite(tmp_path)) == len(smoke)
    chosen = render(ci("default"), "tests.eval.suite=sample-bakery")
    bakery = find(chosen, "ConfigMap", "-evals")["data"]
    sample = {s.path.split("/")[-1] for s in load_suite(SAMPLE_SUITE, ("smoke",))}
    assert set(bakery) == sample
    for name, text in bakery.items():
        assert text == (SAMPLE_SUITE / name).read_text()
    # The operator's own scenarios join the suite; without the switch there is no pod.
    own = tmp_path / "own.yaml"
    own.write_text(
        yaml.safe_dump(
            {
                "tests": {
                    "eval": {
                        "scenarios": {"hours.yaml": {"name": "Hours", "steps": [{"say": "hi"}]}}
                    }
                }
            }
        )
    )
    with_own = find(render(own), "ConfigMap", "-evals")["data"]
    assert yaml.safe_load(with_own["hours.yaml"]) == {"name": "Hours", "steps": [{"say": "hi"}]}
    assert not [
        o
        for o in render(None, "tests.eval.enabled=false")
        if o["metadata"]["name"].endswith("-eval")
    ]
