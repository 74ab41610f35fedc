"""The contract command itself (`python -m voice_agent start`) on bad input: clean exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import VALID_ENV

AGENT_DIR = Path(__file__).resolve().parents[1]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        ["python", "-m", "voice_agent", *args],
        cwd=AGENT_DIR,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_invalid_configuration_exits_2_with_one_line_per_problem_and_no_traceback() -> None:
    """A broken Deployment env must fail fast and readably, not with a stack trace."""
    env = {**VALID_ENV, "AGENT_LOAD_THRESHOLD": "1.5", "AGENT_METRICS_PORT": "0"}
    env.pop("LIVEKIT_URL")
    started = time.monotonic()
    result = _run(["start"], env)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.splitlines() == [
        "voice-agent: invalid agent configuration:",
        "  - LIVEKIT_URL is required but not set: the LiveKit server URL, e.g. "
        "wss://livekit.example.com",
        "  - AGENT_LOAD_THRESHOLD=1.5 is out of range: allowed a number in (0, 1]: the share of "
        "the container CPU limit at which the worker reports itself full",
        "  - AGENT_METRICS_PORT=0 is out of range: allowed 1..65535 (a TCP port)",
    ]
    assert VALID_ENV["LIVEKIT_API_SECRET"] not in result.stderr
    # validated before livekit is imported: no framework start-up cost on a bad config
    assert elapsed < 10, elapsed


def test_dev_mode_is_refused_because_it_skips_the_drain() -> None:
    result = _run(["dev"], dict(VALID_ENV))
    assert result.returncode == 2
    assert "unsupported arguments ['dev']" in result.stderr
    assert "usage: python -m voice_agent start" in result.stderr


def test_help_prints_usage() -> None:
    result = _run(["--help"], {})
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m voice_agent start")
