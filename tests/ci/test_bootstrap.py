"""The bootstrap program under Pulumi mocks (GCP faked, nothing else): who GitHub may act as,
with which rights, and where state and secrets live. Plus its config validation."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.mocks import set_mocks
from pulumi.runtime.sync_await import _sync_await

from bootstrap.config import PROJECT, ConfigError, load_bootstrap_config
from bootstrap.program import build
from bootstrap.roles import DELEGATED_ROLES, DEPLOYER_ROLES, PREVIEWER_ROLES
from tooling.mocks import FAKE_PROJECT_NUMBER
from tests.ci.bootstrap_harness import BootstrapMocks, BootstrapRun, evaluate_bootstrap, evaluate_build, stack_file_config
from tests.ci.cel import evaluate_condition
from tests.ci.trust import violations

REPO = "my-org/gke-voice-agents"
# The bootstrap settings these tests evaluate: a fixture of our own, not the user's
# bootstrap/Pulumi.ci.yaml (a user edits that file).
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bootstrap" / "Pulumi.ci.yaml"
POOL = f"projects/{FAKE_PROJECT_NUMBER}/locations/global/workloadIdentityPools/github"
PROJECT_IAM = "gcp:projects/iAMMember:IAMMember"
SA_IAM = "gcp:serviceaccount/iAMMember:IAMMember"
KEY_IAM = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
BUCKET_IAM = "gcp:storage/bucketIAMMember:BucketIAMMember"


@pytest.fixture(scope="module")
def run() -> BootstrapRun:
    return evaluate_bootstrap(stack_file_config(FIXTURE))


def _with(**changes: object) -> dict[str, str]:
    config = stack_file_config(FIXTURE)
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

def test_the_provider_trusts_this_repository_by_its_ids(run):
    provider = run.of_type("gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider")[0]["inputs"]
    assert provider["oidc"] == {"issuerUri": "https://token.actions.githubusercontent.com"}
    condition = provider["attributeCondition"]
    assert "assertion.repository_owner_id == '1234567'" in condition
    assert "assertion.repository_id == '765432109'" in condition
    assert provider["attributeMapping"]["google.subject"] == "assertion.sub"
    assert run.outputs["workloadIdentityProvider"] == f"{POOL}/providers/github-actions"


def _exchange(run: BootstrapRun, **claims: str) -> str | None:
    """What Google STS + IAM would let a GitHub token act as: None when the provider's condition
    refuses the token, else the one account whose binding names the token's subject."""
    provider = run.of_type("gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider")[0]["inputs"]
    token = {"repository": REPO, "repository_id": "765432109", "repository_owner_id": "1234567", **claims}
    if not evaluate_condition(provider["attributeCondition"], token):
        return None
    subject = f"principal://iam.googleapis.com/{POOL}/subject/{token['sub']}"
    matches = [r["parent"] for r in run.of_type(SA_IAM) if r["inputs"]["member"] == subject]
    assert len(matches) <= 1, matches
    return matches[0] if matches else None


DEPLOY_ON_MAIN = {"ref": "refs/heads/main", "job_workflow_ref": f"{REPO}/.github/workflows/deploy.yml@refs/heads/main"}


