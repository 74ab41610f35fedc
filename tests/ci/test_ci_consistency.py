"""The three pieces of CI agree with each other and with the main program: the workflows read
only variables the bootstrap produces, deploy only from environments the bootstrap binds, and
the deployer's roles cover every resource the offline plan of each stack declares."""

from __future__ import annotations

import re

import pytest
import yaml

from bootstrap.roles import ACCOUNT_ROLES, DELEGATED_ROLES, DEPLOYER_ROLES, PROJECT_IAM_COVERS
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


def _bootstrap_environments() -> dict[str, str]:
    """stack -> GitHub environment (`githubEnvironment`), as the committed bootstrap stack binds them."""
    config = yaml.safe_load((ROOT / "bootstrap" / "Pulumi.ci.yaml").read_text())["config"]
    return {stack: s["githubEnvironment"] for stack, s in config["gke-voice-agents-bootstrap:environments"].items()}


def test_deploy_jobs_run_in_the_environments_the_bootstrap_binds(bootstrap):
    bound = set(bootstrap.outputs["githubEnvironmentVariables"])
    used = {j.environment for j in jobs() if j.environment}
    assert used == bound, f"workflows use {sorted(used)}, the bootstrap binds {sorted(bound)}"
    for j in jobs("deploy.yml"):
        for command in j.pulumi_commands():
            stack = stack_of(j, command["stack-name"])
            assert j.environment == _bootstrap_environments()[stack], (
                f"{j.workflow}:{j.id} runs {command['command']} on {stack} from environment {j.environment}")


def _before_approval(gate: str) -> list:
    """Jobs that can run before the gate environment's reviewers approve: every job that is not
    in that environment and does not (transitively) wait for a job that is."""
    all_jobs = {j.id: j for j in jobs("deploy.yml")}

    def waits_for_gate(job_id: str) -> bool:
        j = all_jobs[job_id]
        return j.environment == gate or any(waits_for_gate(n) for n in j.needs)

    return [*(j for j in all_jobs.values() if not waits_for_gate(j.id)), *jobs("pull-request.yml")]


def _identity_of(j, bootstrap) -> str | None:
    """The service account a job's auth step acts as, resolved through the bootstrap's variables."""
    for step in j.steps_using("google-github-actions/auth"):
        name = VAR_REFERENCE.search(step["with"]["service_account"]).group(1)
        scope = bootstrap.outputs["githubEnvironmentVariables"].get(j.environment, {}) if j.environment else {}
        return {**bootstrap.outputs["githubVariables"], **scope}[name]
    return None


def test_no_job_before_prods_approval_can_decrypt_prod_or_read_its_state(bootstrap):
    """The identities of every job that runs before the production approval (the build, dev's
    up, the offline prod plan, every pull-request job) hold no decrypt on prod's secrets key and
    no read on prod's state bucket, read from every binding the bootstrap declares."""
    from bootstrap.config import load_bootstrap_config
    from tests.ci.bootstrap_harness import stack_file_config

    cfg = load_bootstrap_config(stack_file_config())
    gated = [e for e in cfg.environments if e.gated]
    assert gated, "the committed bootstrap has a gated stage"
    for env in gated:
        early = _before_approval(env.github_environment)
        assert {j.id for j in early if j.workflow == "deploy.yml"} == {"build", "up-dev", "plan-prod"}
        members = {f"serviceAccount:{email}" for j in early if (email := _identity_of(j, bootstrap))}
        assert members, "the early jobs do authenticate (build, up-dev, previews)"
        reach = [(r["name"], r["inputs"]["role"]) for r in bootstrap.resources
                 if r["inputs"].get("member") in members
                 and (str(r["inputs"].get("cryptoKeyId", "")).endswith(f"/stack-secrets-{env.stack}")
                      or r["inputs"].get("bucket") == cfg.state_bucket(env.stack)
                      or (r["type"] == "gcp:projects/iAMMember:IAMMember" and r["inputs"]["project"] == env.project))]
        assert reach == [], f"jobs before the {env.github_environment} approval reach {env.stack}: {reach}"
        # Environment secrets (a passphrase, a Pulumi token) reach only jobs of that environment.
        assert not [j.id for j in early if j.environment == env.github_environment]


