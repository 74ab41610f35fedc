"""A call where the model asks for a place gets its answer through MCP; a tool server that is
slow or down costs the caller one sentence, not the call.

Real parts: livekit-server, the agent worker (contract command), an rtc caller, the Gemini
plugin against the Live API stand-in, the Places tool server as its own process in its own
venv (tools/places/.venv), MCP over streamable HTTP between them. Imitated at the network
boundary (tests/fakes): Gemini Live, the metadata servers (one identity for the agent, another
for the tool server), the cluster's token issuer, the Places API (New). No internet here.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakes.cluster_issuer import ClusterIssuer
from fakes.kubernetes_api import FakeKubernetesApi
from fakes.asking_gemini import AskingGemini, talk_until_tool_answered
from fakes.metadata_server import MetadataServer
from fakes.places_api import PlacesApi
from helpers.livekit_server import LiveKitServer, free_port
from helpers.worker_process import contract_argv, registered_worker, worker_env

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOOLS_PYTHON = REPO / "tools" / "places" / ".venv" / "bin" / "python"
PROJECT = "voice-agent-test"
AUDIENCE = "places-mcp"
ASK = {"name": "find_places", "args": {"query": "pharmacy", "latitude": 45.7578, "longitude": 4.832}}


@dataclass
class Stage:
    server: LiveKitServer
    workdir: Path
    issuer: ClusterIssuer
    places: PlacesApi
    tool_metadata: MetadataServer
    tool_port: int
    token_dir: Path
    cluster: FakeKubernetesApi


@pytest.fixture(scope="module")
def stage(livekit_server, tmp_path_factory) -> Iterator[Stage]:
    if not TOOLS_PYTHON.exists():
        pytest.fail("tools/places/.venv missing: run `bash scripts/setup-tools-places.sh`")
    workdir = tmp_path_factory.mktemp("tools")
    issuer = ClusterIssuer().start()
    # the tool server's own Google identity: a different token from the agent's
    tool_metadata = MetadataServer(project=PROJECT, email="places-mcp@voice-agent-test.iam.gserviceaccount.com").start()
    places = PlacesApi(token=tool_metadata.token, quota_project=PROJECT).start()
    token_dir = workdir / "tokens"
    (token_dir / "places").mkdir(parents=True)
    issuer.write_token(token_dir / "places" / "token", audience=AUDIENCE)
    # the cluster's TokenReview: the agent pod the issuer's tokens are bound to exists
    cluster = FakeKubernetesApi(workdir=workdir / "kube-api", token="places-mcp-own-api-token",
                                user="system:serviceaccount:voice-agents:places-mcp", issuer=issuer,
                                live_pods={"p-1"}).start()
    try:
        yield Stage(livekit_server, workdir, issuer, places, tool_metadata, free_port(), token_dir, cluster)
    finally:
        cluster.stop()
        places.stop()
        tool_metadata.stop()
        issuer.stop()


def start_tool_server(stage: Stage, name: str) -> subprocess.Popen:
    env = {
        "PATH": os.environ.get("PATH", ""),
        **stage.cluster.token_review_env(stage.workdir / f"{name}-projected"),
        "PLACES_MCP_ISSUER": stage.issuer.url,
        "PLACES_MCP_ALLOWED_SUBJECTS": "system:serviceaccount:voice-agents:voice-agent",
        "PLACES_QUOTA_PROJECT": PROJECT,
        "PLACES_MCP_HOST": "127.0.0.1",
        "PLACES_MCP_PORT": str(stage.tool_port),
        "PLACES_API_BASE_URL": stage.places.base_url,
        "GCE_METADATA_HOST": stage.tool_metadata.host,
        "PLACES_TIMEOUT_SECONDS": "2",
    }
    log = (stage.workdir / f"{name}-tool.log").open("wb")
    process = subprocess.Popen([str(TOOLS_PYTHON), "-m", "places_mcp"], cwd=REPO / "tools" / "places", env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    # a bound, not a timing verdict: readiness includes a TokenReview and a Places self-check
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{stage.tool_port}/readyz", timeout=2):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("tool server never ready")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGCONT)
    process.terminate()
    process.wait(10)


@dataclass
class Call:
    live: AskingGemini
    lines: list[dict[str, Any]]
    heard_reply_after_tool: bool
    tool_responses: list[dict[str, Any]]
    declared: list[str]


def place_call(stage: Stage, room: str, *, during_tool_call=None, wait_s: float = 45.0) -> Call:
    agent_metadata = MetadataServer(project=PROJECT).start()
    live = AskingGemini(stage.workdir, ASK)
    live.before_tool_call = during_tool_call
    live.start(token=agent_metadata.token)
    try:
        env = worker_env(stage.server, fake_gemini=False, extra={
            "HOME": str(stage.workdir), "TMPDIR": str(stage.workdir),
            **agent_metadata.env(), **live.env(), "GOOGLE_CLOUD_PROJECT": PROJECT,
            "AGENT_TOOL_SERVERS": f"places=http://127.0.0.1:{stage.tool_port}/mcp",
            "AGENT_TOOL_TOKEN_DIR": str(stage.token_dir),
        })
        with registered_worker(contract_argv(), env, log_path=stage.workdir / f"{room}-worker.log") as worker:
            heard = asyncio.run(talk_until_tool_answered(stage.server, room, live, wait_s))
            lines = list(worker.lines)
        sessions, connections = live.snapshot()
        return Call(live=live, lines=lines, heard_reply_after_tool=heard,
                    tool_responses=[r for s in sessions for r in s.tool_responses],
                    declared=sorted({t for c in connections for t in c.tools}))
    finally:
        live.stop()
        agent_metadata.stop()


def _output(response: dict[str, Any]) -> str:
    return json.dumps(response.get("response", response), ensure_ascii=False)


def test_model_asks_for_a_place_and_gets_the_answer_through_mcp(stage):
    tool = start_tool_server(stage, "ok")
    try:
        before = len(stage.places.calls)
        call = place_call(stage, "tools-ok")
    finally:
        stop(tool)
    assert {"find_places", "places_nearby"} <= set(call.declared), call.declared
    assert len(call.tool_responses) == 1, call.tool_responses
    spoken = _output(call.tool_responses[0])
    assert "Pharmacie Bellecour" in spoken and "Grande Pharmacie Lyonnaise" in spoken, spoken
    assert call.heard_reply_after_tool
    # Places saw the tool server's identity; the agent's Google token never left the agent
    upstream = stage.places.calls[before:]
    assert upstream and all(c["headers"]["authorization"] == f"Bearer {stage.tool_metadata.token}" for c in upstream)
    assert [line["tool_server"] for line in call.lines if line.get("event") == "tools_ready"] == ["places"]


def test_a_frozen_tool_server_costs_one_sentence_and_the_call_goes_on(stage):
    """The tool server stops answering the moment the model calls it (SIGSTOP): the agent's own
    6 s budget (tools_mcp.TOOL_CALL_TIMEOUT_SECONDS) ends the wait with a sentence."""
    tool = start_tool_server(stage, "frozen")
    try:
        call = place_call(stage, "tools-frozen", during_tool_call=lambda: tool.send_signal(signal.SIGSTOP))
    finally:
        stop(tool)
    assert len(call.tool_responses) == 1, call.tool_responses
    spoken = _output(call.tool_responses[0])
    assert "did not answer within 6 seconds" in spoken and "unavailable right now" in spoken, spoken
    assert call.heard_reply_after_tool
    assert [line["reason"] for line in call.lines if line.get("event") == "tool_call_failed"] == ["timeout"]


def test_a_tool_server_down_at_call_start_leaves_the_call_without_its_tools(stage):
    call = place_call(stage, "tools-down", wait_s=8.0)
    assert "find_places" not in call.declared
    assert [line["tool_server"] for line in call.lines if line.get("event") == "tools_unavailable"] == ["places"]
    assert not call.tool_responses
