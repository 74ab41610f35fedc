"""The bootstrap's resources: which GitHub jobs may act as which service account, what each
may do, and where the main stacks keep state and keys."""

from __future__ import annotations

import json
from typing import Any

import pulumi

from bootstrap.apis import HOME_APIS, KMS_APIS, STACK_APIS, STATE_APIS, EnabledApis, EnabledApisArgs
from bootstrap.ci_account import CiServiceAccount, CiServiceAccountArgs
from bootstrap.config import BOOTSTRAP_BUCKET_SUFFIX, BootstrapConfig, environment_subject, preview_subject
from bootstrap.oidc import GithubOidc, GithubOidcArgs, TrustedRepository
from bootstrap.roles import deployer_grants, planner_grants, previewer_grants
from bootstrap.state import StateBackend, StateBackendArgs

# The names the workflows read (`vars.NAME`). Repository variables serve every job; environment
# variables only jobs that declare that environment. tests/ci checks the workflows against these.
VAR_PROVIDER = "GCP_WORKLOAD_IDENTITY_PROVIDER"
VAR_PREVIEWER = "GCP_PREVIEW_SERVICE_ACCOUNT"
VAR_PREVIEW_MATRIX = "PREVIEW_MATRIX"
VAR_ORGANIZATION = "PULUMI_ORGANIZATION"
VAR_BACKEND = "PULUMI_BACKEND_URL"
VAR_DEPLOYER = "GCP_DEPLOY_SERVICE_ACCOUNT"
VAR_PLANNER = "GCP_PLAN_SERVICE_ACCOUNT"
PREVIEW_ACCOUNT_ID = "ci-preview"


def deploy_account_id(stack: str) -> str:
    return f"ci-deploy-{stack}"


def plan_account_id(stack: str) -> str:
    return f"ci-plan-{stack}"


def _services(cfg: BootstrapConfig) -> tuple[tuple[str, str], ...]:
    home = [*HOME_APIS]
    if cfg.state_backend == "gcs":
        home += STATE_APIS
    if cfg.secrets_provider == "gcpkms":
        home += KMS_APIS
    stacks = [(env.project, api) for env in cfg.environments for api in STACK_APIS]
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
            grants=deployer_grants(env, cfg)), opts=after_apis)
        for env in cfg.environments
    }
    planners = {
        env.stack: CiServiceAccount(plan_account_id(env.stack), CiServiceAccountArgs(
            project=cfg.home_project,
            account_id=plan_account_id(env.stack),
            description=f"pulumi preview --save-plan of stack {env.stack} before its approval; read-only",
            principal=oidc.principal(environment_subject(cfg.github_repository, env.plan_environment)),
            grants=planner_grants(env)), opts=after_apis)
        for env in cfg.environments if env.plan_environment
    }
    readers: dict[str, dict[str, pulumi.Input[str]]] = {env.stack: {} for env in cfg.environments}
    for stack in cfg.preview_stacks:
        readers[stack]["previewer"] = previewer.member
    for stack, planner in planners.items():
        readers[stack]["planner"] = planner.member
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
        if env.plan_environment:
            environment_variables[env.plan_environment] = {
                VAR_PLANNER: planners[env.stack].email, VAR_BACKEND: state.urls[env.stack]}
    return {
        "githubRepository": cfg.github_repository,
        "workloadIdentityProvider": oidc.provider_name,
        "previewServiceAccount": previewer.email,
        "deployServiceAccounts": {stack: d.email for stack, d in deployers.items()},
        "planServiceAccounts": {stack: p.email for stack, p in planners.items()},
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