@pytest.mark.parametrize(("claims", "account"), [
    # Pull requests: the previewer, whatever workflow or ref.
    ({"sub": f"repo:{REPO}:pull_request", "ref": "refs/pull/7/merge",
      "job_workflow_ref": f"{REPO}/.github/workflows/pull-request.yml@refs/pull/7/merge"}, "ci-preview"),
    # The deploy workflow on main, in each environment: that environment's identity.
    ({"sub": f"repo:{REPO}:environment:dev", **DEPLOY_ON_MAIN}, "ci-deploy-dev"),
    ({"sub": f"repo:{REPO}:environment:production", **DEPLOY_ON_MAIN}, "ci-deploy-prod"),
    ({"sub": f"repo:{REPO}:environment:build", **DEPLOY_ON_MAIN}, "ci-build"),
    # The retired plan environment binds nobody any more.
    ({"sub": f"repo:{REPO}:environment:production-plan", **DEPLOY_ON_MAIN}, None),
    # The build environment from a pull request: refused by the provider.
    ({"sub": f"repo:{REPO}:environment:build", "ref": "refs/pull/7/merge",
      "job_workflow_ref": f"{REPO}/.github/workflows/deploy.yml@refs/pull/7/merge"}, None),
    # The deploy workflow from another branch, even in the right environment: refused.
    ({"sub": f"repo:{REPO}:environment:production", "ref": "refs/heads/hotfix",
      "job_workflow_ref": f"{REPO}/.github/workflows/deploy.yml@refs/heads/hotfix"}, None),
    # Another workflow on main that declares the environment: refused.
    ({"sub": f"repo:{REPO}:environment:production", "ref": "refs/heads/main",
      "job_workflow_ref": f"{REPO}/.github/workflows/other.yml@refs/heads/main"}, None),
    # A pull request whose job declares an environment: refused (its ref is not main).
    ({"sub": f"repo:{REPO}:environment:dev", "ref": "refs/pull/7/merge",
      "job_workflow_ref": f"{REPO}/.github/workflows/deploy.yml@refs/pull/7/merge"}, None),
    # A repository re-registered under the same name (new ids): refused.
    ({"sub": f"repo:{REPO}:environment:production", "repository_id": "1", **DEPLOY_ON_MAIN}, None),
    ({"sub": f"repo:{REPO}:environment:production", "repository_owner_id": "2", **DEPLOY_ON_MAIN}, None),
    # A push to main outside any environment: accepted by the provider, bound to nobody.
    ({"sub": f"repo:{REPO}:ref:refs/heads/main", **DEPLOY_ON_MAIN}, None),
])
def test_each_identity_is_reachable_from_one_kind_of_job_only(run, claims, account):
    assert _exchange(run, **claims) == account


def test_each_identity_has_exactly_one_workload_identity_binding(run):
    ci = [r for r in run.of_type(SA_IAM) if r["inputs"]["serviceAccountId"].endswith("@gva-fixture-ci.iam.gserviceaccount.com")]
    bindings = {r["parent"]: r["inputs"] for r in ci}
    assert len(ci) == len(bindings) == 4
    # Every other service-account grant is a deployer's, on its own stage's accounts (below).
    assert {r["inputs"]["role"] for r in run.of_type(SA_IAM) if r not in ci} == {
        "roles/iam.serviceAccountAdmin", "roles/iam.serviceAccountUser"}
    for account, binding in bindings.items():
        assert binding["role"] == "roles/iam.workloadIdentityUser"
        assert binding["serviceAccountId"].endswith(f"/serviceAccounts/{account}@gva-fixture-ci.iam.gserviceaccount.com")


def test_no_key_is_created_for_any_service_account(run):
    assert not [r for r in run.resources if r["type"].startswith("gcp:serviceaccount/key")]


# --- rights ----------------------------------------------------------------------------------------

def test_a_deployer_holds_its_stacks_roles_in_its_own_project_only(run):
    dev = _grants(run, "ci-deploy-dev")
    assert {p for p, _ in dev} == {"gva-fixture-dev"}
    assert {r for _, r in dev} == {u.role for u in DEPLOYER_ROLES} | {"roles/resourcemanager.projectIamAdmin"}
    prod = _grants(run, "ci-deploy-prod")
    assert {r for p, r in prod if p == "gva-fixture-prod"} == {r for _, r in dev}
    # Promotion copies dev's image: prod's deployer may read dev's registry, nothing more there.
    assert {r for p, r in prod if p == "gva-fixture-dev"} == {"roles/artifactregistry.reader"}


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


def test_the_previewer_only_reads_and_only_the_previewed_stacks(run):
    """Pull-request code runs as the previewer: it reaches dev (previewStacks) and nothing of prod."""
    grants = _grants(run, "ci-preview")
    assert {p for p, _ in grants} == {"gva-fixture-dev"}
    assert {r for _, r in grants} == {u.role for u in PREVIEWER_ROLES}
    member = "serviceAccount:ci-preview@gva-fixture-ci.iam.gserviceaccount.com"
    buckets = {(r["inputs"]["bucket"], r["inputs"]["role"]) for r in run.of_type(BUCKET_IAM) if r["inputs"]["member"] == member}
    assert buckets == {("gva-fixture-ci-pulumi-dev", "roles/storage.objectViewer")}
    keys = {(r["inputs"]["cryptoKeyId"].rpartition("/")[2], r["inputs"]["role"])
            for r in run.of_type(KEY_IAM) if r["inputs"]["member"] == member}
    assert keys == {("stack-secrets-dev", "roles/cloudkms.cryptoKeyDecrypter")}


