"""Seed 000's blueprint, evaluated on Autopilot with and without CPU bursting.

The seed's Deployment (request 1000m/1Gi, limit 2000m/2Gi, preStop `sleep 120`, grace 150) and
HPA (75 % CPU, windows 120/900) are rendered into our real plan in place of our own objects;
the seed sets no drain timeout or load threshold, so the worker runs the livekit-agents 1.8.9
defaults (3600 s, 0.7).
"""

from __future__ import annotations

import copy

import pytest

from infra.config import ConfigError
from infra.plan import evaluate
from policy.engine import as_resources, violations
from policy.rules import Context
from tests.conftest import _committed_plan

SEED_CONTAINER = {
    "name": "backend-agent",
    "image": "backend-agent:latest",
    "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 120"]}}},
    "resources": {"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "2000m", "memory": "2Gi"}},
}
SEED_HPA_SPEC = {
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "voice-agent"},
    "minReplicas": 3, "maxReplicas": 10,
    "behavior": {"scaleUp": {"stabilizationWindowSeconds": 120}, "scaleDown": {"stabilizationWindowSeconds": 900}},
    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 75}}}],
}


def seed_resources() -> list[dict]:
    resources = copy.deepcopy(_committed_plan("prod").resources)
    for r in resources:
        if r["type"] == "kubernetes:apps/v1:Deployment":
            template = r["inputs"]["spec"]["template"]
            template["metadata"].pop("annotations", None)
            template["spec"] = {"terminationGracePeriodSeconds": 150, "containers": [copy.deepcopy(SEED_CONTAINER)]}
        if r["type"] == "kubernetes:autoscaling/v2:HorizontalPodAutoscaler":
            r["inputs"]["spec"] = copy.deepcopy(SEED_HPA_SPEC)
    # The seed has no PodDisruptionBudget.
    return [r for r in resources if r["type"] != "kubernetes:policy/v1:PodDisruptionBudget"]


def tripped(bursting: bool) -> dict[str, str]:
    found = violations(as_resources(seed_resources()), Context(bursting=bursting, protected=True))
    return {v["rule"]: v["severity"] for v in found}


COMMON = {
    # 150 s < preStop 120 + drain 3600 + shutdown 80: SIGKILL lands an hour early.
    "agent-grace-covers-drain": "mandatory",
    # New calls land on the pod during the 120 s sleep, then get 30 s.
    "agent-no-sleep-prestop": "mandatory",
    # No command: what the image runs cannot be checked (the seed's Dockerfile is fine, the
    # Deployment does not say so).
    "agent-exec-form-start": "mandatory",
    "agent-security-context": "mandatory",
    "agent-probes": "advisory",
    "agent-pdb": "advisory",
}


def test_without_bursting_the_hpa_deadlocks_and_the_limit_is_silently_dropped():
    assert tripped(bursting=False) == {
        **COMMON,
        # limit forced to the 1000m request: 75% x 1.1 = 0.83 >= 0.7, pods say full first.
        "agent-hpa-below-load-threshold": "mandatory",
        # the 2000m/2Gi limits do not exist on Autopilot without bursting.
        "agent-autopilot-resources": "advisory",
    }


def test_with_bursting_the_capacity_rules_hold_but_the_timing_traps_remain():
    assert tripped(bursting=True) == COMMON


def test_messages_carry_the_numbers():
    found = {v["rule"]: v["message"] for v in violations(as_resources(seed_resources()), Context(bursting=False))}
    assert "terminationGracePeriodSeconds 150 < preStop 120 + drain timeout 3600 + shutdown 80 = 3800 s" in found["agent-grace-covers-drain"]
    assert "has 30 s of the 150 s grace left" in found["agent-no-sleep-prestop"]
    assert "HPA target 75% of a 1000m request with a 1000m effective limit puts each worker at load 0.83" in found["agent-hpa-below-load-threshold"]


def test_our_config_refuses_the_seed_settings_before_any_resource():
    P = "gke-voice-agents:"
    with pytest.raises(ConfigError) as caught:
        evaluate("prod", {P + "hpaTargetCpuUtilization": "75", P + "hpaScaleUpWindowSeconds": "120", P + "preStopSeconds": "120",
                          P + "drainTimeoutSeconds": "3600"})
    text = str(caught.value)
    assert "hpaTargetCpuUtilization = 75" in text and "grace = preStop 120 + drain 3600 + shutdown 80 = 3800 s" in text