def test_the_approval_check_sees_an_early_job_that_could_read_prod(bootstrap):
    """Negative control: the old plan-prod (a planner that decrypts prod, before the approval) is caught."""
    early_member = f"serviceAccount:{bootstrap.outputs['deployServiceAccounts']['dev']}"
    leaked = [*bootstrap.resources, {"type": "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "name": "planner", "parent": "state",
                                     "inputs": {"cryptoKeyId": "x/cryptoKeys/stack-secrets-prod", "member": early_member,
                                                "role": "roles/cloudkms.cryptoKeyDecrypter"}}]
    reach = [r["name"] for r in leaked if r["inputs"].get("member") == early_member
             and str(r["inputs"].get("cryptoKeyId", "")).endswith("/stack-secrets-prod")]
    assert reach == ["planner"]


def test_prods_attestor_is_the_one_the_bootstrap_creates(bootstrap):
    """Pulumi.prod.yaml's binaryAuthorizationAttestor names the attestor only the build job signs for."""
    main = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    assert main["gke-voice-agents:binaryAuthorizationAttestor"] == bootstrap.outputs["buildAttestor"]


def test_the_build_computes_each_registry_the_stack_creates(plan):
    """The build job signs for `<registry>/<image>@<digest>` with registries computed from the
    committed stack files; an attestation for another path would not admit the image."""
    from infra.images import targets

    assert targets([plan.stack])["registries"][plan.stack] == plan.outputs["registryUrl"]


def test_the_previewed_stacks_have_policy_configs_and_committed_stack_files(bootstrap):
    import json

    matrix = json.loads(bootstrap.outputs["githubVariables"]["PREVIEW_MATRIX"])
    for entry in matrix["include"]:
        assert (ROOT / "policy" / f"{entry['stack']}.json").is_file()
        assert (ROOT / f"Pulumi.{entry['stack']}.yaml").is_file()
        assert entry["qualified"] == bootstrap.outputs["stackNames"][entry["stack"]]


BOOTSTRAP_YAML = """config:
  gke-voice-agents-bootstrap:environments:
    dev:
      project: acme-dev
      githubEnvironment: dev
"""


@pytest.mark.parametrize(("stack", "project", "says"), [
    ("dev", "acme-dev", None),
    ("dev", "acme-dev-2", "gives stack dev project acme-dev, but its gcp:project is acme-dev-2: CI's deployer"),
    ("staging", "acme-dev", "names no environment for stack staging, so CI does not deploy it"),
])
def test_the_plan_says_when_ci_cannot_deploy_a_stack(tmp_path, stack, project, says):
    """The bootstrap and the stack files are both the user's: a stack whose project the bootstrap
    does not grant (edited project id, a stack copied under a new name) is told by the plan,
    instead of failing its first CI `up`; no test pins the user's own values."""
    from tooling.plan import ci_bootstrap_line

    bootstrap = tmp_path / "Pulumi.ci.yaml"
    bootstrap.write_text(BOOTSTRAP_YAML)
    line = ci_bootstrap_line(stack, project, bootstrap)
    assert (line is None) if says is None else (says in line), line


def test_without_a_bootstrap_file_the_plan_says_nothing_about_ci(tmp_path):
    from tooling.plan import ci_bootstrap_line

    assert ci_bootstrap_line("dev", "acme-dev", tmp_path / "absent.yaml") is None


def test_the_deployer_roles_cover_every_resource_of_the_plan(plan):
    """A resource type nobody granted would fail the first `pulumi up` in CI, not here."""
    prefixes = ([p for use in DEPLOYER_ROLES for p in use.covers] + list(PROJECT_IAM_COVERS)
                + [p for use, _ in ACCOUNT_ROLES for p in use.covers])
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
        *(e.github_environment for e in cfg.environments), cfg.build_environment}), bootstrap_environments
