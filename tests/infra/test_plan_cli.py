"""The offline plan as a user runs it (`python -m tooling.plan` in a subprocess): files written,
exit codes, and messages with one line per problem and no traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURE_STACKS, copy_project

ROOT = Path(__file__).resolve().parents[2]
# What issue 2 asks the platform to deploy, by type, with how many of each.
PLATFORM = {
    "gke-voice-agents:infra:VpcNetwork": 1, "gcp:compute/network:Network": 1, "gcp:compute/subnetwork:Subnetwork": 1,
    "gcp:compute/router:Router": 1, "gcp:compute/routerNat:RouterNat": 1,
    "gke-voice-agents:infra:AutopilotCluster": 1,
    # no service account: the bootstrap creates the ones the stack runs as (infra/accounts.py)
    "gcp:container/cluster:Cluster": 1,
    "gke-voice-agents:infra:AgentRegistry": 1, "gcp:artifactregistry/repository:Repository": 1,
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": 1,
    "gke-voice-agents:infra:AgentIdentity": 1,
    # the node and agent grants, the metrics adapter's roles/monitoring.viewer (k8s/metrics_adapter.py)
    # and the database user's cloudsql.client and cloudsql.instanceUser (infra/database.py)
    # + the Places tool server's own quota grant (infra/tool_identity.py, placesToolEnabled)
    "gcp:projects/iAMMember:IAMMember": 6, "gke-voice-agents:infra:ToolIdentity": 1,
    # Issue 14: crash recovery's checkpoint database, private IP through private services access
    "gke-voice-agents:infra:AgentDatabase": 1, "gcp:compute/globalAddress:GlobalAddress": 1,
    "gcp:servicenetworking/connection:Connection": 1, "gcp:sql/databaseInstance:DatabaseInstance": 1,
    # the agent's Token Creator on the database account, the tool server's link to its account
    "gcp:sql/database:Database": 1, "gcp:sql/user:User": 1, "gcp:serviceaccount/iAMMember:IAMMember": 2,
    # Issue 15: upgrade notifications everywhere; the KMS key (with its own random suffix) and
    # Binary Authorization where the stack turns them on (prod).
    "gke-voice-agents:infra:UpgradeNotifications": 1, "gcp:pubsub/topic:Topic": 1,
    # Issue 25: the checkpoint key (recoveryEnabled, both stacks), with its own random suffix
    "gke-voice-agents:infra:CheckpointKey": 1,
}
CHECKPOINT_KEY = {"gcp:kms/keyRing:KeyRing": 1, "gcp:kms/cryptoKey:CryptoKey": 1,
                  "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": 1}
HARDENED = {"gke-voice-agents:infra:SecretsKey": 1, "gcp:kms/keyRing:KeyRing": 1, "gcp:kms/cryptoKey:CryptoKey": 1,
            "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": 1, "gke-voice-agents:infra:AdmissionPolicy": 1,
            "gcp:binaryauthorization/policy:Policy": 1}


def run_plan(stack: str, out: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """The CLI on the fixture stacks (in the repo), or on a copy's own stack files."""
    stack_dir = ["--stack-dir", str(FIXTURE_STACKS)] if cwd == ROOT else []
    return subprocess.run([sys.executable, "-m", "tooling.plan", "--stack", stack, "--out", str(out), *stack_dir],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def copy_of_repo(tmp_path: Path) -> Path:
    """A throwaway copy of the program with the fixture stacks, so a test can break a stack file."""
    return copy_project(tmp_path)


def problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("  - ")]


# agent 12 + metrics adapter 11 (k8s/metrics_adapter.py, its NetworkPolicy included) + Places tool server 7 + spare
# capacity 2 (dev: CapacityBuffer and its PodTemplate; prod: PriorityClass and placeholder Deployment)
@pytest.mark.parametrize("stack, manifests", [("dev", 32), ("prod", 32)])
def test_valid_stack_writes_plan_files_and_exits_zero(tmp_path, stack, manifests):
    done = run_plan(stack, tmp_path / "plan")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    resources = json.loads((tmp_path / "plan" / "resources.json").read_text())
    assert all(set(r) == {"type", "name", "parent", "dependsOn", "provider", "inputs"} for r in resources)
    expected = {**PLATFORM, **{t: (n if stack == "prod" else 0) + CHECKPOINT_KEY.get(t, 0) for t, n in HARDENED.items()},
                "random:index/randomId:RandomId": 3 if stack == "prod" else 2}
    counts = {t: sum(r["type"] == t for r in resources) for t in expected}
    assert counts == expected
    assert json.loads((tmp_path / "plan" / "violations.json").read_text()) == []
    # The agent's objects (and prod's spare-capacity PriorityClass and placeholder Deployment).
    assert len(list((tmp_path / "plan" / "manifests").glob("*.yaml"))) == manifests
    assert "gke-voice-agents:infra:AutopilotCluster  gke\n  random:index/randomId:RandomId  gke-suffix" in done.stdout
    assert f"stack {stack}: {len(resources)} resources" in done.stdout
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
    assert done.stderr.splitlines()[0] == "stack dev: invalid stack configuration (3 problem(s)):"
    problems = problem_lines(done.stderr)
    assert len(problems) == 3 == len(done.stderr.splitlines()) - 1, done.stderr
    assert any("gcp:region = 'us-middle1': is not a known GKE Autopilot region" in p for p in problems)
    assert any("agentSize = 'XL': must be one of S, M, L" in p for p in problems)
    assert any("hpaMaxReplicas = 'many': must be a whole number from 1 to 1000" in p for p in problems)
    assert not (tmp_path / "plan").exists()


@pytest.mark.parametrize("content, message", [
    ("config:\n  gcp:project: [unclosed\n", "Pulumi.dev.yaml is not valid YAML: "),
    ("config:\n  - gcp:project\n", "Pulumi.dev.yaml: `config` must be a mapping of key: value, not list"),
    ("- just a list\n", "Pulumi.dev.yaml must hold a mapping at the top level"),
])
def test_unreadable_stack_file_exits_two_on_one_line(copy_of_repo, tmp_path, content, message):
    (copy_of_repo / "Pulumi.dev.yaml").write_text(content)
    done = run_plan("dev", tmp_path / "plan", cwd=copy_of_repo)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"stack dev: {message}"), line


def test_missing_stack_file_exits_two(tmp_path):
    done = run_plan("staging", tmp_path / "plan")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"stack staging: Pulumi.staging.yaml not found in {FIXTURE_STACKS}"]


def test_mandatory_violation_exits_one(copy_of_repo, tmp_path):
    # Config validation refuses unsafe workload settings, so break the program instead: a node
    # pool config on Autopilot is exactly what the policy exists to stop.
    cluster = copy_of_repo / "infra" / "cluster.py"
    cluster.write_text(cluster.read_text().replace('"enable_autopilot": True,', '"enable_autopilot": True, "node_config": {"machine_type": "e2-medium"},'))
    done = run_plan("dev", tmp_path / "plan", cwd=copy_of_repo)
    assert done.returncode == 1, done.stdout + done.stderr
    violations = json.loads((tmp_path / "plan" / "violations.json").read_text())
    assert [v["rule"] for v in violations] == ["gke-autopilot-no-node-config"]
    assert "[mandatory] gke-autopilot-no-node-config gke-cluster: " in done.stdout
