"""Seed 000's blueprint, evaluated on Autopilot with and without CPU bursting.

The seed's Deployment (request 1000m/1Gi, limit 2000m/2Gi, preStop `sh -c "sleep 120"`, grace
150) and HPA (75 % CPU, scale-up window 120 s, scale-down 900 s) are written as the wire inputs
the Kubernetes provider would record, and put into our real, evaluated prod plan in place of our
own Deployment, HPA and PDB (the seed has no PDB). Everything else (cluster, network, registry,
identity) is our program's. The seed's HPA names no scaleTargetRef; we point it at the seed's
Deployment, which is what it means. The seed sets neither drain timeout nor load threshold, so
the worker runs livekit-agents 1.8.9's defaults: drain_timeout 3600 s, load_threshold 0.7.
"""

from __future__ import annotations

import copy

import pytest

from domain.settings import ConfigError
from tooling.plan import evaluate
from k8s.runtime import AGENT_ROLE, ROLE_LABEL
from policy.engine import evaluate_plan, load_policy_config
from tests.conftest import _fixture_plan

DEPLOYMENT, HPA, PDB = ("kubernetes:apps/v1:Deployment", "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
                        "kubernetes:policy/v1:PodDisruptionBudget")

SEED_DEPLOYMENT = {
    "metadata": {"name": "backend-agent-deployment"},
    # The seed's pod, labelled the way our agent pods are: the agent rules select agent pods by
    # this label (a redis or a tool server next to the agent is not theirs to judge).
    "spec": {"template": {"metadata": {"labels": {ROLE_LABEL: AGENT_ROLE}}, "spec": {
        "terminationGracePeriodSeconds": 150,
        "containers": [{
            "name": "backend-agent",
            "image": "backend-agent:latest",
            "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 120"]}}},
            "resources": {"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "2000m", "memory": "2Gi"}},
        }],
    }}},
}
SEED_HPA = {
    "metadata": {"name": "backend-agent-hpa"},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "backend-agent-deployment"},
        "minReplicas": 3, "maxReplicas": 10,
        "behavior": {"scaleUp": {"stabilizationWindowSeconds": 120}, "scaleDown": {"stabilizationWindowSeconds": 900}},
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 75}}}],
    },
}


def seed_resources() -> list[dict]:
    ours = [r for r in _fixture_plan("prod").resources if r["type"] not in (DEPLOYMENT, HPA, PDB)]
    return ours + [
        {"type": DEPLOYMENT, "name": "backend-agent-deployment", "parent": None, "inputs": copy.deepcopy(SEED_DEPLOYMENT)},
        {"type": HPA, "name": "backend-agent-hpa", "parent": None, "inputs": copy.deepcopy(SEED_HPA)},
    ]


def seed_violations(bursting: bool) -> list[dict]:
    """prod's policy config, with the cluster's bursting support set as asked."""
    config = {**load_policy_config("prod"),
              "agent-autopilot-resources": {"bursting": bursting},
              "agent-hpa-below-load-threshold": {"bursting": bursting}}
    return evaluate_plan(seed_resources(), "prod", config=config)


def tripped(bursting: bool) -> dict[str, str]:
    return {v["rule"]: v["severity"] for v in seed_violations(bursting)}


COMMON = {
    # Our plan grants the agent's identity the checkpoint key its own pods name in
    # AGENT_RECOVERY_KMS_KEY; the seed's pod names none, so that grant is a key no agent pod
    # seals with: access the agent holds beyond what it uses.
    "agent-identity-holds-no-tool-role": "mandatory",
    # 150 s < preStop 120 + drain 3600 + shutdown 100 = 3820 s: SIGKILL lands ~an hour early.
    "agent-grace-covers-drain": "mandatory",
    # no AGENT_JOB_MEMORY_LIMIT_MB: one job's memory blow-up takes the container
    "agent-job-memory-limit": "mandatory",
    # The worker keeps taking new calls during the 120 s sleep, then has 30 s to drain them.
    "agent-no-sleep-prestop": "mandatory",
    # No command: the Deployment does not say the worker runs `start` as PID 1 (the seed leaves
    # it to the image), so the drain cannot be checked.
    "agent-exec-form-start": "mandatory",
    # Root, writable root filesystem, capabilities kept, no seccomp.
    "agent-security-context": "mandatory",
    # No liveness or startup probe.
    "agent-probes": "advisory",
    # No readiness probe: a new pod is "ready" before its worker registers, so a bad release
    # drains the whole fleet.
    "agent-readiness-registered": "mandatory",
    # No strategy: Kubernetes' default maxUnavailable 25 % and a 600 s progress deadline.
    "agent-rollout-keeps-old-pods": "mandatory",
    # No PodDisruptionBudget.
    "agent-pdb": "advisory",
    # No env at all: the seed leaves the LiveKit credentials to the image or a Secret; a protected
    # stack mounts them as files from Secret Manager (LIVEKIT_API_KEY_FILE, _SECRET_FILE).
    "livekit-credentials-as-files": "mandatory",
    # `backend-agent:latest` is in none of prod's registries: Binary Authorization refuses it.
    "binauthz-admits-the-workloads": "mandatory",
    # The seed replaces every Deployment, prod's spare-capacity placeholders too, so prod's
    # allowlist entry for their pause image now admits an image nothing runs.
    "binauthz-only-stack-registry": "mandatory",
}


