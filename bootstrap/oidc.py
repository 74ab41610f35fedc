"""GithubOidc: a workload identity pool that trusts GitHub Actions tokens of one repository."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.names import child, type_token

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"

# Claims kept from GitHub's token. google.subject is what principal:// bindings match; the
# others appear in audit logs and can be used in further bindings.
ATTRIBUTE_MAPPING = {
    "google.subject": "assertion.sub",
    "attribute.repository": "assertion.repository",
    "attribute.repository_owner_id": "assertion.repository_owner_id",
    "attribute.ref": "assertion.ref",
}


def attribute_condition(repository: str, owner_id: str | None) -> str:
    """Tokens from any other repository are refused at the token exchange, before any IAM
    binding is consulted. The owner id pins the owner even if its name is later re-registered."""
    condition = f"assertion.repository == '{repository}'"
    if owner_id:
        condition += f" && assertion.repository_owner_id == '{owner_id}'"
    return condition


@dataclass(frozen=True)
class GithubOidcArgs:
    project: str
    pool_id: str
    provider_id: str
    repository: str
    owner_id: str | None


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
            description=f"GitHub Actions of {args.repository}",
            opts=child_opts,
        )
        provider = gcp.iam.WorkloadIdentityPoolProvider(
            child(name, "provider"),
            project=args.project,
            workload_identity_pool_id=pool.workload_identity_pool_id,
            workload_identity_pool_provider_id=args.provider_id,
            display_name="GitHub OIDC",
            attribute_mapping=ATTRIBUTE_MAPPING,
            attribute_condition=attribute_condition(args.repository, args.owner_id),
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
