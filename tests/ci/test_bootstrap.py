"""The bootstrap program under Pulumi mocks (GCP faked, nothing else): who GitHub may act as,
with which rights, and where state and secrets live. Plus its config validation."""

from __future__ import annotations

import json
import re

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.mocks import set_mocks
from pulumi.runtime.sync_await import _sync_await

from bootstrap.config import PROJECT, ConfigError, load_bootstrap_config
from bootstrap.program import build
from bootstrap.roles import DELEGATED_ROLES, DEPLOYER_ROLES, PREVIEWER_ROLES
from infra.mocks import FAKE_PROJECT_NUMBER
from tests.ci.bootstrap_harness import BootstrapMocks, BootstrapRun, evaluate_bootstrap, stack_file_config

REPO = "my-org/gke-voice-agents"
POOL = f"projects/{FAKE_PROJECT_NUMBER}/locations/global/workloadIdentityPools/github"
PROJECT_IAM = "gcp:projects/iAMMember:IAMMember"
SA_IAM = "gcp:serviceaccount/iAMMember:IAMMember"
KEY_IAM = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
BUCKET_IAM = "gcp:storage/bucketIAMMember:BucketIAMMember"


@pytest.fixture(scope="module")
def run() -> BootstrapRun:
    return evaluate_bootstrap()


def _with(**changes: object) -> dict[str, str]:
    config = stack_file_config()
    for name, value in changes.items():
        full = name if ":" in name else f"{PROJECT}:{name}"
        if value is None:
            config.pop(full, None)
        else:
            config[full] = value if isinstance(value, str) else json.dumps(value)
    return config


def _grants(run: BootstrapRun, parent: str) -> dict[tuple[str, str], dict]:
    return {(r["inputs"]["project"], r["inputs"]["role"]): r["inputs"]
            for r in run.of_type(PROJECT_IAM) if r["parent"] == parent}


# --- identity federation -------------------------------------------------------------------------

def test_the_provider_accepts_tokens_of_this_repository_only(run):
    provider = run.of_type("gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider")[0]["inputs"]
    assert provider["oidc"] == {"issuerUri": "https://token.actions.githubusercontent.com"}
    assert provider["attributeCondition"] == f"assertion.repository == '{REPO}'"
    assert provider["attributeMapping"]["google.subject"] == "assertion.sub"
    assert run.outputs["workloadIdentityProvider"] == f"{POOL}/providers/github-actions"


def test_the_owner_id_pins_the_owner_when_given():
    run = evaluate_bootstrap(_with(githubRepositoryOwnerId="1234567"))
    provider = run.of_type("gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider")[0]["inputs"]
    assert provider["attributeCondition"] == (
        f"assertion.repository == '{REPO}' && assertion.repository_owner_id == '1234567'")


def test_each_identity_is_usable_from_one_github_subject_only(run):
    """Deployers only from their GitHub environment (reviewers, branch rule), the previewer only
    from pull requests. Exactly one binding each: nothing else can impersonate them."""
    bindings = {r["parent"]: r["inputs"] for r in run.of_type(SA_IAM)}
    assert len(run.of_type(SA_IAM)) == len(bindings) == 3
    expected = {
        "ci-preview": f"repo:{REPO}:pull_request",
        "ci-deploy-dev": f"repo:{REPO}:environment:dev",
        "ci-deploy-prod": f"repo:{REPO}:environment:production",
    }
    for account, subject in expected.items():
        assert bindings[account]["role"] == "roles/iam.workloadIdentityUser"
        assert bindings[account]["member"] == f"principal://iam.googleapis.com/{POOL}/subject/{subject}"
        assert bindings[account]["serviceAccountId"].endswith(f"/serviceAccounts/{account}@my-voice-agents-prod.iam.gserviceaccount.com")


def test_no_key_is_created_for_any_service_account(run):
    assert not [r for r in run.resources if r["type"].startswith("gcp:serviceaccount/key")]


# --- rights ----------------------------------------------------------------------------------------

def test_a_deployer_holds_its_stacks_roles_in_its_own_project_only(run):
    dev = _grants(run, "ci-deploy-dev")
    assert {p for p, _ in dev} == {"my-voice-agents-dev"}
    assert {r for _, r in dev} == {u.role for u in DEPLOYER_ROLES} | {"roles/resourcemanager.projectIamAdmin"}
    prod = _grants(run, "ci-deploy-prod")
    assert {r for p, r in prod if p == "my-voice-agents-prod"} == {r for _, r in dev}
    # Promotion copies dev's image: prod's deployer may read dev's registry, nothing more there.
    assert {r for p, r in prod if p == "my-voice-agents-dev"} == {"roles/artifactregistry.reader"}


