"""`pulumi destroy` of a throwaway stack removes everything it can (issue 24).

The engine deletes a resource before anything it waits for (its dependencies, its provider, its
parent), i.e. the creation graph of tooling/preconditions.py reversed. These tests check that order
on the fixture stacks' plans, and the deletion policies that decide whether GCP lets each delete
through: the private services connection must not leave its peering behind (a network with a
peering cannot be deleted), the IAM database user that owns the checkpoint tables cannot be
deleted through the Cloud SQL API, deletion protection is off where the stack is throwaway.
"""

from __future__ import annotations

import pytest

from infra.database import PSA_DELETION_POLICY, USER_DELETION_POLICY
from tooling.preconditions import PlanGraph, kept_after_destroy
from tooling.plan import PlanResult


def _position(plan: PlanResult) -> dict[str, int]:
    return {name: i for i, name in enumerate(PlanGraph(plan.resources).destroy_order())}


def test_nothing_is_deleted_before_what_waits_for_it(plan: PlanResult):
    graph = PlanGraph(plan.resources)
    at = _position(plan)
    assert set(at) == {r["name"] for r in plan.resources}
    for r in plan.resources:
        for needed in graph.direct(r["name"]) | ({r["parent"]} if r["parent"] else set()):
            assert at[r["name"]] < at[needed], f"{r['name']} must go before {needed}"


def test_the_network_goes_last_after_the_database_and_its_peering(dev_plan):
    at = _position(dev_plan)
    assert at["checkpoints-user"] < at["checkpoints-instance"] < at["checkpoints-psa"] < at["network-vpc"]
    assert at["checkpoints-psa"] < at["checkpoints-psa-range"] < at["network-vpc"]
    # every Kubernetes object is deleted while its cluster still answers
    k8s = [at[r["name"]] for r in dev_plan.resources if r["type"].startswith("kubernetes:")]
    assert max(k8s) < at["gke-k8s"] < at["gke-cluster"]


def test_the_order_check_can_fail(dev_plan):
    resources = [dict(r) for r in dev_plan.resources]
    for r in resources:
        if r["name"] == "network-vpc":
            r["dependsOn"] = [*r["dependsOn"], "network-nodes"]  # a cycle: network <-> subnet
    with pytest.raises(ValueError, match="no resource can be deleted first"):
        PlanGraph(resources).destroy_order()


def test_deletion_policies_let_a_throwaway_stack_go(plan: PlanResult):
    psa = plan.one("gcp:servicenetworking/connection:Connection")["inputs"]
    # ABANDON would keep the peering, which blocks deleting the network
    assert psa["deletionPolicy"] == PSA_DELETION_POLICY == "REMOVE_PEERING"
    user = plan.one("gcp:sql/user:User")["inputs"]
    assert user["type"] == "CLOUD_IAM_SERVICE_ACCOUNT" and user["deletionPolicy"] == USER_DELETION_POLICY == "ABANDON"


def test_dev_has_nothing_that_refuses_or_outlives_destroy(dev_plan):
    assert dev_plan.one("gcp:container/cluster:Cluster")["inputs"]["deletionProtection"] is False
    instance = dev_plan.one("gcp:sql/databaseInstance:DatabaseInstance")["inputs"]
    assert instance["deletionProtection"] is False and instance["settings"]["deletionProtectionEnabled"] is False
    # the one ring dev keeps: its checkpoints are sealed with a key of their own whenever recovery
    # is on (infra/checkpoint_key.py); the ring is free and its key's versions are destroyed
    assert [r["name"] for r in dev_plan.of_type("gcp:kms/keyRing:KeyRing")] == ["checkpoint-key-ring"]
    kept = kept_after_destroy(dev_plan.resources)
    assert not [line for line in kept if "deletion protection" in line
                or ("never be deleted" in line and not line.startswith("checkpoint-key-ring:"))], kept


def test_the_plan_names_what_prod_keeps(prod_plan):
    kept = "\n".join(kept_after_destroy(prod_plan.resources))
    assert "secrets-key-ring: KMS key rings and keys can never be deleted" in kept
    assert "gke-cluster: deletion protection on" in kept
    assert "checkpoints-instance: deletion protection on" in kept
