"""The offline plan as a user runs it: files written, exit codes, messages without tracebacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_plan(stack: str, out: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra.plan", "--stack", stack, "--out", str(out)],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def copy_of_repo(tmp_path: Path) -> Path:
    """A throwaway copy of the program, so a test can break a stack file."""
    target = tmp_path / "repo"
    shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(".venv", ".git", "agent", "out", ".tools", "__pycache__"))
    return target


def test_valid_stack_writes_plan_files_and_exits_zero(tmp_path):
    done = run_plan("prod", tmp_path / "plan")
    assert done.returncode == 0, done.stderr
    resources = json.loads((tmp_path / "plan" / "resources.json").read_text())
    assert {"type", "name", "parent", "inputs"} == set(resources[0])
    assert any(r["type"] == "gcp:container/cluster:Cluster" for r in resources)
    assert json.loads((tmp_path / "plan" / "violations.json").read_text()) == []
    # 8 agent objects plus the spare-capacity PriorityClass and placeholder Deployment of prod.
    assert len(list((tmp_path / "plan" / "manifests").glob("*.yaml"))) == 10
    assert "gke-voice-agents:infra:AutopilotCluster  gke\n  random:index/randomId:RandomId  gke-suffix" in done.stdout
    assert "offline-placeholder-secret" not in (tmp_path / "plan" / "resources.json").read_text()


def test_broken_stack_exits_two_with_one_line_per_problem(copy_of_repo, tmp_path):
    stack_file = copy_of_repo / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text()
                          .replace("gcp:region: us-central1", "gcp:region: us-middle1")
                          .replace("agentSize: S", "agentSize: XL")
                          .replace('hpaMaxReplicas: "3"', 'hpaMaxReplicas: "many"'))
    done = run_plan("dev", tmp_path / "plan", cwd=copy_of_repo)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    problems = [line for line in done.stderr.splitlines() if line.startswith("  - ")]
    assert len(problems) == 3, done.stderr
    assert any("gcp:region = 'us-middle1': must be one of" in p for p in problems)
    assert any("agentSize = 'XL': must be one of S, M, L" in p for p in problems)
    assert any("hpaMaxReplicas = 'many': must be a whole number from 1 to 1000" in p for p in problems)
    assert not (tmp_path / "plan").exists()


def test_missing_stack_file_exits_two(tmp_path):
    done = run_plan("staging", tmp_path / "plan")
    assert done.returncode == 2
    assert "Pulumi.staging.yaml not found" in done.stderr and "Traceback" not in done.stderr


def test_mandatory_violation_exits_one(copy_of_repo, tmp_path):
    # Config validation refuses unsafe workload settings, so break the program instead: a node
    # pool config on Autopilot is exactly what the policy exists to stop.
    cluster = copy_of_repo / "infra" / "cluster.py"
    cluster.write_text(cluster.read_text().replace('"enable_autopilot": True,', '"enable_autopilot": True, "node_config": {"machine_type": "e2-medium"},'))
    done = run_plan("dev", tmp_path / "plan", cwd=copy_of_repo)
    assert done.returncode == 1, done.stdout + done.stderr
    violations = json.loads((tmp_path / "plan" / "violations.json").read_text())
    assert [v["rule"] for v in violations] == ["gke-autopilot-no-node-config"]
