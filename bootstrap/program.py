"""The bootstrap's resources: which GitHub jobs may act as which service account, what each
may do, and where the main stacks keep state and keys."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_gcp as gcp

from bootstrap.apis import ATTESTATION_APIS, BUILD_APIS, HOME_APIS, KMS_APIS, STACK_APIS, STATE_APIS, EnabledApis, EnabledApisArgs
from bootstrap.attestation import BuildAttestation, BuildAttestationArgs
from bootstrap.ci_account import CiServiceAccount, CiServiceAccountArgs
from bootstrap.config import BOOTSTRAP_BUCKET_SUFFIX, BootstrapConfig, environment_subject, preview_subject
from bootstrap.oidc import GithubOidc, GithubOidcArgs, TrustedRepository
from bootstrap.roles import builder_grants, deployer_account_grants, deployer_grants, previewer_grants
from bootstrap.stage_accounts import StageAccounts, StageAccountsArgs
from bootstrap.state import StateBackend, StateBackendArgs

# The names the workflows read (`vars.NAME`). Repository variables serve every job; environment
# variables only jobs that declare that environment. tests/ci checks the workflows against these.
VAR_PROVIDER = "GCP_WORKLOAD_IDENTITY_PROVIDER"
VAR_PREVIEWER = "GCP_PREVIEW_SERVICE_ACCOUNT"
VAR_PREVIEW_MATRIX = "PREVIEW_MATRIX"
VAR_ORGANIZATION = "PULUMI_ORGANIZATION"
VAR_BACKEND = "PULUMI_BACKEND_URL"
VAR_DEPLOYER = "GCP_DEPLOY_SERVICE_ACCOUNT"
VAR_BUILDER = "GCP_BUILD_SERVICE_ACCOUNT"
VAR_ATTESTOR = "BUILD_ATTESTOR"
VAR_KEY_VERSION = "BUILD_KEY_VERSION"
VAR_ATTESTATION_PROJECT = "ATTESTATION_PROJECT"
PREVIEW_ACCOUNT_ID = "ci-preview"
BUILD_ACCOUNT_ID = "ci-build"


def deploy_account_id(stack: str) -> str:
    return f"ci-deploy-{stack}"


def _services(cfg: BootstrapConfig) -> tuple[tuple[str, str], ...]:
    home = [*HOME_APIS, *KMS_APIS, *ATTESTATION_APIS]  # the attestor's signing key is always in KMS
    if cfg.state_backend == "gcs":
        home += STATE_APIS
    stacks = [(env.project, api) for env in cfg.environments for api in STACK_APIS]
    stacks += [(cfg.environment(stack).project, api) for stack in cfg.build_stacks for api in BUILD_APIS]
    return tuple((cfg.home_project, api) for api in home) + tuple(stacks)


def _preview_matrix(cfg: BootstrapConfig, urls: dict[str, pulumi.Output[str]]) -> pulumi.Output[str]:
    """The pull-request preview job's matrix (`strategy.matrix: ${{ fromJSON(vars.PREVIEW_MATRIX) }}`):
    one entry per previewed stack, with its fully qualified name and its backend."""
    stacks = list(cfg.preview_stacks)

    def render(backends: list[str]) -> str:
        include = [{"stack": s, "qualified": cfg.qualified_stack(s), "backend": b} for s, b in zip(stacks, backends)]
        return json.dumps({"include": include}, separators=(",", ":"))

    return pulumi.Output.all(*(urls[s] for s in stacks)).apply(render)


def build(cfg: BootstrapConfig) -> dict[str, Any]:
    """Declares every resource and returns the stack outputs."""
    apis = EnabledApis("apis", EnabledApisArgs(_services(cfg)))
    after_apis = pulumi.ResourceOptions(depends_on=[apis])
    repository = TrustedRepository(cfg.github_repository, cfg.github_owner_id, cfg.github_repository_id,
                                   cfg.deploy_branch, cfg.deploy_workflow)
    oidc = GithubOidc("github", GithubOidcArgs(
        project=cfg.home_project, pool_id=cfg.pool_id, provider_id=cfg.provider_id, repository=repository), opts=after_apis)
    previewer = CiServiceAccount(PREVIEW_ACCOUNT_ID, CiServiceAccountArgs(
        project=cfg.home_project,
        account_id=PREVIEW_ACCOUNT_ID,
        description=f"pulumi preview of {', '.join(cfg.preview_stacks)} from pull requests of {cfg.github_repository}; read-only",
        principal=oidc.principal(preview_subject(cfg.github_repository)),
        grants=previewer_grants(cfg)), opts=after_apis)
    deployers = {
        env.stack: CiServiceAccount(deploy_account_id(env.stack), CiServiceAccountArgs(
            project=cfg.home_project,
            account_id=deploy_account_id(env.stack),
            description=f"pulumi up of stack {env.stack}, only from GitHub environment {env.github_environment}",
            principal=oidc.principal(environment_subject(cfg.github_repository, env.github_environment)),
            grants=deployer_grants(env, cfg, gcp.organizations.get_project_output(project_id=env.project).number)),
            opts=after_apis)
        for env in cfg.environments
    }
    # The accounts each stack runs as, with its deployer's rights on them alone (not the project's).
    stage_accounts = {
        env.stack: StageAccounts(f"accounts-{env.stack}", StageAccountsArgs(
            project=env.project, stack=env.stack, deployer=deployers[env.stack].member,
            grants=deployer_account_grants(env)), opts=after_apis)
        for env in cfg.environments
    }
    builder = CiServiceAccount(BUILD_ACCOUNT_ID, CiServiceAccountArgs(
        project=cfg.home_project,
        account_id=BUILD_ACCOUNT_ID,
        description=f"the deploy workflow's build job (GitHub environment {cfg.build_environment}): pushes new images "
                    f"to {', '.join(cfg.build_stacks)} and signs their attestations; no state, no stack secrets",
        principal=oidc.principal(environment_subject(cfg.github_repository, cfg.build_environment)),
        grants=builder_grants(cfg)), opts=after_apis)
    attestation = BuildAttestation("attestation", BuildAttestationArgs(
        project=cfg.home_project, kms_location=cfg.kms_location, signer=builder.member,
        verifier_projects=tuple(env.project for env in cfg.environments)), opts=after_apis)
    readers: dict[str, dict[str, pulumi.Input[str]]] = {env.stack: {} for env in cfg.environments}
    for stack in cfg.preview_stacks:
        readers[stack]["previewer"] = previewer.member
    buckets = None
    if cfg.state_backend == "gcs":
        buckets = {s: cfg.state_bucket(s) for s in (BOOTSTRAP_BUCKET_SUFFIX, *deployers)}
    state = StateBackend("state", StateBackendArgs(
        project=cfg.home_project,
        buckets=buckets,
        location=cfg.state_location,
        noncurrent_days=cfg.state_noncurrent_days,
        kms_location=cfg.kms_location if cfg.secrets_provider == "gcpkms" else None,
        writers={stack: d.member for stack, d in deployers.items()},
        readers=readers,
        key_users=cfg.secrets_key_users), opts=after_apis)
    environment_variables: dict[str, dict[str, Any]] = {}
    for env in cfg.environments:
        environment_variables[env.github_environment] = {
            VAR_DEPLOYER: deployers[env.stack].email, VAR_BACKEND: state.urls[env.stack]}
    environment_variables[cfg.build_environment] = {
        VAR_BUILDER: builder.email, VAR_ATTESTOR: attestation.attestor, VAR_KEY_VERSION: attestation.key_version,
        # Attestations are stored with the first stage the build pushes to (its project number
        # is not secret; it is where the builder may create occurrences).
        VAR_ATTESTATION_PROJECT: cfg.environment(cfg.build_stacks[0]).project}
    return {
        "githubRepository": cfg.github_repository,
        "workloadIdentityProvider": oidc.provider_name,
        "previewServiceAccount": previewer.email,
        "deployServiceAccounts": {stack: d.email for stack, d in deployers.items()},
        # What each stack runs as; the stack looks these up (infra/accounts.py), never creates them.
        "stackServiceAccounts": {stack: a.emails for stack, a in stage_accounts.items()},
        "buildServiceAccount": builder.email,
        # Each stage's binaryAuthorizationAttestor (Pulumi.<stack>.yaml); tests/ci checks prod's.
        "buildAttestor": attestation.attestor,
        "stackNames": {env.stack: cfg.qualified_stack(env.stack) for env in cfg.environments},
        "stateBackendUrls": {stack: state.urls[stack] for stack in deployers},
        "bootstrapStateUrl": state.urls[BOOTSTRAP_BUCKET_SUFFIX],
        "secretsProviders": state.secrets_providers,
        "githubVariables": {
            VAR_PROVIDER: oidc.provider_name,
            VAR_PREVIEWER: previewer.email,
            VAR_ORGANIZATION: cfg.pulumi_organization,
            VAR_PREVIEW_MATRIX: _preview_matrix(cfg, state.urls),
        },
        "githubEnvironmentVariables": environment_variables,
    }