def test_a_gated_stage_is_never_previewed_by_pull_requests():
    """Pull-request code runs as the previewer: previewing prod would hand every branch of the
    repository prod's state and secrets before anyone approves anything."""
    with pytest.raises(ConfigError, match=r"previewStacks = \['dev', 'prod'\]: lists prod, which is promoted from dev behind "
                                          r"its environment's reviewers: pull-request code runs as the previewer"):
        load_bootstrap_config(_with(previewStacks=["dev", "prod"]))


def _secret(name: str) -> dict[str, str]:
    return {"resource.type": "secretmanager.googleapis.com/Secret", "resource.name": f"projects/{FAKE_PROJECT_NUMBER}/secrets/{name}"}


def test_the_secret_admin_role_reaches_only_the_stacks_own_secrets(run):
    for stack, other in (("dev", "prod"), ("prod", "dev")):
        (grant,) = [g for (_, role), g in _grants(run, f"ci-deploy-{stack}").items() if role == "roles/secretmanager.admin"]
        expression = grant["condition"]["expression"]
        assert evaluate_condition(expression, _secret(f"{stack}-livekit-api-key"))
        assert evaluate_condition(expression, {"resource.type": "cloudresourcemanager.googleapis.com/Project",
                                               "resource.name": f"projects/{FAKE_PROJECT_NUMBER}"}), "create is checked on the project"
        for refused in (f"{other}-livekit-api-key", "payments-api-token", f"{stack}-livekit", f"x{stack}-livekit-api-key"):
            assert not evaluate_condition(expression, _secret(refused)), refused
        # Another project's number: the same secret id elsewhere is not the stack's.
        assert not evaluate_condition(expression, {**_secret(f"{stack}-livekit-api-key"),
                                                   "resource.name": f"projects/999/secrets/{stack}-livekit-api-key"})


def test_the_secret_condition_covers_every_secret_the_plan_creates(plan):
    from infra.names import livekit_secret_id

    prefix = livekit_secret_id(plan.stack, "")
    ids = [r["inputs"]["secretId"] for r in plan.of_type("gcp:secretmanager/secret:Secret")]
    assert ids and all(i.startswith(prefix) for i in ids), ids


def test_the_builder_pushes_and_signs_and_reads_no_stage(run):
    """The build job's identity: push to the first stage's registry, store attestations there,
    sign with the attestor's key; no state bucket, no stack secrets key, nothing in prod."""
    grants = _grants(run, "ci-build")
    assert set(grants) == {("gva-fixture-dev", "roles/artifactregistry.writer"),
                           ("gva-fixture-dev", "roles/containeranalysis.occurrences.editor"),
                           ("gva-fixture-dev", "roles/ondemandscanning.admin")}
    member = "serviceAccount:ci-build@gva-fixture-ci.iam.gserviceaccount.com"
    assert not [r for r in run.of_type(BUCKET_IAM) if r["inputs"]["member"] == member]
    keys = {(r["inputs"]["cryptoKeyId"].rpartition("/keyRings/")[2], r["inputs"]["role"])
            for r in run.of_type(KEY_IAM) if r["inputs"]["member"] == member}
    assert keys == {("build-attestation/cryptoKeys/attestor", "roles/cloudkms.signerVerifier")}


