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
PLAIN_API = {"PLACES_MCP_KUBE_API_URL": "http://127.0.0.1:6443"}


def test_defaults(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    s = load_settings({**GOOD, "PLACES_MCP_KUBE_CA_FILE": str(ca)})
    assert (s.audience, s.port, s.upstream_timeout_seconds, s.jwks_refresh_seconds) == ("places-mcp", 8080, 4.0, 60)
    assert s.allowed_subjects == ("system:serviceaccount:voice-agents:voice-agent",)
    assert (s.kube_api_url, s.kube_token_file, s.review_cache_seconds) == (
        "https://kubernetes.default.svc", "/var/run/secrets/tokens/kube-api/token", 10)


def test_the_cluster_ca_must_exist_for_an_https_api_server(tmp_path):
    """The API server's certificate is signed by the cluster CA: without the file no review can
    be made, so the server refuses to start rather than failing every caller later."""
    missing = tmp_path / "absent.crt"
    with pytest.raises(SettingsError, match=rf"PLACES_MCP_KUBE_CA_FILE='{missing}': no such file; the cluster CA"):
        load_settings({**GOOD, "PLACES_MCP_KUBE_CA_FILE": str(missing)})
    # a plain-HTTP API server (a local stand-in) needs none
    assert load_settings({**GOOD, **PLAIN_API}).kube_ca_file == "/var/run/secrets/tokens/kube-api/ca.crt"


@pytest.mark.parametrize(("value", "ok"), [("0", True), ("-1", False), ("60", True), ("61", False), ("ten", False)])
def test_review_cache_bounds(value, ok):
    env = {**GOOD, **PLAIN_API, "PLACES_MCP_TOKEN_REVIEW_CACHE_SECONDS": value}
    if ok:
        assert load_settings(env).review_cache_seconds == int(value)
    else:
        with pytest.raises(SettingsError, match=rf"PLACES_MCP_TOKEN_REVIEW_CACHE_SECONDS='{value}': allowed 0..60 "
                                                r"\(seconds a verdict on a caller's token is reused; the replay window"):
            load_settings(env)


def test_api_server_url_must_be_http():
    with pytest.raises(SettingsError, match=r"PLACES_MCP_KUBE_API_URL='kubernetes.default.svc': an http\(s\) URL"):
        load_settings({**GOOD, "PLACES_MCP_KUBE_API_URL": "kubernetes.default.svc"})


@pytest.mark.parametrize(("value", "ok"), [("0.5", True), ("0.49", False), ("5", True), ("5.01", False), ("nan", False)])
def test_timeout_bounds(value, ok):
    env = {**GOOD, **PLAIN_API, "PLACES_TIMEOUT_SECONDS": value}
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
