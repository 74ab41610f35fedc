"""CheckpointKey (infra/checkpoint_key.py) in the fixture stacks' plans: the key that seals the
agent's checkpoints exists whenever recovery does, rotates, is usable by the agent's principal
alone, and is the key the agent's pods are told to use."""

from __future__ import annotations

import pytest

from infra.checkpoint_key import DESTROY_SCHEDULED_DURATION, KEY_NAME
from infra.encryption import KEY_USER_ROLE, ROTATION_PERIOD
from policy.rules.access_gcp import grants
from policy.engine import as_resources

KEY = "gcp:kms/cryptoKey:CryptoKey"
KEY_GRANT = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"


def _checkpoint_key(plan) -> dict:
    [key] = [r for r in plan.of_type(KEY) if r["parent"] == "checkpoint-key"]
    return key


def _agent_env(plan) -> dict[str, str]:
    [deployment] = [r for r in plan.resources if r["name"] == "agent-deployment"]
    [container] = deployment["inputs"]["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def _agent_principal(plan) -> str:
    [vertex] = [r for r in plan.resources if r["name"] == "agent-identity-vertex-user"]
    return vertex["inputs"]["member"]


def test_the_key_rotates_and_its_destroyed_versions_go_after_a_day(plan):
    key = _checkpoint_key(plan)["inputs"]
    assert key["name"] == KEY_NAME == "checkpoints" and key["purpose"] == "ENCRYPT_DECRYPT"
    assert key["rotationPeriod"] == ROTATION_PERIOD == "7776000s"  # 90 days
    assert key["destroyScheduledDuration"] == DESTROY_SCHEDULED_DURATION == "86400s"
    [ring] = [r for r in plan.of_type("gcp:kms/keyRing:KeyRing") if r["parent"] == "checkpoint-key"]
    assert ring["inputs"]["location"] == plan.one("gcp:container/cluster:Cluster")["inputs"]["location"]
    assert len(ring["inputs"]["name"]) <= 63


def test_only_the_agents_principal_may_use_the_key_and_its_pods_name_it(plan):
    key_grants = [g for g in grants(as_resources(plan.resources)) if g.level == "cryptoKey"]
    env_key = _agent_env(plan)["AGENT_RECOVERY_KMS_KEY"]
    on_checkpoint_key = [g for g in key_grants if g.target == env_key]
    assert [(g.role, g.members) for g in on_checkpoint_key] == [(KEY_USER_ROLE, (_agent_principal(plan),))]
    assert env_key.endswith(f"/cryptoKeys/{KEY_NAME}") and "/keyRings/gva-ckpt-" in env_key
    # no other key (the GKE secrets key in prod) is open to the agent
    assert not [g for g in key_grants if g.target != env_key and _agent_principal(plan) in g.members]


def test_the_pods_start_after_the_grant(plan):
    [deployment] = [r for r in plan.resources if r["name"] == "agent-deployment"]
    assert "checkpoint-key-agent" in deployment["dependsOn"]


@pytest.mark.parametrize("example", ["minimal", "byo-agent"])
def test_no_recovery_no_key(example):
    from tests.infra.test_examples import EXAMPLES
    from tooling.plan import evaluate

    plan = evaluate(example, stack_dir=EXAMPLES / example)
    assert not [r for r in plan.resources if r["name"].startswith("checkpoint-key")]
    assert "AGENT_RECOVERY_KMS_KEY" not in _agent_env(plan)
