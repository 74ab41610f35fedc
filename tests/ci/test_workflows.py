"""The GitHub workflows: linted for real by actionlint, and checked for the properties a
platform team relies on (least privilege, no racing deploys, pinned actions, gated prod)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = ROOT / ".tools" / "bin" / "actionlint"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def load(name: str) -> dict:
    # PyYAML reads the `on:` key as True; normalise it.
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def all_steps(doc: dict):
    for job_id, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def test_actionlint_finds_nothing():
    actionlint = str(ACTIONLINT) if ACTIONLINT.exists() else shutil.which("actionlint")
    assert actionlint, "actionlint missing: run scripts/setup-tools.sh"
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    done = subprocess.run([actionlint, "-color=false", *files], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_can_fail(tmp_path):
    """Negative control: a broken workflow must be reported."""
    actionlint = str(ACTIONLINT) if ACTIONLINT.exists() else shutil.which("actionlint")
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.nonexistent.thing }}\n      - uses: actions/checkout@v999\n        with: {bogus: 1}\n")
    done = subprocess.run([actionlint, "-color=false", str(broken)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0


@pytest.mark.parametrize("name", ["pull-request.yml", "deploy.yml"])
def test_every_action_is_pinned_to_a_commit(name):
    for job_id, step in all_steps(load(name)):
        if "uses" in step:
            assert PINNED.match(step["uses"]), f"{name}:{job_id} uses {step['uses']}"
    text = (WORKFLOWS / name).read_text()
    for line in text.splitlines():
        if "uses:" in line:
            assert re.search(r"# v\d+\.\d+\.\d+$", line), f"missing version comment: {line.strip()}"


@pytest.mark.parametrize("name", ["pull-request.yml", "deploy.yml"])
def test_permissions_are_empty_by_default_and_granted_per_job(name):
    doc = load(name)
    assert doc["permissions"] == {}
    for job_id, job in doc["jobs"].items():
        perms = job["permissions"]
        assert perms.get("contents") == "read", job_id
        assert set(perms) <= {"contents", "id-token", "pull-requests"}, job_id
        uses_gcp = any("google-github-actions/auth" in s.get("uses", "") for s in job.get("steps", []))
        assert (perms.get("id-token") == "write") == uses_gcp, f"{job_id}: id-token only where GCP auth happens"


def test_pull_request_previews_every_stack_with_policies_and_comments():
    doc = load("pull-request.yml")
    assert doc["on"] == {"pull_request": {"branches": ["main"]}}
    preview = doc["jobs"]["preview"]
    assert preview["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    assert preview["concurrency"] == {"group": "pulumi-${{ matrix.stack }}", "cancel-in-progress": False}
    pulumi = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions@"))["with"]
    assert pulumi["command"] == "preview" and pulumi["comment-on-pr"] is True
    assert pulumi["policyPacks"] == "policy" and pulumi["policyPackConfigs"] == "policy/${{ matrix.stack }}.json"
    assert preview["permissions"]["pull-requests"] == "write"
    test_job = doc["jobs"]["test"]
    assert {"run": "bash scripts/test.sh"} in test_job["steps"]
    build = next(s for s in doc["jobs"]["image"]["steps"] if s.get("uses", "").startswith("docker/build-push-action@"))
    assert build["with"]["push"] is False and build["with"]["context"] == "agent"


def test_deploy_builds_once_and_promotes_the_same_digest():
    doc = load("deploy.yml")
    jobs = doc["jobs"]
    assert doc["on"] == {"push": {"branches": ["main"]}}
    assert jobs["build"]["outputs"]["digest"] == "${{ steps.push.outputs.digest }}"
    builds = [job_id for job_id, step in all_steps(doc) if step.get("uses", "").startswith("docker/build-push-action@")]
    assert builds == ["build"]
    for job_id, stack in (("up-dev", "dev"), ("up-prod", "prod")):
        job = jobs[job_id]
        assert "build" in (job["needs"] if isinstance(job["needs"], list) else [job["needs"]])
        assert job["concurrency"] == {"group": f"pulumi-{stack}", "cancel-in-progress": False}
        up = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))["with"]
        assert up["command"] == "up" and up["stack-name"] == stack
        assert "${{ needs.build.outputs.digest }}" in up["config-map"] and "agentImageDigest" in up["config-map"]
    assert jobs["up-prod"]["environment"] == "production"
    assert "up-dev" in jobs["up-prod"]["needs"]
    promote = next(s for s in jobs["up-prod"]["steps"] if s.get("name", "").startswith("Copy the tested image"))
    assert "@$DIGEST" in promote["run"] and "imagetools create" in promote["run"]


def test_no_long_lived_keys_anywhere():
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        assert "credentials_json" not in text and "GOOGLE_APPLICATION_CREDENTIALS" not in text, path.name
        assert "workload_identity_provider" in text
