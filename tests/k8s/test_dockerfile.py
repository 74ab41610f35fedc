"""The agent image (agent/Dockerfile) runs what the Deployment says: same command and args,
same ports, same user. Both sides read k8s/runtime.py's contract; this test reads the
Dockerfile itself, so an edit on either side that breaks the pair fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from k8s import runtime

DOCKERFILE = Path(__file__).resolve().parents[2] / "agent" / "Dockerfile"


def test_the_agent_dockerfile_exists():
    """The image is ours: without its Dockerfile every test below must fail, never skip."""
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing: the Deployment's command, ports and user have no image"


def _final_stage(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the last build stage, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    instructions = [(m.group(1).upper(), m.group(2).strip())
                    for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.MULTILINE)
                    if not m.group(0).lstrip().startswith("#")]
    starts = [i for i, (name, _) in enumerate(instructions) if name == "FROM"]
    return instructions[starts[-1]:] if starts else instructions


def _last(stage: list[tuple[str, str]], name: str) -> str:
    found = [args for instr, args in stage if instr == name]
    assert found, f"agent/Dockerfile's final stage has no {name}"
    return found[-1]


@pytest.fixture(scope="module")
def stage() -> list[tuple[str, str]]:
    return _final_stage(DOCKERFILE.read_text())


def test_entrypoint_and_cmd_are_the_deployments_command_and_args(stage):
    # Exec form (JSON arrays) only: shell form would run under /bin/sh, which does not pass
    # SIGTERM on, and the drain would never start.
    entrypoint, cmd = json.loads(_last(stage, "ENTRYPOINT")), json.loads(_last(stage, "CMD"))
    assert entrypoint == list(runtime.COMMAND) and cmd == list(runtime.ARGS)
    assert "dev" not in cmd


def test_exposed_ports_are_the_health_and_metrics_ports(stage):
    exposed = {int(p.split("/")[0]) for instr, args in stage if instr == "EXPOSE" for p in args.split()}
    assert exposed == {runtime.HEALTH_PORT, runtime.METRICS_PORT}


def test_image_user_is_the_pods_user(stage):
    user, _, group = _last(stage, "USER").partition(":")
    assert user == str(runtime.RUN_AS_UID)
    assert group in ("", str(runtime.RUN_AS_GID))


def test_parser_reads_only_the_final_stage_and_joins_continuations():
    """Negative control for the checks above: a build stage's USER and a continued EXPOSE must
    not be mixed up, or a root runtime stage could pass."""
    stage = _final_stage(
        'FROM python:3.11 AS build\nUSER 0\nCMD ["dev"]\n'
        'FROM python:3.11-slim\n# USER 10001 in a comment is no instruction\n'
        'EXPOSE 8081 \\\n  9100/tcp\nUSER root\nENTRYPOINT ["python", "-m", "voice_agent"]\nCMD ["start"]\n')
    assert [name for name, _ in stage] == ["FROM", "EXPOSE", "USER", "ENTRYPOINT", "CMD"]
    assert _last(stage, "USER") == "root" and _last(stage, "EXPOSE").split() == ["8081", "9100/tcp"]
