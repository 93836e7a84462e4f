"""The tools file (TOOLS_PATH): the contract's shape parses, and a bad file stops the
service at start with an error naming the tool and the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from aura_common.signing import sign
from aura_llm.config import SAMPLE_TOOLS
from aura_llm.tools import ToolsConfig, ToolsError, build_toolbox

CONTRACT = """
departments:                      # the numbers transfer_call may dial, by name
  manager: "+15005550011"
  orders: "+15005550012"
tools:
  - builtin: transfer_call
  - builtin: end_call
  - builtin: take_message
  - name: order_status
    description: Look up an order by its number and say where it is.
    parameters:                   # JSON Schema of the arguments
      type: object
      properties: {order_number: {type: string}}
      required: [order_number]
    http: {url: "https://shop.example/aura/order-status", timeout_seconds: 3}
  - mcp: {url: "http://mcp.internal:8000/mcp"}
"""


def test_the_contract_shape_parses() -> None:
    config = ToolsConfig.parse(yaml.safe_load(CONTRACT))
    assert config.departments == {"manager": "+15005550011", "orders": "+15005550012"}
    assert [t.builtin for t in config.builtins] == ["transfer_call", "end_call", "take_message"]
    [http] = config.http_tools
    assert (http.name, str(http.http.url), http.http.timeout_seconds) == (
        "order_status",
        "https://shop.example/aura/order-status",
        3.0,
    )
    assert [str(m.url) for m in config.mcp_servers] == ["http://mcp.internal:8000/mcp"]


def test_the_sample_file_parses_and_builds() -> None:
    import httpx

    config = ToolsConfig.load(SAMPLE_TOOLS)
    box = build_toolbox(config, "", httpx.AsyncClient())
    assert [s.name for s in box.specs()] == ["transfer_call", "end_call", "take_message"]
    assert ToolsConfig.load(None).tools == []  # TOOLS_PATH set empty: no tools


def bad(tools: list[Any], departments: Any = None) -> str:
    with pytest.raises(ToolsError) as caught:
        ToolsConfig.parse({"departments": departments or {}, "tools": tools}, source="tools.yaml")
    return str(caught.value)


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        ([{"builtin": "launch_rockets"}], "tools[0] (launch_rockets): builtin: Input should be"),
        (
            [{"name": "order_status", "parameters": {"type": "object"}, "http": {"url": "x"}}],
            "tools[0] (order_status): description: Field required",
        ),
        (
            [{"name": "order_status", "description": "d", "http": {"url": "ftp://shop"}}],
            "tools[0] (order_status): http.url: URL scheme should be",
        ),
        (
            [
                {
                    "name": "order_status",
                    "description": "d",
                    "parameters": {"type": "object", "properties": {"n": {"type": "strng"}}},
                    "http": {"url": "https://shop.example/x"},
                }
            ],
            "tools[0] (order_status): parameters: Value error, not a valid JSON Schema",
        ),
        (
            [{"name": "has space", "description": "d", "http": {"url": "https://s.example"}}],
            "tools[0] (has space): name: String should match pattern",
        ),
        ([{"builtin": "end_call", "mcp": {"url": "http://m"}}], "exactly one of builtin, http"),
        ([{"builtin": "end_call"}, {"builtin": "end_call"}], "named more than once: end_call"),
        ([{"mcp": {"url": "http://m", "refresh_seconds": 1}}], "tools[0]: mcp.refresh_seconds"),
    ],
)
def test_a_bad_tool_is_named_with_its_field(tools: list[Any], expected: str) -> None:
    message = bad(tools)
    assert message.startswith("tools.yaml: ")
    assert expected in message


def test_a_department_needs_a_phone_number() -> None:
    assert "departments.manager: String should match pattern" in bad([], {"manager": "call Bob"})


def test_the_environment_must_hold_what_the_file_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ToolsConfig.parse(
        {
            "tools": [
                {
                    "name": "order_status",
                    "description": "d",
                    "http": {"url": "https://s.example", "headers": {"X-Api-Key": "SHOP_KEY"}},
                }
            ]
        }
    )
    monkeypatch.delenv("SHOP_KEY", raising=False)
    with pytest.raises(ToolsError) as caught:
        config.check_environment("")
    assert "HTTP tools need TOOLS_SIGNING_SECRET" in str(caught.value)
    assert "tools[0] (order_status): header X-Api-Key needs the environment variable SHOP_KEY" in (
        str(caught.value)
    )
    monkeypatch.setenv("SHOP_KEY", "k")
    config.check_environment("secret")  # all there


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # The README's receiver recipe, checked against a value computed independently.
    import hashlib
    import hmac

    body = b'{"call_id":"CA1","tool":"order_status","arguments":{}}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", "1700000000", body) == f"sha256={expected}"


def test_a_bad_tools_file_stops_the_llm_service_at_start(tmp_path: Path) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text("tools:\n  - builtin: launch_rockets\n")
    done = subprocess.run(
        [sys.executable, "-m", "aura_llm"],
        env={"TOOLS_PATH": str(path), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "tools[0] (launch_rockets): builtin" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_documented_receiver_accepts_our_signature_and_refuses_tampering() -> None:
    import re
    import time

    readme = (Path(__file__).resolve().parents[3] / "docs" / "tools.md").read_text()
    [code] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "def from_aura" in b]
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 (the documentation's own example)
    from_aura = namespace["from_aura"]
    body = b'{"call_id":"CA1","tool":"order_status","arguments":{"order_number":"A17"}}'
    now = str(int(time.time()))
    headers = {"X-Aura-Timestamp": now, "X-Aura-Signature": sign("s3cret", now, body)}
    assert from_aura("s3cret", headers, body)
    assert not from_aura("s3cret", headers, body.replace(b"A17", b"A18"))
    assert not from_aura("other", headers, body)
    stale = str(int(time.time()) - 3600)
    old = {"X-Aura-Timestamp": stale, "X-Aura-Signature": sign("s3cret", stale, body)}
    assert not from_aura("s3cret", old, body)
