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
import urllib.error
import urllib.request
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
        "--ca",
        default=os.environ.get("GRPC_TLS_CA_FILE", ""),
        metavar="FILE",
        help="check the gRPC services over TLS, trusting this CA (default: $GRPC_TLS_CA_FILE)",
    )
    args = parser.parse_args(argv)
    if not args.http and not args.grpc:
        parser.error("nothing to check: give --http or --grpc")
    failed = []
    for url in args.http:
        ok = http_healthy(url, timeout=args.timeout)
        print(f"{'ok  ' if ok else 'FAIL'} http {url}")
        failed += [] if ok else [url]
    for target in args.grpc:
        address, _, service = target.partition("/")
        ok = grpc_serving(address, timeout=args.timeout, service=service, ca_file=args.ca)
        print(f"{'ok  ' if ok else 'FAIL'} grpc {target}")
        failed += [] if ok else [target]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
