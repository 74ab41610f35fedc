"""The three pieces of CI agree with each other and with the main program: the workflows read
only variables the bootstrap produces, deploy only from environments the bootstrap binds, and
the deployer's roles cover every resource the offline plan of each stack declares."""

from __future__ import annotations

import re

import pytest
import yaml

from bootstrap.roles import DELEGATED_ROLES, DEPLOYER_ROLES, PROJECT_IAM_COVERS
from tests.ci.bootstrap_harness import BootstrapRun, evaluate_bootstrap
from tests.ci.workflows import ROOT, VAR_REFERENCE, jobs, stack_of

# Types that need no GCP role: our own components, providers, and purely local resources.
NO_ROLE_NEEDED = ("gke-voice-agents:", "pulumi:providers:", "random:")


@pytest.fixture(scope="module")
def bootstrap() -> BootstrapRun:
    return evaluate_bootstrap()


def test_every_variable_a_workflow_reads_is_one_the_bootstrap_outputs(bootstrap):
    repo_level = set(bootstrap.outputs["githubVariables"])
    per_environment = bootstrap.outputs["githubEnvironmentVariables"]
    for j in jobs():
        available = repo_level | set(per_environment.get(j.environment, {}))
        read = set(VAR_REFERENCE.findall(j.text()))
        assert read <= available, f"{j.workflow}:{j.id} reads {sorted(read - available)}, which the bootstrap never sets"


def _bootstrap_environments(field: str) -> dict[str, str]:
    """stack -> GitHub environment (`githubEnvironment` or `planEnvironment`), as the committed
    bootstrap stack binds them."""
    config = yaml.safe_load((ROOT / "bootstrap" / "Pulumi.ci.yaml").read_text())["config"]
    return {stack: s[field] for stack, s in config["gke-voice-agents-bootstrap:environments"].items() if field in s}


def test_deploy_jobs_run_in_the_environments_the_bootstrap_binds(bootstrap):
    bound = set(bootstrap.outputs["githubEnvironmentVariables"])
    used = {j.environment for j in jobs() if j.environment}
    assert used == bound, f"workflows use {sorted(used)}, the bootstrap binds {sorted(bound)}"
    for j in jobs("deploy.yml"):
        for command in j.pulumi_commands():
            field = "githubEnvironment" if command["command"] == "up" else "planEnvironment"
            stack = stack_of(j, command["stack-name"])
            assert j.environment == _bootstrap_environments(field)[stack], (
                f"{j.workflow}:{j.id} runs {command['command']} on {stack} from environment {j.environment}")


def test_the_previewed_stacks_have_policy_configs_and_committed_stack_files(bootstrap):
    import json

    matrix = json.loads(bootstrap.outputs["githubVariables"]["PREVIEW_MATRIX"])
    for entry in matrix["include"]:
        assert (ROOT / "policy" / f"{entry['stack']}.json").is_file()
        assert (ROOT / f"Pulumi.{entry['stack']}.yaml").is_file()
        assert entry["qualified"] == bootstrap.outputs["stackNames"][entry["stack"]]


def test_the_bootstrap_covers_exactly_the_committed_stacks_in_their_projects():
    config = yaml.safe_load((ROOT / "bootstrap" / "Pulumi.ci.yaml").read_text())["config"]
    environments = config["gke-voice-agents-bootstrap:environments"]
    committed = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))
    assert sorted(environments) == committed
    for stack, settings in environments.items():
        main = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert settings["project"] == main["gcp:project"], f"bootstrap stack {stack} points at another project"


def test_the_deployer_roles_cover_every_resource_of_the_plan(plan):
    """A resource type nobody granted would fail the first `pulumi up` in CI, not here."""
    prefixes = [p for use in DEPLOYER_ROLES for p in use.covers] + list(PROJECT_IAM_COVERS)
    uncovered = sorted({r["type"] for r in plan.resources
                        if not r["type"].startswith(NO_ROLE_NEEDED) and not r["type"].startswith(tuple(prefixes))})
    assert not uncovered, f"stack {plan.stack}: no deployer role manages {uncovered}; add one to bootstrap/roles.py"


def test_the_deployer_may_grant_exactly_the_project_roles_the_plan_grants(plan):
    granted = {r["inputs"]["role"] for r in plan.of_type("gcp:projects/iAMMember:IAMMember")}
    assert granted == set(DELEGATED_ROLES), f"stack {plan.stack} grants {sorted(granted)}"


STACK_OUTPUT_READ = re.compile(r"pulumi stack output (\w+) --stack")


def _outputs_the_workflows_read() -> set[str]:
    return {name for j in jobs() for step in j.steps for name in STACK_OUTPUT_READ.findall(step.get("run", ""))}


def test_the_workflows_read_registry_url_and_the_running_commit():
    assert _outputs_the_workflows_read() == {"registryUrl", "agentImageTag"}


def test_every_stack_output_the_workflows_read_exists(plan):
    """A missing output makes the order check see 'nothing deployed' and let any run through."""
    missing = _outputs_the_workflows_read() - set(plan.outputs)
    assert not missing, f"stack {plan.stack} exports no {sorted(missing)}"


def test_the_provider_trusts_the_workflow_and_branch_that_really_deploy():
    """The provider accepts deployer tokens only from `deployWorkflow` on `deployBranch`: those
    must be the file that holds the deploy jobs and the branch it runs on."""
    from bootstrap.config import load_bootstrap_config
    from tests.ci.bootstrap_harness import stack_file_config
    from tests.ci.workflows import load

    cfg = load_bootstrap_config(stack_file_config())
    deploy = ROOT / cfg.deploy_workflow
    assert deploy.is_file(), cfg.deploy_workflow
    assert load(deploy.name)["on"] == {"push": {"branches": [cfg.deploy_branch]}}
    assert {j.environment for j in jobs(deploy.name) if j.environment} == set(bootstrap_environments := {
        n for e in cfg.environments for n in (e.github_environment, e.plan_environment) if n}), bootstrap_environments
