"""Runs the three services as local processes: `make run` in the foreground, and the
integration tests and benchmark on free loopback ports.

Children are real processes (`python -m aura_<service>`) configured through their
environment. They get SIGTERM when the runner stops, and also when it dies without
stopping them (Linux parent-death signal), so no service is left running behind."""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from aura_common.probe import grpc_serving, http_healthy
from aura_llm.config import Settings as LlmSettings
from aura_memory.config import Settings as MemorySettings
from aura_telephony.config import Settings as TelephonySettings

SERVICES = ("memory", "llm", "telephony")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, below the kernel's ephemeral range: a port the kernel hands out
    (bind to 0) may be taken again by any outgoing connection before the service that was
    given it binds it; a random one below that range is taken only by another pick."""
    low = _ephemeral_low()
    for _ in range(100):
        port = random.randrange(10000, max(10001, low))  # noqa: S311 (not a secret)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def _die_with_parent() -> list[str]:
    # setpriv (util-linux) sets the parent-death signal before exec; a preexec_fn could
    # deadlock because gRPC health checks leave threads in this process.
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


@dataclass
class Stack:
    """The three services on `host`; ports default to free ones."""

    host: str = "127.0.0.1"
    telephony_host: str | None = None
    telephony_port: int = field(default_factory=free_port)
    llm_port: int = field(default_factory=free_port)
    memory_port: int = field(default_factory=free_port)
    telephony_metrics_port: int = field(default_factory=free_port)
    llm_metrics_port: int = field(default_factory=free_port)
    memory_metrics_port: int = field(default_factory=free_port)
    env: Mapping[str, str] = field(default_factory=dict)
    log_dir: Path | None = None  # None: children write to this process's stdout/stderr
    cwd: Path | None = None  # where children look for `.env`
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False)
    _logs: list[IO[bytes]] = field(default_factory=list, init=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.telephony_port}"

    @property
    def metrics_urls(self) -> dict[str, str]:
        return {
            "telephony": f"http://{self.host}:{self.telephony_metrics_port}/metrics",
            "llm": f"http://{self.host}:{self.llm_metrics_port}/metrics",
            "memory": f"http://{self.host}:{self.memory_metrics_port}/metrics",
        }

    def metrics(self, service: str) -> str:
        """The Prometheus exposition `service` serves now."""
        url = self.metrics_urls[service]
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
            return str(response.read().decode())

    def grpc_calls(self) -> Counter[str]:
        """The gRPC calls telephony has made so far, by method (its client metrics)."""
        calls: Counter[str] = Counter()
        for method, value in re.findall(
            r'^aura_grpc_client_handled_total\{.*grpc_method="(\w+)".*\} (\S+)$',
            self.metrics("telephony"),
            re.M,
        ):
            calls[method] += int(float(value))
        return calls

    @property
    def llm_address(self) -> str:
        return f"{self.host}:{self.llm_port}"

    @property
    def memory_address(self) -> str:
        return f"{self.host}:{self.memory_port}"

    def _environment(self) -> dict[str, str]:
        env = {**os.environ, **self.env}
        env.update(
            MEMORY_HOST=self.host,
            MEMORY_PORT=str(self.memory_port),
            LLM_HOST=self.host,
            LLM_PORT=str(self.llm_port),
            HOST=self.telephony_host or self.host,
            PORT=str(self.telephony_port),
            LLM_SERVICE_ADDRESS=self.llm_address,
            MEMORY_SERVICE_ADDRESS=self.memory_address,
            METRICS_HOST=self.host,
            TELEPHONY_METRICS_PORT=str(self.telephony_metrics_port),
            LLM_METRICS_PORT=str(self.llm_metrics_port),
            MEMORY_METRICS_PORT=str(self.memory_metrics_port),
            PYTHONUNBUFFERED="1",
        )
        return env

    def start_service(self, name: str, timeout: float = 30.0) -> None:
        """Start one service and wait until it answers its health check."""
        if name not in SERVICES:
            raise ValueError(f"unknown service {name!r}")
        output: IO[bytes] | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = (self.log_dir / f"{name}.log").open("ab")
            self._logs.append(output)
        process = subprocess.Popen(
            [*_die_with_parent(), sys.executable, "-m", f"aura_{name}"],
            env=self._environment(),
            cwd=self.cwd,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
        )
        self.processes[name] = process
        self._wait_ready(name, process, timeout)

    def _ready(self, name: str) -> bool:
        if name == "telephony":
            return http_healthy(f"{self.base_url}/health")
        address = self.llm_address if name == "llm" else self.memory_address
        return grpc_serving(address, ca_file=self.env.get("GRPC_TLS_CA_FILE", ""))

    def _wait_ready(self, name: str, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready(name):
            if process.poll() is not None:
                code = process.returncode
                raise RuntimeError(f"{name} exited with code {code}{self._tail(name)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after {timeout:.0f}s{self._tail(name)}")
            time.sleep(0.05)

    def _tail(self, name: str) -> str:
        if self.log_dir is None:
            return ""
        lines = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()
        return "\n" + "\n".join(lines[-20:])

    def start(self, timeout: float = 30.0) -> None:
        for name in SERVICES:
            self.start_service(name, timeout)

    def stop_service(self, name: str, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal one service and wait for it to exit; SIGKILL if it will not."""
        process = self.processes.pop(name)
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def stop(self) -> None:
        for name in reversed(SERVICES):
            if name in self.processes:
                self.stop_service(name)
        for log in self._logs:
            log.close()
        self._logs.clear()

    @contextlib.contextmanager
    def running(self, timeout: float = 30.0) -> Iterator[Stack]:
        try:
            self.start(timeout)
            yield self
        finally:
            self.stop()


def main() -> None:
    """`make run`: all three services in the foreground until Ctrl-C or SIGTERM."""
    # Each port is the service's own setting (environment, .env, or its default).
    settings = TelephonySettings()
    llm = LlmSettings()
    memory = MemorySettings()
    stack = Stack(
        telephony_host=settings.HOST,
        telephony_port=settings.PORT,
        telephony_metrics_port=settings.TELEPHONY_METRICS_PORT,
        llm_port=llm.LLM_PORT,
        memory_port=memory.MEMORY_PORT,
        llm_metrics_port=llm.LLM_METRICS_PORT,
        memory_metrics_port=memory.MEMORY_METRICS_PORT,
    )
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    code = 0
    try:
        stack.start()
        shown = "localhost" if settings.HOST in ("0.0.0.0", "::") else settings.HOST
        print(
            f"\nAura is running. Telephony: http://{shown}:{settings.PORT} "
            f"(Twilio webhook: POST /api/voice)\n"
            f"  llm {stack.llm_address}, memory {stack.memory_address}. Ctrl-C stops all.\n",
            flush=True,
        )
        while not stopping:
            exited = [n for n, p in stack.processes.items() if p.poll() is not None]
            if exited:
                print(f"{', '.join(exited)} exited; stopping Aura", file=sys.stderr)
                code = 1
                break
            time.sleep(0.2)
    except RuntimeError as exc:
        print(f"Aura did not start: {exc}", file=sys.stderr)
        code = 1
    finally:
        stack.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()