def test_without_bursting_the_hpa_deadlocks_and_the_limit_is_silently_dropped():
    assert tripped(bursting=False) == {
        **COMMON,
        # Limit forced to the 1000m request: 75% x 1.1 tolerance = load 0.83 >= 0.7, so every
        # pod reports full before the HPA adds one.
        "agent-hpa-below-load-threshold": "mandatory",
        # The declared 2000m/2Gi limits do not exist on Autopilot without bursting.
        "agent-autopilot-resources": "advisory",
    }


def test_with_bursting_the_capacity_rules_hold_but_the_timing_traps_remain():
    """With a real 2000m limit, 75% of 1000m x 1.1 is load 0.41 < 0.7: the HPA scales in time.
    The windows (120 up / 900 down), the 1:1 GiB:vCPU ratio, the CPU limit and grace below the
    10-minute autoscaler cap all pass in both cases."""
    assert tripped(bursting=True) == COMMON


def test_messages_carry_the_numbers():
    found = {v["rule"]: v["message"] for v in seed_violations(bursting=False)}
    assert found["agent-grace-covers-drain"] == (
        "terminationGracePeriodSeconds 150 < preStop 120 + drain timeout 3600 + shutdown 100 = 3820 s: "
        "SIGKILL lands 3670 s before running calls may finish")
    assert "preStop only sleeps 120 s" in found["agent-no-sleep-prestop"]
    assert "has 30 s of the 150 s grace left" in found["agent-no-sleep-prestop"]
    assert found["agent-hpa-below-load-threshold"] == (
        "HPA target 75% of a 1000m request with a 1000m effective limit puts each worker at load 0.83 "
        "(with the 10% HPA tolerance) >= load_threshold 0.7: every pod reports full before the HPA scales, "
        "and new callers wait; use a target of at most 63%")
    assert "limits 2000m/2Gi differ from requests 1000m/1Gi" in found["agent-autopilot-resources"]
    assert found["agent-security-context"] == (
        "container is not hardened: runAsNonRoot is not true; root filesystem is writable; privilege escalation "
        "is allowed; capabilities are not dropped; no RuntimeDefault seccomp profile")
    assert found["agent-probes"].startswith("missing livenessProbe, startupProbe")
    assert found["agent-exec-form-start"].startswith("no command")


def test_violations_point_at_the_seed_objects():
    resources = {v["rule"]: v["resource"] for v in seed_violations(bursting=False)}
    assert resources["agent-hpa-below-load-threshold"] == "backend-agent-hpa"
    assert resources["agent-grace-covers-drain"] == "backend-agent-deployment"


def test_our_config_refuses_the_seed_settings_before_any_resource():
    """The same numbers as stack config never reach a resource: config validation names them."""
    P = "gke-voice-agents:"
    with pytest.raises(ConfigError) as caught:
        evaluate("prod", {P + "hpaTargetCpuUtilization": "75", P + "hpaScaleUpWindowSeconds": "120",
                          P + "preStopSeconds": "120", P + "drainTimeoutSeconds": "3600"})
    text = str(caught.value)
    assert "preStopSeconds = '120': is no longer a setting: the worker drains on SIGTERM" in text
    assert ("drainTimeoutSeconds = 3600: must be from 30 to 3500 s (GKE node upgrades honour at most 3600 s of grace, "
            "100 s of which the worker needs to shut down after its drain)") in text
    # Cross-setting rules wait for valid single values; with those fixed, the HPA target is next.
    with pytest.raises(ConfigError, match=r"hpaTargetCpuUtilization = 75: at this target each pod's worker load reaches 0\.83"):
        evaluate("prod", {P + "hpaTargetCpuUtilization": "75", P + "hpaScaleUpWindowSeconds": "120"})
