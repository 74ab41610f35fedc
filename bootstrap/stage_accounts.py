"""StageAccounts: the service accounts a stack runs as, created here rather than by the stack,
with its deployer's rights on each of them alone (bootstrap/roles.py ACCOUNT_ROLES).

Teardown: destroy the stack first (its cluster runs as the node account, its grants sit on these
accounts), then remove the stage from the bootstrap (`pulumi up` of stack ci), which deletes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from bootstrap.roles import AccountGrant
from infra.names import child, stack_account_ids, type_token

# What each account is for, as its description in the console says it.
PURPOSES = {
    "nodes": ("GKE Autopilot nodes ({stack})", "Identity of stack {stack}'s cluster nodes: logs, metrics and image pulls only."),
    "database": ("checkpoint database user ({stack})",
                 "Stack {stack}'s checkpoint database IAM user, impersonated by the agent's Cloud SQL Auth Proxy."),
}
TOOL_PURPOSE = ("{tool} tool server ({stack})", "The {tool} MCP tool server's Google identity in stack {stack}: bills the "
                "project's quota, nothing else.")


@dataclass(frozen=True)
class StageAccountsArgs:
    project: str  # the stage's project
    stack: str
    deployer: pulumi.Input[str]  # serviceAccount:<the stage's deployer>
    grants: tuple[AccountGrant, ...]


class StageAccounts(pulumi.ComponentResource):
    emails: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: StageAccountsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("bootstrap", "StageAccounts"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        accounts = {}
        for purpose, account_id in stack_account_ids(args.stack).items():
            display, description = PURPOSES.get(purpose, TOOL_PURPOSE)
            accounts[purpose] = gcp.serviceaccount.Account(
                child(name, purpose), project=args.project, account_id=account_id,
                display_name=display.format(stack=args.stack, tool=purpose),
                description=description.format(stack=args.stack, tool=purpose), opts=child_opts)
        for grant in args.grants:
            gcp.serviceaccount.IAMMember(
                child(name, grant.key), service_account_id=accounts[grant.purpose].name, role=grant.role,
                member=args.deployer, opts=child_opts)
        self.emails = {purpose: a.email for purpose, a in accounts.items()}
        self.register_outputs({"emails": self.emails})
