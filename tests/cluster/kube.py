"""The cluster as the tests see it: kubectl (the one `make kind-up` built, else the PATH's)
and helm against KUBECONFIG, and the release's pods."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "aura"
RELEASE = "aura"


def kubectl(*args: str, namespace: str = NAMESPACE, stdin: str | None = None) -> str:
    binary = next(iter(sorted((ROOT / ".tools").glob("k8s-*/bin/kubectl"))), None)
    command = [str(binary) if binary else "kubectl", "-n", namespace, *args]
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, check=True, timeout=120
    ).stdout


def helm_upgrade(*settings: str) -> None:
    """`helm upgrade` of the release with its values and `--set-string` `settings`, waiting
    until every rolled pod is ready and every old one gone (an old pod still answers
    during its preStop pause, and the ingress may send it requests)."""
    command = [os.environ.get("HELM", "helm"), "upgrade", RELEASE, str(ROOT / "deploy/helm/aura")]
    command += ["--namespace", NAMESPACE, "--reuse-values", "--wait", "--timeout", "5m"]
    for setting in settings:
        command += ["--set-string", setting]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=360)

    def settled() -> bool:
        found = json.loads(
            kubectl("get", "pods", "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "json")
        )
        running = [
            p for p in found["items"] if p["status"].get("phase") not in ("Succeeded", "Failed")
        ]
        return all(ready(p) for p in running)

    eventually(settled, timeout=180, what="the release's old pods gone")


def node_address() -> str:
    """The address of the API server, in KUBECONFIG: the local cluster's node's own."""
    server = re.search(r"server: \"?https://([0-9.]+):", Path(os.environ["KUBECONFIG"]).read_text())
    assert server is not None, "KUBECONFIG names no API server by its IPv4 address"
    return server.group(1)


def pods(component: str) -> list[dict[str, Any]]:
    found = json.loads(
        kubectl("get", "pods", "-l", f"app.kubernetes.io/component={component}", "-o", "json")
    )
    items: list[dict[str, Any]] = found["items"]
    return items


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    alive = "deletionTimestamp" not in pod["metadata"]
    return alive and any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
