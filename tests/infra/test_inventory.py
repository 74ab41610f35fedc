"""Golden inventories: what each committed stack deploys. A change here is a change to review."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import _committed_plan

INVENTORY = Path(__file__).with_name("inventory.json")


def inventory(stack: str) -> dict:
    plan = _committed_plan(stack)
    deployment = plan.named("agent-deployment")["inputs"]
    pod = deployment["spec"]["template"]["spec"]
    hpa = plan.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")["inputs"]["spec"]
    cluster = plan.one("gcp:container/cluster:Cluster")["inputs"]
    return {
        "counts": dict(sorted(Counter(r["type"] for r in plan.resources).items())),
        "cluster": {"releaseChannel": cluster["releaseChannel"]["channel"], "deletionProtection": cluster["deletionProtection"]},
        "agent": {
            "resources": pod["containers"][0]["resources"],
            "terminationGracePeriodSeconds": pod["terminationGracePeriodSeconds"],
            "annotations": deployment["spec"]["template"]["metadata"].get("annotations", {}),
            "hpa": {"min": hpa["minReplicas"], "max": hpa["maxReplicas"],
                    "target": hpa["metrics"][0]["resource"]["target"]["averageUtilization"],
                    "upWindow": hpa["behavior"]["scaleUp"]["stabilizationWindowSeconds"],
                    "downWindow": hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"]},
        },
    }


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_plan_matches_the_reviewed_inventory(stack):
    expected = json.loads(INVENTORY.read_text())[stack]
    assert inventory(stack) == expected, (
        f"the {stack} plan changed; if intended, regenerate with "
        "`.venv/bin/python -m tests.infra.test_inventory` and review the diff")


if __name__ == "__main__":
    INVENTORY.write_text(json.dumps({s: inventory(s) for s in ("dev", "prod")}, indent=2, sort_keys=True) + "\n")