def test_only_the_builder_may_sign_and_each_stage_may_verify(run):
    key = run.named("attestation-key")["inputs"]
    assert key["purpose"] == "ASYMMETRIC_SIGN" and key["versionTemplate"]["algorithm"] == "EC_SIGN_P256_SHA256"
    assert {"attestation-key", "attestation-key-ring"} <= run.protected
    signers = [r["inputs"]["member"] for r in run.of_type(KEY_IAM) if r["inputs"]["cryptoKeyId"].endswith("/cryptoKeys/attestor")]
    assert signers == ["serviceAccount:ci-build@gva-fixture-ci.iam.gserviceaccount.com"]
    (attestor,) = run.of_type("gcp:binaryauthorization/attestor:Attestor")
    note = attestor["inputs"]["attestationAuthorityNote"]
    assert note["noteReference"] == "projects/gva-fixture-ci/notes/built-by-ci"
    (public_key,) = note["publicKeys"]
    assert public_key["id"] == ("//cloudkms.googleapis.com/v1/projects/gva-fixture-ci/locations/global/keyRings/"
                                "build-attestation/cryptoKeys/attestor/cryptoKeyVersions/1")
    assert public_key["pkixPublicKey"]["signatureAlgorithm"] == "EC_SIGN_P256_SHA256"
    assert public_key["pkixPublicKey"]["publicKeyPem"].startswith("-----BEGIN PUBLIC KEY-----")
    agent = f"serviceAccount:service-{FAKE_PROJECT_NUMBER}@gcp-sa-binaryauthorization.iam.gserviceaccount.com"
    verifiers = {(r["name"], r["inputs"]["role"]) for r in run.of_type("gcp:binaryauthorization/attestorIamMember:AttestorIamMember")
                 if r["inputs"]["member"] == agent}
    assert verifiers == {(f"attestation-verifier-{p}", "roles/binaryauthorization.attestorsVerifier")
                         for p in ("gva-fixture-dev", "gva-fixture-prod")}
    assert run.outputs["buildAttestor"] == "projects/gva-fixture-ci/attestors/built-by-ci"
    assert run.outputs["githubEnvironmentVariables"]["build"]["BUILD_ATTESTOR"] == run.outputs["buildAttestor"]


def test_the_trust_check_catches_a_deployer_that_may_sign(run):
    """Negative control: a deployer with the signer role could make any image it pushes admissible."""
    cfg = load_bootstrap_config(stack_file_config(FIXTURE))
    dev = "serviceAccount:ci-deploy-dev@gva-fixture-ci.iam.gserviceaccount.com"
    signer = dataclasses.replace(run, resources=[*run.resources, {"type": KEY_IAM, "name": "z", "parent": "attestation", "inputs": {
        "cryptoKeyId": "projects/gva-fixture-ci/locations/global/keyRings/build-attestation/cryptoKeys/attestor",
        "role": "roles/cloudkms.signerVerifier", "member": dev}}])
    assert [v for v in violations(signer, cfg) if "attestor's signing key" in v] == [
        f"deployer {dev} may use the attestor's signing key: z (roles/cloudkms.signerVerifier)"]


def test_no_ci_identity_reaches_a_ci_identity_the_pool_or_another_stages_state(run):
    """The trust boundary, read from every declared binding (tests/ci/trust.py)."""
    assert violations(run, load_bootstrap_config(stack_file_config(FIXTURE))) == []


def test_the_trust_check_catches_a_home_project_shared_with_a_stage():
    """Negative control, and the layout before this change: CI identities in prod's project gave
    prod's deployer serviceAccountAdmin over them (the loader now refuses it; built anyway here)."""
    cfg = dataclasses.replace(load_bootstrap_config(stack_file_config(FIXTURE)), home_project="gva-fixture-prod")
    found = violations(evaluate_build(cfg), cfg)
    assert any("ci-deploy-prod" in v and "holds a project role where the CI identities" in v for v in found), found


def test_the_trust_check_catches_a_deployer_on_another_stages_state(run):
    """Negative control, and the layout before this change: one bucket all deployers could write."""
    cfg = load_bootstrap_config(stack_file_config(FIXTURE))
    dev = "serviceAccount:ci-deploy-dev@gva-fixture-ci.iam.gserviceaccount.com"
    shared = dataclasses.replace(run, resources=[*run.resources,
        {"type": BUCKET_IAM, "name": "x", "parent": "state", "inputs": {
            "bucket": "gva-fixture-ci-pulumi-prod", "role": "roles/storage.objectUser", "member": dev}},
        {"type": KEY_IAM, "name": "y", "parent": "state", "inputs": {
            "cryptoKeyId": "projects/p/locations/global/keyRings/r/cryptoKeys/stack-secrets-prod",
            "role": "roles/cloudkms.cryptoKeyDecrypter", "member": dev}}])
    found = violations(shared, cfg)
    assert len(found) == 2 and all("stage prod" in v for v in found), found


