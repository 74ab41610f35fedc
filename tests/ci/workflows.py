"""Reading the GitHub workflows as data, for the property tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = ("pull-request.yml", "deploy.yml")

VAR_REFERENCE = re.compile(r"\bvars\.([A-Za-z0-9_]+)")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)\s*(?:#\s*(.*))?$")


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as the boolean True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


@dataclass(frozen=True)
class Job:
    workflow: str
    id: str
    spec: dict[str, Any]

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.spec.get("steps", [])

    def steps_using(self, action: str) -> list[dict[str, Any]]:
        return [s for s in self.steps if s.get("uses", "").split("@")[0] == action]

    def step(self, step_id: str) -> dict[str, Any]:
        found = [s for s in self.steps if s.get("id") == step_id]
        assert len(found) == 1, f"{self.workflow}:{self.id} has {len(found)} steps with id {step_id}"
        return found[0]

    @property
    def environment(self) -> str | None:
        env = self.spec.get("environment")
        return env.get("name") if isinstance(env, dict) else env

    @property
    def needs(self) -> list[str]:
        needs = self.spec.get("needs", [])
        return [needs] if isinstance(needs, str) else list(needs)

    def pulumi_commands(self) -> list[dict[str, Any]]:
        """The `with:` of every pulumi/actions step that runs a command (not install-only)."""
        return [s["with"] for s in self.steps_using("pulumi/actions") if "command" in s.get("with", {})]

    def text(self) -> str:
        return yaml.safe_dump(self.spec)


def jobs(name: str | None = None) -> Iterator[Job]:
    for workflow in ([name] if name else NAMES):
        for job_id, spec in load(workflow)["jobs"].items():
            yield Job(workflow, job_id, spec)


def job(name: str, job_id: str) -> Job:
    return next(j for j in jobs(name) if j.id == job_id)


def uses_lines() -> Iterator[tuple[str, str, str | None]]:
    """(workflow, action reference, trailing comment) for every `uses:` line, as written."""
    for name in NAMES:
        for line in (WORKFLOWS / name).read_text().splitlines():
            match = USES_LINE.match(line)
            if match:
                yield name, match.group(1), match.group(2)


# `<organisation>/<project>/<stack>`: the organisation from the bootstrap's variable.
QUALIFIED_PREFIX = "${{ vars.PULUMI_ORGANIZATION }}/gke-voice-agents/"


def stack_of(j: Job, stack_name: str) -> str:
    """The short stack name a pulumi/actions `stack-name` resolves to in job `j`."""
    if stack_name == "${{ env.STACK }}":
        stack_name = j.spec["env"]["STACK"]
    assert stack_name.startswith(QUALIFIED_PREFIX), f"{j.workflow}:{j.id}: {stack_name} is not fully qualified"
    return stack_name.removeprefix(QUALIFIED_PREFIX)
