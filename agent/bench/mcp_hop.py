"""What the MCP hop adds to one tool call, measured locally (2 shared vCPUs: pessimistic).

Two paths to the same Places answer, each timed 20 times after 3 warm-ups:
- direct: the Places API (New) stand-in called over HTTP with the request the tool server
  would send (what an in-process tool would cost);
- via MCP: the agent's own client (voice_agent.tools_mcp.ToolServer, livekit-agents 1.8.9
  MCPServerHTTP over streamable HTTP, projected-token bearer) -> the real tool server process
  (tools/places, its venv) -> token check -> the same stand-in.
The hop is median(via MCP) - median(direct). Prints the figures, then ONE JSON line.

    agent/.venv/bin/python agent/bench/mcp_hop.py [--calls 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

AGENT_DIR = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(AGENT_DIR), str(AGENT_DIR / "tests")]

import httpx2  # noqa: E402
from fakes.cluster_issuer import ClusterIssuer  # noqa: E402
from fakes.kubernetes_api import FakeKubernetesApi  # noqa: E402
from fakes.metadata_server import MetadataServer  # noqa: E402
from fakes.places_api import PlacesApi  # noqa: E402
from helpers.livekit_server import free_port  # noqa: E402

from voice_agent.tools_mcp import ToolServer  # noqa: E402

REPO = AGENT_DIR.parent
TOOLS_PYTHON = REPO / "tools" / "places" / ".venv" / "bin" / "python"
PROJECT = "voice-agent-test"
ARGS = {"query": "pharmacy", "latitude": 45.7578, "longitude": 4.832, "max_results": 2}
WARMUP = 3


def _ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


async def direct(places: PlacesApi, token: str, calls: int) -> list[float]:
    body = {"textQuery": "pharmacy", "pageSize": 2, "languageCode": "en",
            "locationBias": {"circle": {"center": {"latitude": 45.7578, "longitude": 4.832}, "radius": 5000.0}}}
    headers = {"Authorization": f"Bearer {token}", "X-Goog-User-Project": PROJECT,
               "X-Goog-FieldMask": "places.displayName,places.shortFormattedAddress"}
    samples = []
    async with httpx2.AsyncClient() as http:
        for i in range(WARMUP + calls):
            start = time.perf_counter()
            response = await http.post(f"{places.base_url}/v1/places:searchText", json=body, headers=headers)
            assert response.status_code == 200, response.text
            if i >= WARMUP:
                samples.append(time.perf_counter() - start)
    return samples


async def via_mcp(url: str, token_file: Path, calls: int) -> list[float]:
    server = ToolServer("places", url, token_file)
    await server.initialize()
    try:
        samples = []
        for i in range(WARMUP + calls):
            start = time.perf_counter()
            result = await server._call_tool("find_places", ARGS)
            assert not result.is_error, result
            if i >= WARMUP:
                samples.append(time.perf_counter() - start)
        return samples
    finally:
        await server.aclose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20)
    calls = parser.parse_args().calls
    issuer = ClusterIssuer().start()
    metadata = MetadataServer(project=PROJECT).start()
    places = PlacesApi(token=metadata.token, quota_project=PROJECT).start()
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="mcp-hop-"))
    token_file = workdir / "token"
    issuer.write_token(token_file, audience="places-mcp")
    cluster = FakeKubernetesApi(workdir=workdir / "kube-api", token="places-mcp-own-api-token", issuer=issuer,
                                live_pods={"p-1"}).start()
    env = {"PATH": os.environ.get("PATH", ""), **cluster.token_review_env(workdir / "projected"),
           "PLACES_MCP_ISSUER": issuer.url,
           "PLACES_MCP_ALLOWED_SUBJECTS": "system:serviceaccount:voice-agents:voice-agent",
           "PLACES_QUOTA_PROJECT": PROJECT, "PLACES_MCP_HOST": "127.0.0.1", "PLACES_MCP_PORT": str(port),
           "PLACES_API_BASE_URL": places.base_url, "GCE_METADATA_HOST": metadata.host}
    process = subprocess.Popen([str(TOOLS_PYTHON), "-m", "places_mcp"], cwd=REPO / "tools" / "places", env=env,
                               stdout=(workdir / "server.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("tool server not ready")
                time.sleep(0.2)
        direct_s = asyncio.run(direct(places, metadata.token, calls))
        mcp_s = asyncio.run(via_mcp(f"http://127.0.0.1:{port}/mcp", token_file, calls))
    finally:
        process.terminate()
        process.wait(10)
        cluster.stop()
        places.stop()
        metadata.stop()
        issuer.stop()
    result = {"bench": "mcp_hop", "calls": calls, "direct_median_ms": _ms(direct_s), "mcp_median_ms": _ms(mcp_s),
              "hop_median_ms": round(_ms(mcp_s) - _ms(direct_s), 2),
              "mcp_p90_ms": round(sorted(mcp_s)[int(0.9 * (len(mcp_s) - 1))] * 1000, 2)}
    print(f"direct call to the Places stand-in: median {result['direct_median_ms']} ms over {calls}")
    print(f"same call through MCP (agent client -> tool server -> stand-in): median {result['mcp_median_ms']} ms, "
          f"p90 {result['mcp_p90_ms']} ms")
    print(f"the MCP hop adds {result['hop_median_ms']} ms per tool call (median)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