def test_each_stack_has_its_own_key_and_only_its_own_identities_unwrap_it(run):
    keys = {r["name"]: r["inputs"] for r in run.of_type("gcp:kms/cryptoKey:CryptoKey") if r["parent"] == "state"}
    assert set(keys) == {"state-key-dev", "state-key-prod"}
    assert {k["rotationPeriod"] for k in keys.values()} == {"7776000s"}
    ci = "@gva-fixture-ci.iam.gserviceaccount.com"
    expected = {"dev": {f"serviceAccount:ci-deploy-dev{ci}", f"serviceAccount:ci-preview{ci}"},
                # Only the job that runs after the approval: no planner, no previewer.
                "prod": {f"serviceAccount:ci-deploy-prod{ci}"}}
    for stack, members in expected.items():
        found = {r["inputs"]["member"] for r in run.of_type(KEY_IAM)
                 if r["inputs"]["cryptoKeyId"].endswith(f"/stack-secrets-{stack}") and r["inputs"]["member"].startswith("serviceAccount:")}
        assert found == members, stack
    assert run.outputs["secretsProviders"]["prod"] == (
        "gcpkms://projects/gva-fixture-ci/locations/global/keyRings/pulumi-secrets/cryptoKeys/stack-secrets-prod")


def test_each_stage_and_the_bootstrap_have_their_own_private_versioned_protected_bucket(run):
    buckets = {r["inputs"]["name"]: r for r in run.of_type("gcp:storage/bucket:Bucket")}
    assert set(buckets) == {f"gva-fixture-ci-pulumi-{s}" for s in ("bootstrap", "dev", "prod")}
    for bucket in buckets.values():
        inputs = bucket["inputs"]
        assert inputs["uniformBucketLevelAccess"] is True and inputs["publicAccessPrevention"] == "enforced"
        assert inputs["versioning"] == {"enabled": True} and inputs["forceDestroy"] is False
        assert bucket["name"] in run.protected
    assert {"state-key-ring", "state-key-dev", "state-key-prod"} <= run.protected
    writers = {(r["inputs"]["bucket"], r["inputs"]["member"]) for r in run.of_type(BUCKET_IAM) if r["inputs"]["role"] == "roles/storage.objectUser"}
    ci = "@gva-fixture-ci.iam.gserviceaccount.com"
    assert writers == {("gva-fixture-ci-pulumi-dev", f"serviceAccount:ci-deploy-dev{ci}"),
                       ("gva-fixture-ci-pulumi-prod", f"serviceAccount:ci-deploy-prod{ci}")}
    assert not [r for r in run.of_type(BUCKET_IAM) if r["inputs"]["bucket"].endswith("-bootstrap")], "no CI identity reads the bootstrap's state"
    assert run.outputs["stateBackendUrls"] == {"dev": "gs://gva-fixture-ci-pulumi-dev", "prod": "gs://gva-fixture-ci-pulumi-prod"}
    assert run.outputs["bootstrapStateUrl"] == "gs://gva-fixture-ci-pulumi-bootstrap"


def test_pulumi_cloud_and_passphrase_need_no_bucket_and_no_state_keys():
    """Only the attestor's signing key stays: Binary Authorization needs it whatever the backend."""
    run = evaluate_bootstrap(_with(stateBackend="pulumi-cloud", pulumiOrganization="my-org", secretsProvider="passphrase"))
    assert not run.of_type("gcp:storage/bucket:Bucket")
    assert [r["name"] for r in run.of_type("gcp:kms/keyRing:KeyRing")] == ["attestation-key-ring"]
    assert run.outputs["githubEnvironmentVariables"]["production"]["PULUMI_BACKEND_URL"] == ""
    assert run.outputs["githubVariables"]["PULUMI_ORGANIZATION"] == "my-org"
    assert run.outputs["stackNames"] == {"dev": "my-org/gke-voice-agents/dev", "prod": "my-org/gke-voice-agents/prod"}
    assert run.outputs["secretsProviders"] == {}


