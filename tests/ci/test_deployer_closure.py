"""Each stage's deployer acts only as the service accounts its own stack runs as: the policy
pack's closure (policy/rules/access_gcp.py) over every grant the bootstrap declares and both
fixture stacks' plans. The attacks below are grants a careless or hostile change could add, each
written in a different form; every one must make the deployer reach an account its stack does
not own, and be named.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bootstrap.config import load_bootstrap_config
from bootstrap.roles import delegated_grants_condition
from policy.engine import as_resources
from policy.rules.access_gcp import Account, impersonated
from tests.ci.bootstrap_harness import evaluate_bootstrap, stack_file_config
from tests.ci.deployer_closures import deployer_problems, deployers
from tests.conftest import _fixture_plan
from tooling.mocks import FAKE_PROJECT_NUMBER

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bootstrap" / "Pulumi.ci.yaml"
DEV, PROD = "gva-fixture-dev", "gva-fixture-prod"
DEPLOYER = "ci-deploy-dev@gva-fixture-ci.iam.gserviceaccount.com"
# A project's default compute account (Compute Engine docs, "Default service accounts"): it holds
# Editor wherever the organisation policy iam.automaticIamGrantsForDefaultServiceAccounts is off.
DEFAULT_COMPUTE = f"{FAKE_PROJECT_NUMBER}-compute@developer.gserviceaccount.com"
SA = "gcp:serviceaccount/iAMMember:IAMMember"
PROJECT = "gcp:projects/iAMMember:IAMMember"


@pytest.fixture(scope="module")
def setup():
    config = stack_file_config(FIXTURE)
    run = evaluate_bootstrap(config)
    plans = [r for stack in ("dev", "prod") for r in _fixture_plan(stack).resources]
    return run, load_bootstrap_config(config), [*run.resources, *plans]


def _account_id(email: str) -> str:
    project = DEV if email == DEFAULT_COMPUTE else email.split("@")[1].split(".")[0]
    return f"projects/{project}/serviceAccounts/{email}"


def _add(resources, typ, name, **inputs):
    resources.append({"type": typ, "name": name, "parent": None, "inputs": inputs})


def _project_wide_admin(rs):
    """The layout before this change: serviceAccountAdmin on the whole stage project."""
    _add(rs, PROJECT, "a1", project=DEV, role="roles/iam.serviceAccountAdmin", member=f"serviceAccount:{DEPLOYER}")


def _act_as_default_compute(rs):
    _add(rs, SA, "a2", serviceAccountId=_account_id(DEFAULT_COMPUTE), role="roles/iam.serviceAccountUser",
         member=f"serviceAccount:{DEPLOYER}")


def _binding_on_another_stages_account(rs):
    _add(rs, "gcp:serviceaccount/iAMBinding:IAMBinding", "a3", serviceAccountId=_account_id(f"gva-prod-db@{PROD}.iam.gserviceaccount.com"),
         role="roles/iam.serviceAccountTokenCreator", members=["user:someone@example.com", f"serviceAccount:{DEPLOYER}"])


def _authoritative_policy_on_prods_nodes(rs):
    policy = {"bindings": [{"role": "roles/iam.serviceAccountAdmin", "members": [f"serviceAccount:{DEPLOYER}"]}]}
    _add(rs, "gcp:serviceaccount/iAMPolicy:IAMPolicy", "a4",
         serviceAccountId=_account_id(f"gva-prod-nodes@{PROD}.iam.gserviceaccount.com"), policyData=json.dumps(policy))


def _delegation_widened_to_token_creator(rs):
    roles = ("roles/monitoring.viewer", "roles/iam.serviceAccountTokenCreator")
    _add(rs, PROJECT, "a5", project=DEV, role="roles/resourcemanager.projectIamAdmin", member=f"serviceAccount:{DEPLOYER}",
         condition={"title": "t", "expression": delegated_grants_condition(roles).expression})


def _delegation_or_anything(rs):
    _add(rs, PROJECT, "a6", project=DEV, role="roles/resourcemanager.projectIamAdmin", member=f"serviceAccount:{DEPLOYER}",
         condition={"title": "t", "expression": delegated_grants_condition().expression + " || true"})


def _custom_role_with_act_as(rs):
    _add(rs, "gcp:projects/iAMCustomRole:IAMCustomRole", "a7-role", project=DEV, roleId="deployHelper",
         permissions=["compute.instances.get", "iam.serviceAccounts.actAs"])
    _add(rs, PROJECT, "a7", project=DEV, role=f"projects/{DEV}/roles/deployHelper", member=f"serviceAccount:{DEPLOYER}")


def _through_its_own_node_account(rs):
    """Two hops: the stack (which the deployer writes) gives its node account token creator on the
    default compute account; the deployer acts as the node account, hence as the default one."""
    _add(rs, SA, "a8", serviceAccountId=_account_id(DEFAULT_COMPUTE), role="roles/iam.serviceAccountTokenCreator",
         member=f"serviceAccount:gva-dev-nodes@{DEV}.iam.gserviceaccount.com")


def _principal_member_form(rs):
    _add(rs, SA, "a9", serviceAccountId=_account_id(DEFAULT_COMPUTE), role="roles/iam.workloadIdentityUser",
         member=f"principal://iam.googleapis.com/projects/-/serviceAccounts/{DEPLOYER}")


def _every_account_of_the_ci_project(rs):
    _add(rs, SA, "a10", serviceAccountId=_account_id(DEFAULT_COMPUTE), role="roles/iam.serviceAccountKeyAdmin",
         member="principalSet://cloudresourcemanager.googleapis.com/projects/gva-fixture-ci/type/ServiceAccount")


ATTACKS = {
    "project-wide serviceAccountAdmin": (_project_wide_admin, f"every service account of {DEV}"),
    "actAs on the default compute account": (_act_as_default_compute, DEFAULT_COMPUTE),
    "binding on another stage's account": (_binding_on_another_stages_account, f"gva-prod-db@{PROD}"),
    "authoritative policy on another stage's account": (_authoritative_policy_on_prods_nodes, f"gva-prod-nodes@{PROD}"),
    "delegation widened to token creator": (_delegation_widened_to_token_creator, f"every service account of {DEV}"),
    "delegation or'ed with anything": (_delegation_or_anything, f"every service account of {DEV}"),
    "custom role with actAs": (_custom_role_with_act_as, f"every service account of {DEV}"),
    "two hops through its own node account": (_through_its_own_node_account, DEFAULT_COMPUTE),
    "principal:// member form": (_principal_member_form, DEFAULT_COMPUTE),
    "principalSet of the CI project's accounts": (_every_account_of_the_ci_project, DEFAULT_COMPUTE),
}


def test_each_deployer_acts_as_exactly_its_own_stacks_accounts(setup):
    run, cfg, resources = setup
    assert deployer_problems(resources, run, cfg) == []
    rs = as_resources(resources)
    for stack, deployer in deployers(run).items():
        project = cfg.environment(stack).project
        reached = {a.email for a in impersonated(rs, deployer)}
        assert reached == {f"gva-{stack}-{p}@{project}.iam.gserviceaccount.com" for p in ("nodes", "db", "places")}


def test_the_delegated_project_iam_admin_impersonates_nobody(setup):
    """The deployer's conditional projectIamAdmin may grant only roles that make nobody anyone:
    without reading the condition, the closure would (wrongly) say every account of the project."""
    run, cfg, resources = setup
    admin = [r for r in run.resources if r["type"] == PROJECT and r["inputs"]["member"] == f"serviceAccount:{DEPLOYER}"
             and r["inputs"]["role"] == "roles/resourcemanager.projectIamAdmin"]
    assert len(admin) == 1
    unconditioned = dataclasses.replace(run, resources=[{**admin[0], "name": "u", "inputs": {
        k: v for k, v in admin[0]["inputs"].items() if k != "condition"}}])
    reached = impersonated(as_resources(unconditioned.resources), Account(DEPLOYER))
    assert Account(f"*@{DEV}") in reached  # the same grant without its condition: every account


@pytest.mark.parametrize("case", sorted(ATTACKS))
def test_a_deployer_reaching_an_account_its_stack_does_not_own_is_named(setup, case):
    run, cfg, resources = setup
    mutate, account = ATTACKS[case]
    attacked = [*resources]
    mutate(attacked)
    problems = deployer_problems(attacked, run, cfg)
    assert any(p.startswith(f"deployer of dev ({DEPLOYER}) can act as") and account in p for p in problems), problems
