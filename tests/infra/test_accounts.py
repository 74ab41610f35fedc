"""The stack runs as service accounts the bootstrap creates (infra/accounts.py): it looks each one
up and, when the bootstrap has not created it, stops with a message naming the account, what it
is for and who creates it, before anything uses it. GCP is imitated at the invoke boundary:
getAccount answers as the IAM API's projects.serviceAccounts.get does (the account, or 404)."""

from __future__ import annotations

import pytest

import tooling.plan
from infra.accounts import MissingServiceAccount
from infra.names import stack_account_ids
from tests.conftest import fixture_project
from tooling.mocks import RecordingMocks


def _missing(*emails: str):
    class Missing(RecordingMocks):
        def __init__(self) -> None:
            super().__init__()
            self.missing_accounts = set(emails)
    return Missing


@pytest.mark.parametrize(("purpose", "what"), [("nodes", "the cluster's nodes"),
                                               ("database", "the checkpoint database's IAM user"),
                                               ("places", "the places tool server's identity")])
def test_an_account_the_bootstrap_has_not_created_is_named_with_who_creates_it(monkeypatch, purpose, what):
    project = fixture_project("dev")
    email = f"{stack_account_ids('dev')[purpose]}@{project}.iam.gserviceaccount.com"
    monkeypatch.setattr(tooling.plan, "RecordingMocks", _missing(email))
    with pytest.raises(MissingServiceAccount, match=(
            rf"service account {email} \({what}\) does not exist or this identity may not read it: the bootstrap "
            rf"creates it before stack dev's first `pulumi up` \(bootstrap/, an environment for stack dev in project "
            rf"{project}; README \"Day one\"\)\. GCP said: Error: googleapi: Error 404")):
        tooling.plan.run_program("dev")


def test_the_stack_looks_up_each_account_it_runs_as_and_declares_none(dev_plan):
    assert dev_plan.of_type("gcp:serviceaccount/account:Account") == []
    assert dev_plan.invokes.count("gcp:serviceaccount/getAccount:getAccount") == len(stack_account_ids("dev"))


def test_account_ids_fit_gcps_limits_for_any_stack_name():
    """6-30 characters of [a-z0-9-], starting with a letter (IAM: service account id rules)."""
    import re

    for stack in ("a", "dev", "Prod_EU.1", "x" * 100, "customer-facing-production"):
        for account_id in stack_account_ids(stack).values():
            assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", account_id), (stack, account_id)
