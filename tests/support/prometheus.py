"""A real Prometheus on a free loopback port, scraping the services every two seconds."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aura_dev.stack import free_port


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (apt-get install prometheus)")
    return found


@dataclass
class Prometheus:
    workdir: Path
    targets: dict[str, str]  # job -> metrics URL
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self) -> str:
        jobs = []
        for job, metrics_url in self.targets.items():
            parsed = urllib.parse.urlsplit(metrics_url)
            jobs.append(
                f"  - job_name: {job}\n"
                f"    metrics_path: {parsed.path}\n"
                f"    static_configs:\n      - targets: ['{parsed.netloc}']\n"
            )
        # Two seconds, not one: on a loaded machine a slow scrape must not become a gap.
        head = "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n  evaluation_interval: 2s\n"
        return head + "scrape_configs:\n" + "".join(jobs)

    def start(self) -> None:
        config = self.workdir / "prometheus.yml"
        config.write_text(self._config())
        log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(
                    "prometheus did not start: " + (self.workdir / "prometheus.log").read_text()
                )
            time.sleep(0.1)

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
            body = json.load(response)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None