def test_project_iam_admin_can_only_grant_the_stacks_own_roles(run):
    for account in ("ci-deploy-dev", "ci-deploy-prod"):
        admin = [g for (_, role), g in _grants(run, account).items() if role == "roles/resourcemanager.projectIamAdmin"]
        assert len(admin) == 1
        expression = admin[0]["condition"]["expression"]
        assert "iam.googleapis.com/modifiedGrantsByRole" in expression and ".hasOnly([" in expression
        allowed = re.search(r"\.hasOnly\(\[(.*)\]\)$", expression).group(1)
        assert sorted(r.strip(" '") for r in allowed.split(",")) == sorted(DELEGATED_ROLES)
        assert "roles/owner" not in expression and "roles/editor" not in expression
    unconditioned = [g for r in ("ci-deploy-dev", "ci-deploy-prod") for (_, role), g in _grants(run, r).items()
                     if "condition" not in g and role in {"roles/owner", "roles/editor", "roles/resourcemanager.projectIamAdmin"}]
    assert unconditioned == []


def test_the_previewer_only_reads(run):
    roles = {role for _, role in _grants(run, "ci-preview")}
    assert roles == {u.role for u in PREVIEWER_ROLES}
    assert all(r.endswith(("viewer", "Viewer")) for r in roles)
    bucket = [r["inputs"]["role"] for r in run.of_type(BUCKET_IAM) if r["name"] == "state-bucket-previewer"]
    assert bucket == ["roles/storage.objectViewer"]
    keys = {r["inputs"]["role"] for r in run.of_type(KEY_IAM) if r["name"].endswith("-previewer")}
    assert keys == {"roles/cloudkms.cryptoKeyDecrypter"}


def test_each_stack_has_its_own_key_and_only_its_deployer_unwraps_it(run):
    keys = {r["name"]: r["inputs"] for r in run.of_type("gcp:kms/cryptoKey:CryptoKey")}
    assert set(keys) == {"state-key-dev", "state-key-prod"}
    assert {k["rotationPeriod"] for k in keys.values()} == {"7776000s"}
    for stack in ("dev", "prod"):
        members = {r["inputs"]["member"] for r in run.of_type(KEY_IAM)
                   if r["inputs"]["cryptoKeyId"].endswith(f"/stack-secrets-{stack}")}
        other = "prod" if stack == "dev" else "dev"
        assert f"serviceAccount:ci-deploy-{stack}@my-voice-agents-prod.iam.gserviceaccount.com" in members
        assert f"serviceAccount:ci-deploy-{other}@my-voice-agents-prod.iam.gserviceaccount.com" not in members
    assert run.outputs["secretsProviders"]["prod"] == (
        "gcpkms://projects/my-voice-agents-prod/locations/global/keyRings/pulumi-secrets/cryptoKeys/stack-secrets-prod")


def test_the_state_bucket_is_private_versioned_and_protected(run):
    bucket = run.of_type("gcp:storage/bucket:Bucket")[0]
    inputs = bucket["inputs"]
    assert inputs["name"] == "my-voice-agents-prod-pulumi-state"
    assert inputs["uniformBucketLevelAccess"] is True and inputs["publicAccessPrevention"] == "enforced"
    assert inputs["versioning"] == {"enabled": True} and inputs["forceDestroy"] is False
    assert {bucket["name"], "state-key-ring", "state-key-dev", "state-key-prod"} <= run.protected
    assert run.outputs["stateBackendUrl"] == "gs://my-voice-agents-prod-pulumi-state"


def test_pulumi_cloud_and_passphrase_need_no_bucket_and_no_keys():
    run = evaluate_bootstrap(_with(stateBackend="pulumi-cloud", secretsProvider="passphrase"))
    assert not run.of_type("gcp:storage/bucket:Bucket") and not run.of_type("gcp:kms/keyRing:KeyRing")
    assert run.outputs["githubVariables"]["PULUMI_BACKEND_URL"] == ""
    assert run.outputs["secretsProviders"] == {}
    assert "apis-my-voice-agents-prod-cloudkms" not in {r["name"] for r in run.resources}


