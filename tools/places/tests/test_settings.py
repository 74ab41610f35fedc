from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from places_mcp.settings import SettingsError, load_settings

GOOD = {
    "PLACES_MCP_ISSUER": "https://container.googleapis.com/v1/projects/p/locations/us-central1/clusters/c",
    "PLACES_MCP_ALLOWED_SUBJECTS": "system:serviceaccount:voice-agents:voice-agent",
    "PLACES_QUOTA_PROJECT": "voice-agents-dev",
}


def test_defaults():
    s = load_settings(GOOD)
    assert (s.audience, s.port, s.upstream_timeout_seconds, s.jwks_refresh_seconds) == ("places-mcp", 8080, 4.0, 60)
    assert s.allowed_subjects == ("system:serviceaccount:voice-agents:voice-agent",)


@pytest.mark.parametrize(("value", "ok"), [("0.5", True), ("0.49", False), ("5", True), ("5.01", False), ("nan", False)])
def test_timeout_bounds(value, ok):
    env = {**GOOD, "PLACES_TIMEOUT_SECONDS": value}
    if ok:
        assert load_settings(env).upstream_timeout_seconds == float(value)
    else:
        with pytest.raises(SettingsError, match=rf"PLACES_TIMEOUT_SECONDS='{value}': allowed 0.5..5 seconds"):
            load_settings(env)


def test_every_problem_is_listed_at_once():
    with pytest.raises(SettingsError) as err:
        load_settings({"PLACES_MCP_ALLOWED_SUBJECTS": "voice-agent", "PLACES_MCP_PORT": "0"})
    text = str(err.value)
    for name in ("PLACES_MCP_ISSUER", "PLACES_MCP_ALLOWED_SUBJECTS='voice-agent'", "PLACES_QUOTA_PROJECT",
                 "PLACES_MCP_PORT='0': allowed 1..65535"):
        assert name in text


def test_bad_configuration_exits_2_without_a_traceback():
    result = subprocess.run([sys.executable, "-m", "places_mcp"], cwd=Path(__file__).resolve().parents[1],
                            env={"PATH": ""}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "PLACES_MCP_ISSUER" in result.stderr