def test_apis_are_enabled_and_never_disabled_again(run):
    services = run.of_type("gcp:projects/service:Service")
    enabled = {(s["inputs"]["project"], s["inputs"]["service"]) for s in services}
    assert ("gva-fixture-ci", "sts.googleapis.com") in enabled
    assert ("gva-fixture-dev", "container.googleapis.com") in enabled
    # the build's scan runs in the project it pushes to, and only there
    assert ("gva-fixture-dev", "ondemandscanning.googleapis.com") in enabled
    assert ("gva-fixture-prod", "ondemandscanning.googleapis.com") not in enabled
    assert all(s["inputs"]["disableOnDestroy"] is False for s in services)


def test_an_apply_on_the_exported_variables_really_runs():
    """Guards against assertions inside `apply` that never execute (unknown values in preview):
    the check is returned, awaited, and counted."""
    pulumi_settings.reset_options(project=PROJECT, stack="ci", preview=False)
    mocks = BootstrapMocks()
    set_mocks(mocks, project=PROJECT, stack="ci", preview=False)
    outputs = build(load_bootstrap_config(stack_file_config(FIXTURE)))
    runs = []

    def check(variables: dict) -> dict:
        assert variables["production"]["GCP_DEPLOY_SERVICE_ACCOUNT"] == "ci-deploy-prod@gva-fixture-ci.iam.gserviceaccount.com"
        runs.append(variables)
        return variables

    checked = pulumi.Output.from_input(outputs["githubEnvironmentVariables"]).apply(check)
    _sync_await(checked.future())
    assert len(runs) == 1


# --- configuration -------------------------------------------------------------------------------

def test_the_committed_example_stack_is_valid():
    cfg = load_bootstrap_config(stack_file_config(FIXTURE))
    assert [e.stack for e in cfg.environments] == ["dev", "prod"]
    assert cfg.environment("prod").promote_from == "dev"


