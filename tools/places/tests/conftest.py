from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.stand_ins import cluster_issuer, metadata_server, places_api

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PROJECT = "voice-agent-test"
AGENT_SUBJECT = "system:serviceaccount:voice-agents:voice-agent"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Running:
    url: str
    process: subprocess.Popen
    issuer: object
    places: object
    metadata: object
    log: Path


@pytest.fixture(scope="module")
def stand_ins() -> Iterator[tuple[object, object, object]]:
    issuer = cluster_issuer.ClusterIssuer().start()
    metadata = metadata_server.MetadataServer(project=PROJECT, email="places-mcp@voice-agent-test.iam.gserviceaccount.com").start()
    places = places_api.PlacesApi(token=metadata.token, quota_project=PROJECT).start()
    try:
        yield issuer, metadata, places
    finally:
        places.stop()
        metadata.stop()
        issuer.stop()


def server_env(issuer, metadata, places, port: int, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PLACES_MCP_ISSUER": issuer.url,
        "PLACES_MCP_ALLOWED_SUBJECTS": AGENT_SUBJECT,
        "PLACES_QUOTA_PROJECT": PROJECT,
        "PLACES_MCP_HOST": "127.0.0.1",
        "PLACES_MCP_PORT": str(port),
        "PLACES_API_BASE_URL": places.base_url,
        "GCE_METADATA_HOST": metadata.host,
        "PLACES_TIMEOUT_SECONDS": "1",
        "PLACES_MCP_JWKS_REFRESH_SECONDS": "2",
        **extra,
    }


def start_server(env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("wb")
    return subprocess.Popen([sys.executable, "-m", "places_mcp"], cwd=PACKAGE_DIR, env=env,
                            stdout=handle, stderr=subprocess.STDOUT)


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"tool server exited {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"tool server not ready in {timeout} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def tool_server(stand_ins, tmp_path_factory) -> Iterator[Running]:
    issuer, metadata, places = stand_ins
    port = free_port()
    log = tmp_path_factory.mktemp("places") / "server.log"
    process = start_server(server_env(issuer, metadata, places, port), log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        yield Running(url=url, process=process, issuer=issuer, places=places, metadata=metadata, log=log)
    finally:
        process.terminate()
        process.wait(10)
