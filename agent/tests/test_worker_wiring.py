"""Each setting reaches the framework option it is meant for (without starting anything)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from voice_agent import session
from voice_agent.metrics import create_metrics
from voice_agent.settings import load_settings
from voice_agent.worker import VoiceAgentServer, framework_log_level


def test_settings_are_wired_into_the_agent_server(valid_env: dict[str, str]) -> None:
    """Guards against a setting that validates but never takes effect. The framework keeps
    these options in private attributes in 1.8.9; reading them here is test-only."""
    settings = load_settings(
        {
            **valid_env,
            "AGENT_DRAIN_TIMEOUT_SECONDS": "1234",
            "AGENT_LOAD_THRESHOLD": "0.55",
            "AGENT_HEALTH_PORT": "18081",
            "AGENT_METRICS_PORT": "19100",
            "AGENT_HTTP_HOST": "127.0.0.1",
            "AGENT_NAME": "support",
            "AGENT_LOG_LEVEL": "WARNING",
        }
    )
    server = VoiceAgentServer(settings, metrics=create_metrics(CollectorRegistry()))
    assert server._drain_timeout == 1234
    assert server._load_threshold == 0.55
    # no framework metrics server: our probe server serves /metrics (with /ready, /live) there
    assert (server._host, server._port, server._prometheus_port) == ("127.0.0.1", 18081, None)
    assert (server._probes._host, server._probes._port) == ("127.0.0.1", 19100)
    assert server._agent_name == "support"
    assert (server._ws_url, server._api_key) == (
        valid_env["LIVEKIT_URL"],
        valid_env["LIVEKIT_API_KEY"],
    )
    assert server._setup_fnc is session.prewarm
    assert server._entrypoint_fnc is session.entrypoint
    assert server._request_fnc is session.on_request
    assert server.log_level == "WARN"


def test_framework_log_level_spelling() -> None:
    assert [framework_log_level(level) for level in ("DEBUG", "INFO", "WARNING", "ERROR")] == [
        "DEBUG",
        "INFO",
        "WARN",
        "ERROR",
    ]
