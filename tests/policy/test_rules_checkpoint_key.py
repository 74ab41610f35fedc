"""The agent's one Cloud KMS grant (infra/checkpoint_key.py): encrypterDecrypter on the key its
pods name in AGENT_RECOVERY_KMS_KEY, accepted by agent-identity-holds-no-tool-role; any other
key, role or level is refused. Mutations of the fixture stacks' evaluated plans."""

from __future__ import annotations

import copy

import pytest

from infra import encryption
from policy.engine import evaluate_plan
from policy.rules import access
from tests.conftest import _fixture_plan

RULE = "agent-identity-holds-no-tool-role"
KEY_GRANT = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"


def _resources(stack: str) -> list:
    return copy.deepcopy(_fixture_plan(stack).resources)


def _violations(resources, stack: str) -> list[str]:
    return [v["message"] for v in evaluate_plan(resources, stack) if v["rule"] == RULE]


def _grant(resources) -> dict:
    [grant] = [r for r in resources if r["name"] == "checkpoint-key-agent"]
    return grant


def _env(resources) -> list[dict]:
    deployment = next(r for r in resources if r["name"] == "agent-deployment")["inputs"]
    return deployment["spec"]["template"]["spec"]["containers"][0]["env"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_agents_grant_on_its_checkpoint_key_is_accepted(stack):
    resources = _resources(stack)
    assert _grant(resources)["inputs"]["role"] == access.KMS_KEY_ROLE
    assert _violations(resources, stack) == []


def _another_role(resources):
    _grant(resources)["inputs"]["role"] = "roles/cloudkms.admin"


def _a_key_the_pods_do_not_name(resources):
    for env in _env(resources):
        if env["name"] == access.KMS_KEY_VARIABLE:
            env["value"] = env["value"].replace("/cryptoKeys/checkpoints", "/cryptoKeys/other")


def _the_key_ring(resources):
    grant = _grant(resources)
    grant["type"] = "gcp:kms/keyRingIAMMember:KeyRingIAMMember"
    key = grant["inputs"].pop("cryptoKeyId")
    grant["inputs"]["keyRingId"] = key.rsplit("/cryptoKeys/", 1)[0]


def _the_secrets_key_too(resources):
    [secrets_grant] = [r for r in resources if r["name"] == "secrets-key-gke-agent"]
    secrets_grant["inputs"]["member"] = _grant(resources)["inputs"]["member"]


@pytest.mark.parametrize(("mutate", "stack", "says"), [
    (_another_role, "dev", "is granted roles/cloudkms.admin on cryptoKey"),
    (_a_key_the_pods_do_not_name, "dev", "is granted roles/cloudkms.cryptoKeyEncrypterDecrypter on cryptoKey"),
    (_the_key_ring, "dev", "is granted roles/cloudkms.cryptoKeyEncrypterDecrypter on keyRing"),
    (_the_secrets_key_too, "prod", "cryptoKeys/gke-secrets"),
])
def test_any_other_kms_grant_is_refused(mutate, stack, says):
    resources = _resources(stack)
    mutate(resources)
    found = _violations(resources, stack)
    assert len(found) == 1 and says in found[0], found
    assert "it may only encrypt and decrypt with the key its pods name in AGENT_RECOVERY_KMS_KEY" in found[0]


def test_names_spelled_in_the_rules_match_their_homes():
    assert access.KMS_KEY_ROLE == encryption.KEY_USER_ROLE
