"""CiServiceAccount: a service account one GitHub subject may impersonate, with its grants."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from bootstrap.roles import ProjectGrant
from infra.names import child, type_token

WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"


@dataclass(frozen=True)
class CiServiceAccountArgs:
    project: str  # where the account lives (the bootstrap's home project)
    account_id: str
    description: str
    principal: pulumi.Input[str]  # principal://... of the one GitHub subject allowed in
    grants: tuple[ProjectGrant, ...]


class CiServiceAccount(pulumi.ComponentResource):
    email: pulumi.Output[str]
    member: pulumi.Output[str]

    def __init__(self, name: str, args: CiServiceAccountArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("bootstrap", "CiServiceAccount"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        account = gcp.serviceaccount.Account(
            child(name, "account"),
            project=args.project,
            account_id=args.account_id,
            display_name=args.account_id,
            description=args.description,
            opts=child_opts,
        )
        # Short-lived tokens only: GitHub's OIDC token is exchanged for this account's access
        # token per job. No key is ever created for it.
        gcp.serviceaccount.IAMMember(
            child(name, "github"),
            service_account_id=account.name,
            role=WORKLOAD_IDENTITY_USER,
            member=args.principal,
            opts=child_opts,
        )
        for grant in args.grants:
            gcp.projects.IAMMember(
                child(name, grant.key),
                project=grant.project,
                role=grant.role,
                member=account.member,
                condition=None if grant.condition is None else {
                    "title": grant.condition.title,
                    "description": grant.condition.description,
                    "expression": grant.condition.expression,
                },
                opts=child_opts,
            )
        self.email = account.email
        self.member = account.member
        self.register_outputs({"email": self.email})
