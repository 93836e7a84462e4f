"""`aura-probe`: checks that Aura's services answer their health checks. Used by the Helm
chart's `helm test` hook and by container health checks.

  aura-probe --http http://aura-telephony/health --grpc aura-llm:50051 \\
             --grpc aura-memory:50052/aura.memory.v1.MemoryService
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def grpc_serving(address: str, timeout: float = 1.0, service: str = "", ca_file: str = "") -> bool:
    """True when the gRPC health service at `address` reports `service` SERVING; over TLS
    when `ca_file` names the CA that signed the server's certificate."""
    channel = (
        grpc.secure_channel(address, grpc.ssl_channel_credentials(Path(ca_file).read_bytes()))
        if ca_file
        else grpc.insecure_channel(address)
    )
    with channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # typeshed's stub lists no methods
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def http_healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (our own URL)
            return bool(json.load(response).get("status") == "healthy")
    except (OSError, ValueError, urllib.error.URLError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aura-probe", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--http",
        action="append",
        default=[],
        metavar="URL",
        help='a /health URL that must answer {"status": "healthy"}',
    )
    parser.add_argument(
        "--grpc",
        action="append",
        default=[],
        metavar="HOST:PORT[/SERVICE]",
        help="a gRPC health service that must report SERVING",
    )
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument(
        "--within",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="retry a failing check until this many seconds have passed (a Service's routes "
        "can lag a moment behind its pods being ready)",
    )
    parser.add_argument(
        "--ca",
        default=os.environ.get("GRPC_TLS_CA_FILE", ""),
        metavar="FILE",
        help="check the gRPC services over TLS, trusting this CA (default: $GRPC_TLS_CA_FILE)",
    )
    args = parser.parse_args(argv)
    if not args.http and not args.grpc:
        parser.error("nothing to check: give --http or --grpc")
    checks: list[tuple[str, str, Callable[[], bool]]] = [
        ("http", url, partial(http_healthy, url, args.timeout)) for url in args.http
    ]
    for target in args.grpc:
        address, _, service = target.partition("/")
        checks.append(
            ("grpc", target, partial(grpc_serving, address, args.timeout, service, args.ca))
        )
    deadline = time.monotonic() + args.within
    failed = 0
    for kind, target, check in checks:
        ok = check()
        while not ok and time.monotonic() < deadline:
            time.sleep(1.0)  # a retry interval against a live service, not synchronisation
            ok = check()
        print(f"{'ok  ' if ok else 'FAIL'} {kind} {target}")
        failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
