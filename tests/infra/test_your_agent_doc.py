"""docs/your-agent.md, followed step by step: its own commands (build context, registry, digest,
the `pulumi config set` of step 4, the test call's agent name) applied to a fixture stack with
Binary Authorization and the CI attestor on (a copy of the committed prod stack under another
name, in a project directory of its own), then the rendered Deployment and every policy verdict
checked. Only GCP and Kubernetes are imitated (the plan's mocks)."""

from __future__ import annotations

import copy
import re
import shlex
import shutil
from pathlib import Path

import pytest

from tooling.plan import evaluate
from policy.engine import evaluate_plan, load_policy_config

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "your-agent.md"
P = "gke-voice-agents:"
# What `docker buildx imagetools inspect` would print for the pushed build: any valid digest.
DIGEST = "sha256:" + "4" * 64


def _commands() -> list[str]:
    return [line.strip() for block in re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S)
            for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def _documented() -> tuple[dict[str, str], str, str]:
    """(settings of step 4, the image repository of step 3, the test call's --agent-name)."""
    lines = _commands()
    (repo_line,) = [line for line in lines if line.startswith("repo=")]
    repo = shlex.split(repo_line.split("#")[0])[0].removeprefix("repo=")
    variables = {"$repo": repo, "$digest": DIGEST}
    settings = {}
    for line in lines:
        words = shlex.split(line)
        if words[:3] == ["pulumi", "config", "set"]:
            assert words[3:5] == ["--stack", "dev"], line
            key, value = words[5], words[6]
            settings[key] = variables.get(value.replace('"', ""), value)
    (call,) = [line for line in lines if "voice_agent.test_call" in line]
    words = shlex.split(call)
    return settings, repo, words[words.index("--agent-name") + 1]


@pytest.fixture(scope="module")
def byo(tmp_path_factory):
    settings, repo, agent_name = _documented()
    root = tmp_path_factory.mktemp("byo")
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, root / name)
    shutil.copy(ROOT / "Pulumi.prod.yaml", root / "Pulumi.byo.yaml")
    plan = evaluate("byo", {P + k: v for k, v in settings.items()}, root=root)
    return plan, settings, repo, agent_name


def test_the_page_sets_image_persona_and_name_as_stack_settings():
    settings, repo, agent_name = _documented()
    assert set(settings) == {"agentImageRepository", "agentImageDigest", "agentPersona", "agentName"}
    assert settings["agentImageRepository"] == repo and settings["agentImageDigest"] == DIGEST
    assert settings["agentName"] == agent_name, "the test call of step 5 dispatches the name step 4 sets"
    # Step 3's anchor line really is in the Dockerfile, and no ENV line competes with the stack.
    assert "COPY voice_agent /app/voice_agent" in (ROOT / "agent" / "Dockerfile").read_text()
    assert "ENV AGENT_PERSONA" not in DOC.read_text()


def test_the_deployment_runs_that_build_with_that_persona_and_name(byo):
    plan, settings, repo, agent_name = byo
    deployment = next(r for r in plan.of_type("kubernetes:apps/v1:Deployment") if r["name"] == "agent-deployment")
    (container,) = [c for c in deployment["inputs"]["spec"]["template"]["spec"]["containers"] if c["name"] == "agent"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["image"] == f"{repo}@{DIGEST}"
    assert env["AGENT_PERSONA"] == settings["agentPersona"] == "front_desk.persona:PERSONA"
    assert env["AGENT_NAME"] == agent_name


def test_binary_authorization_admits_exactly_that_build_and_every_rule_passes(byo):
    plan, _, repo, _ = byo
    policy = plan.one("gcp:binaryauthorization/policy:Policy")["inputs"]
    assert policy["defaultAdmissionRule"]["evaluationMode"] == "REQUIRE_ATTESTATION"
    patterns = [p["namePattern"] for p in policy["admissionWhitelistPatterns"]]
    assert f"{repo}@{DIGEST}" in patterns
    assert not [p for p in patterns if p.startswith(repo) and p != f"{repo}@{DIGEST}"], "the build, not the repository"
    assert evaluate_plan(plan.resources, "byo", config=load_policy_config("prod")) == []


def test_another_build_of_that_repository_is_not_admitted(byo):
    """Negative control: the policy rule sees a digest nothing in the stack runs."""
    plan, _, repo, _ = byo
    resources = copy.deepcopy(plan.resources)
    deployment = next(r for r in resources if r["name"] == "agent-deployment")
    container = deployment["inputs"]["spec"]["template"]["spec"]["containers"][0]
    container["image"] = f"{repo}@sha256:{'5' * 64}"
    found = [v for v in evaluate_plan(resources, "byo", config=load_policy_config("prod"))
             if v["rule"] == "binauthz-admits-the-workloads"]
    assert found and f"{repo}@sha256:{'5' * 64} is not admitted" in found[0]["message"]
