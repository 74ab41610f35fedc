"""Wires the bootstrap: who GitHub may act as, and where the main stacks keep state and keys."""

from __future__ import annotations

from typing import Any

import pulumi

from bootstrap.apis import HOME_APIS, KMS_APIS, STACK_APIS, STATE_APIS, EnabledApis, EnabledApisArgs
from bootstrap.ci_account import CiServiceAccount, CiServiceAccountArgs
from bootstrap.config import BootstrapConfig
from bootstrap.oidc import GithubOidc, GithubOidcArgs
from bootstrap.roles import deploy_subject, deployer_grants, preview_subject, previewer_grants
from bootstrap.state import StateBackend, StateBackendArgs

# The names the workflows read (`vars.NAME`). Repository variables serve every job; environment
# variables only jobs that declare that environment. tests/ci checks the workflows against these.
VAR_PROVIDER = "GCP_WORKLOAD_IDENTITY_PROVIDER"
VAR_PREVIEWER = "GCP_PREVIEW_SERVICE_ACCOUNT"
VAR_BACKEND = "PULUMI_BACKEND_URL"
VAR_DEPLOYER = "GCP_DEPLOY_SERVICE_ACCOUNT"
PREVIEW_ACCOUNT_ID = "ci-preview"


def deploy_account_id(stack: str) -> str:
    return f"ci-deploy-{stack}"


def _services(cfg: BootstrapConfig) -> tuple[tuple[str, str], ...]:
    home = [*HOME_APIS]
    if cfg.state_backend == "gcs":
        home += STATE_APIS
    if cfg.secrets_provider == "gcpkms":
        home += KMS_APIS
    stacks = [(env.project, api) for env in cfg.environments for api in STACK_APIS]
    return tuple((cfg.home_project, api) for api in home) + tuple(stacks)


def build(cfg: BootstrapConfig) -> dict[str, Any]:
    """Declares every resource and returns the stack outputs."""
    apis = EnabledApis("apis", EnabledApisArgs(_services(cfg)))
    after_apis = pulumi.ResourceOptions(depends_on=[apis])
    oidc = GithubOidc("github", GithubOidcArgs(
        project=cfg.home_project, pool_id=cfg.pool_id, provider_id=cfg.provider_id,
        repository=cfg.github_repository, owner_id=cfg.github_owner_id), opts=after_apis)
    previewer = CiServiceAccount(PREVIEW_ACCOUNT_ID, CiServiceAccountArgs(
        project=cfg.home_project,
        account_id=PREVIEW_ACCOUNT_ID,
        description=f"pulumi preview from pull requests of {cfg.github_repository}; read-only",
        principal=oidc.principal(preview_subject(cfg.github_repository)),
        grants=previewer_grants(cfg)), opts=after_apis)
    deployers = {
        env.stack: CiServiceAccount(deploy_account_id(env.stack), CiServiceAccountArgs(
            project=cfg.home_project,
            account_id=deploy_account_id(env.stack),
            description=f"pulumi up of stack {env.stack}, only from GitHub environment {env.github_environment}",
            principal=oidc.principal(deploy_subject(cfg.github_repository, env.github_environment)),
            grants=deployer_grants(env, cfg)), opts=after_apis)
        for env in cfg.environments
    }
    state = StateBackend("state", StateBackendArgs(
        project=cfg.home_project,
        stacks=tuple(deployers),
        bucket=cfg.state_bucket if cfg.state_backend == "gcs" else None,
        location=cfg.state_location,
        noncurrent_days=cfg.state_noncurrent_days,
        kms_location=cfg.kms_location if cfg.secrets_provider == "gcpkms" else None,
        writers={stack: d.member for stack, d in deployers.items()},
        reader=previewer.member,
        key_users=cfg.secrets_key_users), opts=after_apis)
    return {
        "workloadIdentityProvider": oidc.provider_name,
        "previewServiceAccount": previewer.email,
        "deployServiceAccounts": {stack: d.email for stack, d in deployers.items()},
        "stateBackendUrl": state.url,
        "secretsProviders": state.secrets_providers,
        "githubVariables": {VAR_PROVIDER: oidc.provider_name, VAR_PREVIEWER: previewer.email, VAR_BACKEND: state.url},
        "githubEnvironmentVariables": {
            env.github_environment: {VAR_DEPLOYER: deployers[env.stack].email} for env in cfg.environments
        },
    }
