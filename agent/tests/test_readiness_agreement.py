"""The test LiveKit server is configured like production: its agents.target_load equals the
workers' load threshold (helpers/livekit_server.TEST_LOAD_THRESHOLD explains the flakes the
default 0.7 caused)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers.livekit_server import (
    TEST_LOAD_THRESHOLD,
    LiveKitServer,
    find_livekit_server,
    free_port,
    server_config,
)
from helpers.worker_process import worker_env
from term.scenarios import endpoint_overrides


def test_every_test_worker_uses_the_servers_target_load(livekit_server: LiveKitServer) -> None:
    assert float(worker_env(livekit_server)["AGENT_LOAD_THRESHOLD"]) == TEST_LOAD_THRESHOLD
    assert float(endpoint_overrides(livekit_server)["AGENT_LOAD_THRESHOLD"]) == TEST_LOAD_THRESHOLD
    config = Path(livekit_server.log_path).with_name("livekit.yaml").read_text()
    assert f"agents:\n  target_load: {TEST_LOAD_THRESHOLD}\n" in config


@pytest.mark.integration
@pytest.mark.parametrize("key, accepted", [("target_load", True), ("target_lod", False)])
def test_livekit_server_parses_the_key_strictly(tmp_path: Path, key: str, accepted: bool) -> None:
    """livekit-server v1.13.5 refuses unknown config keys, so a server that starts with
    agents.target_load has read it (the misspelling proves the refusal)."""
    config = server_config(free_port(), free_port(), ("lo", "127.0.0.1"), "devkey", "x" * 43)
    path = tmp_path / "livekit.yaml"
    path.write_text(config.replace("target_load", key))
    try:
        done = subprocess.run([find_livekit_server(), "--dev", "--bind", "127.0.0.1", "--config", str(path)],
                              capture_output=True, text=True, timeout=3)
        output = done.stdout + done.stderr
    except subprocess.TimeoutExpired as running:  # still serving after 3 s: config accepted
        output = (running.stdout or b"").decode() + (running.stderr or b"").decode()
        assert accepted, output
        return
    assert not accepted and "field target_lod not found in type agent.Config" in output, output
