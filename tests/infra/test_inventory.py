"""Golden inventories: what each committed stack deploys, in tests/infra/inventory_<stack>.json.

A change to the plan of a committed stack (one more resource, another NAT timeout, another
CPU limit) fails here until the inventory is regenerated, so it shows up in review:

    .venv/bin/python -m tests.infra.test_inventory      # rewrites both files; review the diff

The platform section is the GCP side (infra/); the agent section is what k8s/ renders.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tooling.plan import PlanResult
from tests.conftest import STACKS, _fixture_plan

HERE = Path(__file__).parent


def inventory_file(stack: str) -> Path:
    return HERE / f"inventory_{stack}.json"


def counts(plan: PlanResult) -> dict[str, int]:
    return dict(sorted(Counter(r["type"] for r in plan.resources).items()))


def platform(plan: PlanResult) -> dict[str, Any]:
    cluster = plan.one("gcp:container/cluster:Cluster")["inputs"]
    nat = plan.one("gcp:compute/routerNat:RouterNat")["inputs"]
    subnet = plan.one("gcp:compute/subnetwork:Subnetwork")["inputs"]
    repo = plan.one("gcp:artifactregistry/repository:Repository")["inputs"]
    return {
        "cluster": {
            "name": cluster["name"],
            "releaseChannel": cluster["releaseChannel"]["channel"],
            "deletionProtection": cluster["deletionProtection"],
            "ipEndpoint": cluster["controlPlaneEndpointsConfig"]["ipEndpointsConfig"]["enabled"],
            "authorizedNetworks": cluster.get("masterAuthorizedNetworksConfig", {}).get("cidrBlocks", []),
            "maintenance": cluster["maintenancePolicy"]["recurringWindow"],
            "exclusions": {e["exclusionName"]: e["exclusionOptions"]["scope"]
                           for e in cluster["maintenancePolicy"]["maintenanceExclusions"]},
            "nodeServiceAccount": cluster["clusterAutoscaling"]["autoProvisioningDefaults"]["serviceAccount"],
            "monitoringComponents": cluster["monitoringConfig"].get("enableComponents"),
            "kubeletReadonlyPort": cluster.get("nodePoolAutoConfig", {}).get("nodeKubeletConfig", {})
                                          .get("insecureKubeletReadonlyPortEnabled"),
            "costAllocation": cluster.get("costManagementConfig", {}).get("enabled"),
            "notifiedEvents": cluster.get("notificationConfig", {}).get("pubsub", {}).get("filter", {}).get("eventTypes"),
            "secretsEncryption": cluster.get("databaseEncryption", {}).get("state"),
            "binaryAuthorization": cluster.get("binaryAuthorization", {}).get("evaluationMode"),
            "replacementKeepers": sorted(plan.named("gke-suffix")["inputs"].get("keepers", {})),
        },
        "network": {
            "nodes": subnet["ipCidrRange"],
            "secondary": {r["rangeName"]: r["ipCidrRange"] for r in subnet["secondaryIpRanges"]},
            "natMinPortsPerVm": nat["minPortsPerVm"],
            "natIdleTimeouts": {k: nat[k] for k in ("tcpEstablishedIdleTimeoutSec", "tcpTransitoryIdleTimeoutSec", "udpIdleTimeoutSec")},
        },
        "registry": {
            "repositoryId": repo["repositoryId"],
            "cleanup": {p["id"]: p["action"] for p in repo["cleanupPolicies"]},
            "admitted": sorted(e["namePattern"] for r in plan.of_type("gcp:binaryauthorization/policy:Policy")
                               for e in r["inputs"]["admissionWhitelistPatterns"]),
        },
        "outputs": sorted(plan.outputs),
    }


def agent(plan: PlanResult) -> dict[str, Any]:
    deployment = plan.named("agent-deployment")["inputs"]
    pod = deployment["spec"]["template"]["spec"]
    hpa = plan.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")["inputs"]["spec"]
    return {
        "resources": pod["containers"][0]["resources"],
        "terminationGracePeriodSeconds": pod["terminationGracePeriodSeconds"],
        "annotations": deployment["spec"]["template"]["metadata"].get("annotations", {}),
        "hpa": {"min": hpa["minReplicas"], "max": hpa["maxReplicas"],
                "target": hpa["metrics"][0]["resource"]["target"]["averageUtilization"],
                "upWindow": hpa["behavior"]["scaleUp"]["stabilizationWindowSeconds"],
                "downWindow": hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"]},
    }


def inventory(stack: str) -> dict[str, Any]:
    plan = _fixture_plan(stack)
    # Through JSON, so tuples and lists compare the way the file stores them.
    return json.loads(json.dumps({"counts": counts(plan), "platform": platform(plan), "agent": agent(plan)}))


def expected(stack: str) -> dict[str, Any]:
    return json.loads(inventory_file(stack).read_text())


def _changed(stack: str, section: str) -> str:
    return (f"the {stack} plan's {section} changed; if intended, regenerate with "
            "`.venv/bin/python -m tests.infra.test_inventory` and review the diff")


@pytest.mark.parametrize("stack", STACKS)
def test_resource_counts_match_the_reviewed_inventory(stack):
    assert inventory(stack)["counts"] == expected(stack)["counts"], _changed(stack, "resource counts")


@pytest.mark.parametrize("stack", STACKS)
def test_platform_values_match_the_reviewed_inventory(stack):
    assert inventory(stack)["platform"] == expected(stack)["platform"], _changed(stack, "platform settings")


@pytest.mark.parametrize("stack", STACKS)
def test_agent_values_match_the_reviewed_inventory(stack):
    assert inventory(stack)["agent"] == expected(stack)["agent"], _changed(stack, "agent settings")


def test_every_committed_stack_has_an_inventory():
    committed = sorted(p.name.split(".")[1] for p in HERE.parents[1].glob("Pulumi.*.yaml"))
    assert committed == sorted(STACKS)
    assert all(inventory_file(s).is_file() for s in STACKS)


if __name__ == "__main__":
    for name in STACKS:
        inventory_file(name).write_text(json.dumps(inventory(name), indent=2, sort_keys=True) + "\n")