@pytest.mark.parametrize(("changes", "message"), [
    ({"githubRepository": "gke-voice-agents"}, r"githubRepository = 'gke-voice-agents': must be the repository as owner/name"),
    ({"environments": None}, r"environments = \(not set\): required: a map of stack -> settings"),
    ({"environments": {"dev": {"project": "gva-fixture-dev"}}}, r"environments\.dev\.githubEnvironment = \(not set\): must be a GitHub environment name"),
    ({"environments": {"Dev": {"project": "gva-fixture-dev", "githubEnvironment": "dev"}}}, r"environments\.Dev = 'Dev': stack names are 1-20 lower-case"),
    ({"environments": {"dev": {"project": "gva-fixture-dev", "githubEnvironment": "dev", "promoteFrom": "qa"}}},
     r"environments\.dev\.promoteFrom = 'qa': must name another stack"),
    ({"environments": {"dev": {"project": "gva-fixture-dev", "githubEnvironment": "x"},
                       "prod": {"project": "gva-fixture-prod", "githubEnvironment": "x"}}},
     r"each stack needs its own GitHub environment"),
    ({"environments": {"dev": {"project": "gva-fixture-dev", "githubEnvironment": "dev"},
                       "prod": {"project": "gva-fixture-prod", "githubEnvironment": "production", "promoteFrom": "dev",
                                "planEnvironment": "production-plan"}}},
     r"environments\.prod\.planEnvironment = 'production-plan': is no longer a setting: a job that runs before the approval"),
    # 16 and 17 characters, alike in the first 15 (the node account's cut): same ids in one project.
    ({"environments": {"customer-facing-a": {"project": "gva-fixture-dev", "githubEnvironment": "a"},
                       "customer-facing-b": {"project": "gva-fixture-dev", "githubEnvironment": "b"}},
      "previewStacks": ["customer-facing-a"]},
     r"environments\.customer-facing-b = 'customer-facing-b': shares project gva-fixture-dev with stack customer-facing-a "
     r"and their names agree in the characters that name service accounts \(gva-customer-facing-nodes\)"),
    ({"buildEnvironment": "production"}, r"buildEnvironment = 'production': is also a stage's deploy environment"),
    ({"buildEnvironment": "build env"}, r"buildEnvironment = 'build env': must be a GitHub environment name"),
    ({"environments": {"dev": {"project": "gva-fixture-dev", "githubEnvironment": "dev", "projet": "eu"}}},
     r"environments\.dev\.projet = 'eu': is not an environment setting; did you mean project\?"),
    ({"gcp:project": "gva-fixture-dev"}, r"gcp:project = 'gva-fixture-dev': is also the project of stack dev"),
    ({"gcp:project": "gva-fixture-prod"}, r"gcp:project = 'gva-fixture-prod': is also the project of stack prod: its deployer could take over"),
    ({"secretsProvidr": "passphrase"}, r"bootstrap:secretsProvidr = 'passphrase': is not a bootstrap setting; did you mean gke-voice-agents-bootstrap:secretsProvider\?"),
    ({"stateBucket": "x-state"}, r"bootstrap:stateBucket = 'x-state': is not a bootstrap setting; did you mean gke-voice-agents-bootstrap:stateBucketPrefix\?"),
    ({"gcp:regoin": "us-central1"}, r"gcp:regoin = 'us-central1': the bootstrap reads only gcp:project"),
    ({"githubRepositoryId": None}, r"githubRepositoryId = \(not set\): required: the numeric repository id"),
    ({"githubRepositoryOwnerId": None}, r"githubRepositoryOwnerId = \(not set\): required: the numeric owner id"),
    ({"previewStacks": ["qa"]}, r"previewStacks = \['qa'\]: must be a non-empty list of stacks from environments: dev, prod"),
    ({"previewStacks": []}, r"previewStacks = \[\]: must be a non-empty list"),
    ({"stateBackend": "pulumi-cloud"}, r"pulumiOrganization = \(not set\): required: the Pulumi Cloud organisation"),
    ({"pulumiOrganization": "my-org"}, r"pulumiOrganization = 'my-org': applies to stateBackend pulumi-cloud only"),
    ({"deployWorkflow": "deploy.yml"}, r"deployWorkflow = 'deploy.yml': must be a path like \.github/workflows/deploy\.yml"),
    ({"poolId": "gcp-github"}, r"poolId = 'gcp-github': the gcp- prefix is reserved"),
    ({"stateBackend": "s3"}, r"stateBackend = 's3': must be one of gcs, pulumi-cloud"),
    ({"secretsKeyUsers": ["platform@example.com"]}, r"secretsKeyUsers = \['platform@example.com'\]: must be a list of IAM members"),
    ({"githubRepositoryOwnerId": "my-org"}, r"githubRepositoryOwnerId = 'my-org': the numeric owner id"),
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


# --- OIDC subject length: Google's 127-byte google.subject limit, at its boundary --------------

def _environments_with(production: str) -> dict:
    return {"dev": {"project": "gva-fixture-dev", "githubEnvironment": "dev"},
            "prod": {"project": "gva-fixture-prod", "githubEnvironment": production, "promoteFrom": "dev"}}


@pytest.mark.parametrize(("length", "accepted"), [(85, True), (86, True), (87, False)])
def test_subjects_longer_than_127_bytes_are_refused(length, accepted):
    """`repo:my-org/gke-voice-agents:environment:` is 41 bytes, so an 86-character environment
    makes a 127-byte subject (the most Google accepts) and 87 one byte too many."""
    name = "e" * length
    subject = f"repo:{REPO}:environment:{name}"
    assert len(subject.encode()) == 41 + length
    config = _with(environments=_environments_with(name))
    if accepted:
        assert load_bootstrap_config(config).environment("prod").github_environment == name
    else:
        with pytest.raises(ConfigError, match=rf"environments \({name}\) = '{subject}': is 128 bytes as an OIDC subject; Google accepts at most 127"):
            load_bootstrap_config(config)


def test_every_key_of_the_committed_stack_is_one_the_bootstrap_reads():
    """The unknown-key check sees every key the engine passes, not only the ones it looks up."""
    from bootstrap.config import SETTINGS, read_pulumi_config
    from pulumi.runtime.config import set_all_config

    set_all_config({**stack_file_config(FIXTURE), f"{PROJECT}:secretsProvidr": "x", "aws:region": "eu-west-1"}, [])
    raw = read_pulumi_config()
    assert f"{PROJECT}:secretsProvidr" in raw and "aws:region" not in raw
    assert {k.partition(":")[2] for k in stack_file_config(FIXTURE) if k.startswith(PROJECT)} <= set(SETTINGS)
