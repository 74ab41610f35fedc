"""Start a real Prometheus (Debian's `prometheus` package, scripts/setup-prometheus.sh) on a free
loopback port, scraping the given agent metrics endpoints every second, and query it.

The scrape job mirrors what the workload's PodMonitoring gives Managed Prometheus: one target
per pod's metrics port, path /metrics, labels `job` and `instance` from the target. Only the
interval differs (1 s instead of 30 s), so a test sees a rollout's series within seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .livekit_server import free_port

SCRAPE_INTERVAL = "1s"
JOB = "voice-agent"
START_TIMEOUT = 30.0


def find_prometheus() -> str:
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else "")
    if not found:
        raise FileNotFoundError("prometheus not found: run `bash scripts/setup-prometheus.sh`")
    return found


def scrape_config(targets: Sequence[str]) -> str:
    quoted = ", ".join(f'"{t}"' for t in targets)
    return (
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL}\n"
        f"  evaluation_interval: {SCRAPE_INTERVAL}\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        "    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: [{quoted}]\n"
    )


@dataclass
class Prometheus:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, expr: str) -> list[dict]:
        """Instant query: the result vector as [{"metric": {...}, "value": float}]."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read().decode())
        assert body["status"] == "success", body
        data = body["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": float(data["result"][1])}]
        return [{"metric": s["metric"], "value": float(s["value"][1])} for s in data["result"]]

    def by(self, expr: str, label: str) -> dict[str, float]:
        return {s["metric"].get(label, ""): s["value"] for s in self.query(expr)}

    def wait_for(self, expr: str, predicate, timeout: float = 30.0, what: str = "") -> list[dict]:
        deadline = time.monotonic() + timeout
        result: list[dict] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if predicate(result):
                return result
            time.sleep(0.5)
        raise AssertionError(f"{what or expr}: never as expected within {timeout}s; last answer {result}")

    def targets_up(self) -> int:
        return int(sum(s["value"] for s in self.query(f'up{{job="{JOB}"}}')))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_prometheus(workdir: Path, targets: Sequence[str]) -> Prometheus:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(scrape_config(targets), encoding="utf-8")
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [find_prometheus(), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
             f"--storage.tsdb.path={workdir / 'data'}", "--storage.tsdb.retention.time=1h"],
            stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    server = Prometheus(process, port, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    server.stop()
    raise TimeoutError(f"prometheus not ready after {START_TIMEOUT}s:\n{log_path.read_text()}")