def test_apis_are_enabled_and_never_disabled_again(run):
    services = run.of_type("gcp:projects/service:Service")
    enabled = {(s["inputs"]["project"], s["inputs"]["service"]) for s in services}
    assert ("my-voice-agents-prod", "sts.googleapis.com") in enabled
    assert ("my-voice-agents-dev", "container.googleapis.com") in enabled
    assert all(s["inputs"]["disableOnDestroy"] is False for s in services)


def test_an_apply_on_the_exported_variables_really_runs():
    """Guards against assertions inside `apply` that never execute (unknown values in preview):
    the check is returned, awaited, and counted."""
    pulumi_settings.reset_options(project=PROJECT, stack="ci", preview=False)
    mocks = BootstrapMocks()
    set_mocks(mocks, project=PROJECT, stack="ci", preview=False)
    outputs = build(load_bootstrap_config(stack_file_config()))
    runs = []

    def check(variables: dict) -> dict:
        assert variables["production"]["GCP_DEPLOY_SERVICE_ACCOUNT"] == "ci-deploy-prod@my-voice-agents-prod.iam.gserviceaccount.com"
        runs.append(variables)
        return variables

    checked = pulumi.Output.from_input(outputs["githubEnvironmentVariables"]).apply(check)
    _sync_await(checked.future())
    assert len(runs) == 1


# --- configuration -------------------------------------------------------------------------------

def test_the_committed_example_stack_is_valid():
    cfg = load_bootstrap_config(stack_file_config())
    assert [e.stack for e in cfg.environments] == ["dev", "prod"]
    assert cfg.environment("prod").promote_from == "dev"


@pytest.mark.parametrize(("changes", "message"), [
    ({"githubRepository": "gke-voice-agents"}, r"githubRepository = 'gke-voice-agents': must be the repository as owner/name"),
    ({"environments": None}, r"environments = None: required: a map of stack -> settings"),
    ({"environments": {"dev": {"project": "my-voice-agents-dev"}}}, r"environments\.dev\.githubEnvironment = None: must be a GitHub environment name"),
    ({"environments": {"Dev": {"project": "my-voice-agents-dev", "githubEnvironment": "dev"}}}, r"environments\.Dev = 'Dev': stack names are 1-20 lower-case"),
    ({"environments": {"dev": {"project": "my-voice-agents-dev", "githubEnvironment": "dev", "promoteFrom": "qa"}}},
     r"environments\.dev\.promoteFrom = 'qa': must name another stack"),
    ({"environments": {"dev": {"project": "my-voice-agents-dev", "githubEnvironment": "x"},
                       "prod": {"project": "my-voice-agents-prod", "githubEnvironment": "x"}}},
     r"each stack needs its own GitHub environment"),
    ({"environments": {"dev": {"project": "my-voice-agents-dev", "githubEnvironment": "dev", "region": "eu"}}},
     r"environments\.dev = \['region'\]: unknown keys"),
    ({"gcp:project": "my-voice-agents-dev"}, r"gcp:project = 'my-voice-agents-dev': is also the project of stack dev, which is promoted from"),
    ({"poolId": "gcp-github"}, r"poolId = 'gcp-github': the gcp- prefix is reserved"),
    ({"stateBackend": "s3"}, r"stateBackend = 's3': must be one of gcs, pulumi-cloud"),
    ({"secretsKeyUsers": ["platform@example.com"]}, r"secretsKeyUsers = \['platform@example.com'\]: must be a list of IAM members"),
    ({"githubRepositoryOwnerId": "my-org"}, r"githubRepositoryOwnerId = 'my-org': must be the numeric owner id"),
    ({"stateNoncurrentDays": "0"}, r"stateNoncurrentDays = '0': must be in \[1, 3650\]"),
])
def test_each_invalid_setting_is_named_with_its_value_and_the_fix(changes, message):
    with pytest.raises(ConfigError, match=message):
        load_bootstrap_config(_with(**changes))


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        load_bootstrap_config(_with(githubRepository="nope", stateBackend="s3", poolId="gcp-x"))
    assert len(caught.value.problems) == 3


def test_the_bootstrap_is_its_own_project_on_the_main_venv():
    """A separate project (its own state and stack), the same pinned SDKs as the main program."""
    import yaml

    from tests.ci.bootstrap_harness import BOOTSTRAP

    project = yaml.safe_load((BOOTSTRAP / "Pulumi.yaml").read_text())
    assert project["name"] == PROJECT != "gke-voice-agents"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "../.venv"}}
