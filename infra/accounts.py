"""The service accounts a stack runs as, which the bootstrap creates (infra/names.py
stack_account_ids): the stack looks each one up and refers to it by email.

Why the stack no longer creates them: creating an account needs iam.serviceAccounts.create on
the project, and granting on it needs setIamPolicy; the only predefined role with both is
serviceAccountAdmin, which held project-wide lets the deployer take over every account of the
project (a default compute account holding Editor included), and IAM Conditions cannot narrow it
to some accounts (infra/names.py). So the bootstrap creates them and grants each stage's deployer
serviceAccountAdmin (and, on the node account, serviceAccountUser) on these accounts alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.names import account_email


class MissingServiceAccount(pulumi.RunError):
    """A RunError: Pulumi reports the message alone, without a traceback."""


@dataclass(frozen=True)
class StageAccount:
    project: str
    account_id: str

    @property
    def email(self) -> str:
        return account_email(self.account_id, self.project)

    @property
    def member(self) -> str:
        return f"serviceAccount:{self.email}"

    @property
    def name(self) -> str:
        """What grants on the account take as serviceAccountId."""
        return f"projects/{self.project}/serviceAccounts/{self.email}"


def bootstrap_account(project: str, account_id: str, purpose: str, stack: str) -> StageAccount:
    """The account, once GCP confirms it exists; otherwise a message saying who creates it.
    Reading it needs iam.serviceAccounts.get, which the deployer holds on it (serviceAccountAdmin)
    and the previewer on the project (roles/viewer)."""
    account = StageAccount(project, account_id)
    try:
        gcp.serviceaccount.get_account(account_id=account.email, project=project)
    except Exception as err:  # the provider's 404 (or 403 without the bootstrap's grant), as text
        raise MissingServiceAccount(
            f"service account {account.email} ({purpose}) does not exist or this identity may not read it: the "
            f"bootstrap creates it before stack {stack}'s first `pulumi up` (bootstrap/, an environment for stack "
            f"{stack} in project {project}; README \"Day one\"). GCP said: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}"
        ) from None
    return account
