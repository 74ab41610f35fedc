"""GithubOidc: a workload identity pool that trusts GitHub Actions tokens of one repository."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.names import child, type_token

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"

# Claims kept from GitHub's token. google.subject is what principal:// bindings match; the
# others appear in audit logs and can be used in further bindings. Every claim named here is in
# every GitHub Actions token (GitHub docs, "OpenID Connect reference": example token), so no
# mapping can fail on a missing claim.
ATTRIBUTE_MAPPING = {
    "google.subject": "assertion.sub",
    "attribute.repository": "assertion.repository",
    "attribute.repository_id": "assertion.repository_id",
    "attribute.repository_owner_id": "assertion.repository_owner_id",
    "attribute.ref": "assertion.ref",
    "attribute.job_workflow_ref": "assertion.job_workflow_ref",
}


@dataclass(frozen=True)
class TrustedRepository:
    name: str  # owner/name, for humans and audit logs
    owner_id: str  # the numeric ids are what is trusted: names can be renamed and re-registered
    repository_id: str
    deploy_branch: str  # deployers act only for jobs of the deploy workflow on this branch
    deploy_workflow: str  # .github/workflows/deploy.yml

    @property
    def deploy_ref(self) -> str:
        return f"refs/heads/{self.deploy_branch}"

    @property
    def deploy_job_workflow_ref(self) -> str:
        """GitHub's `job_workflow_ref` claim for a job of the deploy workflow run from the deploy branch."""
        return f"{self.name}/{self.deploy_workflow}@{self.deploy_ref}"

    @property
    def pull_request_subject(self) -> str:
        return f"repo:{self.name}:pull_request"


def attribute_condition(repo: TrustedRepository) -> str:
    """Which tokens are exchanged at all, before any IAM binding is consulted: this repository
    (by its ids), and only two kinds of job: pull-request jobs (the previewer's subject) and jobs
    of the deploy workflow running from the deploy branch. A job in a deploy environment that
    runs another workflow, or the deploy workflow from another ref, gets no token; the deployer
    bindings (one environment each) can therefore only ever be used by that workflow on main."""
    return (
        f"assertion.repository_owner_id == '{repo.owner_id}' && assertion.repository_id == '{repo.repository_id}'"
        f" && assertion.repository == '{repo.name}'"
        f" && (assertion.sub == '{repo.pull_request_subject}'"
        f" || (assertion.ref == '{repo.deploy_ref}' && assertion.job_workflow_ref == '{repo.deploy_job_workflow_ref}'))"
    )


@dataclass(frozen=True)
class GithubOidcArgs:
    project: str
    pool_id: str
    provider_id: str
    repository: TrustedRepository


class GithubOidc(pulumi.ComponentResource):
    pool_name: pulumi.Output[str]  # projects/<number>/locations/global/workloadIdentityPools/<id>
    provider_name: pulumi.Output[str]  # what google-github-actions/auth calls workload_identity_provider

    def __init__(self, name: str, args: GithubOidcArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("bootstrap", "GithubOidc"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        pool = gcp.iam.WorkloadIdentityPool(
            child(name, "pool"),
            project=args.project,
            workload_identity_pool_id=args.pool_id,
            display_name="GitHub Actions",
            description=f"GitHub Actions of {args.repository.name}",
            opts=child_opts,
        )
        provider = gcp.iam.WorkloadIdentityPoolProvider(
            child(name, "provider"),
            project=args.project,
            workload_identity_pool_id=pool.workload_identity_pool_id,
            workload_identity_pool_provider_id=args.provider_id,
            display_name="GitHub OIDC",
            attribute_mapping=ATTRIBUTE_MAPPING,
            attribute_condition=attribute_condition(args.repository),
            # No allowed_audiences: the default audience is this provider's own resource name,
            # which is what google-github-actions/auth requests.
            oidc={"issuer_uri": GITHUB_ISSUER},
            opts=child_opts,
        )
        self.pool_name = pool.name
        self.provider_name = provider.name
        self.register_outputs({"poolName": self.pool_name, "providerName": self.provider_name})

    def principal(self, subject: str) -> pulumi.Output[str]:
        """The one GitHub subject (sub claim) allowed to use a binding."""
        return self.pool_name.apply(lambda pool: f"principal://iam.googleapis.com/{pool}/subject/{subject}")
