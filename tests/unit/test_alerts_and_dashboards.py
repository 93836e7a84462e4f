"""Alert rules pass promtool's checks and unit tests; dashboards are well-formed Grafana
JSON whose every panel has a query. (That each query returns data is proven against a
real Prometheus in tests/integration/test_observability.py.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.prometheus import tool

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "aura"
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(CHART / "alerts" / "aura.rules.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout


def alert_names() -> list[str]:
    groups = yaml.safe_load((CHART / "alerts" / "aura.rules.yaml").read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"]]


def test_every_alert_has_a_unit_test() -> None:
    tests = yaml.safe_load((ROOT / "tests" / "alerts" / "aura.rules.test.yaml").read_text())
    tested = {case["alertname"] for t in tests["tests"] for case in t["alert_rule_test"]}
    assert set(alert_names()) <= tested


def test_promtool_test_rules() -> None:
    result = subprocess.run(
        [tool("promtool"), "test", "rules", "aura.rules.test.yaml"],
        cwd=ROOT / "tests" / "alerts",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_there_is_an_overview_and_one_dashboard_per_service() -> None:
    assert [d.stem for d in DASHBOARDS] == ["llm", "memory", "overview", "telephony"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_shape(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"].startswith("aura-")
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip()
            assert target["datasource"]["uid"] == "${datasource}"
            # Label sets stay bounded: no per-call or per-caller labels.
            for forbidden in ("call_sid", "CallSid", "caller", "From"):
                assert forbidden not in target["expr"]
