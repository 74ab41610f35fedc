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

from tests.stand_ins import cluster_issuer, kubernetes_api, metadata_server, places_api

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PROJECT = "voice-agent-test"
AGENT_SUBJECT = "system:serviceaccount:voice-agents:voice-agent"
# the pod the issuer's tokens are bound to by default (cluster_issuer.ClusterIssuer.token)
AGENT_POD_UID = "p-1"


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
    cluster: object


@dataclass
class StandIns:
    """Google's servers and the cluster's, imitated at the network boundary (agent/tests/fakes)."""
    issuer: object
    metadata: object
    places: object
    cluster: object  # the API server's TokenReview, over TLS with its own CA
    credentials: Path


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> Iterator[StandIns]:
    issuer = cluster_issuer.ClusterIssuer().start()
    metadata = metadata_server.MetadataServer(project=PROJECT, email="places-mcp@voice-agent-test.iam.gserviceaccount.com").start()
    places = places_api.PlacesApi(token=metadata.token, quota_project=PROJECT).start()
    workdir = tmp_path_factory.mktemp("kube-api")
    cluster = kubernetes_api.FakeKubernetesApi(workdir=workdir / "server", token="places-mcp-own-api-token",
                                               user="system:serviceaccount:voice-agents:places-mcp", issuer=issuer,
                                               live_pods={AGENT_POD_UID}).start()
    try:
        yield StandIns(issuer, metadata, places, cluster, workdir / "projected")
    finally:
        cluster.stop()
        places.stop()
        metadata.stop()
        issuer.stop()


def server_env(s: StandIns, port: int, **extra: str) -> dict[str, str]:
    issuer, metadata, places = s.issuer, s.metadata, s.places
    return {
        **s.cluster.token_review_env(s.credentials),
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


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
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
    port = free_port()
    log = tmp_path_factory.mktemp("places") / "server.log"
    process = start_server(server_env(stand_ins, port), log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        yield Running(url=url, process=process, issuer=stand_ins.issuer, places=stand_ins.places,
                      metadata=stand_ins.metadata, log=log, cluster=stand_ins.cluster)
    finally:
        process.terminate()
        process.wait(10)
