"""Seed 000's numbers alone, on our own hardened Deployment: which rules the configuration trips.

tests/policy/test_seed_000.py renders the seed's manifests as written, which also lack a
command, probes, a security context and a PDB. Here only the seed's settings go into the real,
evaluated prod plan (request 1000m/1Gi, limit 2000m/2Gi, preStop `sh -c "sleep 120"`, grace 150,
HPA 75 %, windows 120/900, livekit-agents 1.8.9 defaults for drain 3600 s and threshold 0.7),
so every violation left is one the seed's configuration causes by itself.
"""

from __future__ import annotations

import pytest

from policy.engine import evaluate_plan, load_policy_config
from tests.conftest import _fixture_plan

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
# The seed sets neither, so the worker runs the framework defaults (drain 3600 s, load 0.7).
FRAMEWORK_DEFAULTED = ("AGENT_DRAIN_TIMEOUT_SECONDS", "AGENT_LOAD_THRESHOLD")


def _inputs(resources: list[dict], typ: str) -> dict:
    # The agent's own objects (prod also has capacity placeholders).
    [found] = [r for r in resources if r["type"] == typ and r["name"].startswith("agent-")]
    return found["inputs"]


def seed_settings_on_our_plan() -> list[dict]:
    resources = _fixture_plan("prod").resources
    template = _inputs(resources, DEPLOYMENT)["spec"]["template"]
    template["metadata"]["annotations"] = {}  # the seed has no safe-to-evict annotation
    template["spec"]["terminationGracePeriodSeconds"] = 150
    container = template["spec"]["containers"][0]
    container["resources"] = {"requests": {"cpu": "1000m", "memory": "1Gi", "ephemeral-storage": "1Gi"},
                              "limits": {"cpu": "2000m", "memory": "2Gi", "ephemeral-storage": "1Gi"}}
    container["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 120"]}}}
    container["env"] = [e for e in container["env"] if e["name"] not in FRAMEWORK_DEFAULTED]
    spec = _inputs(resources, HPA)["spec"]
    spec["metrics"][0]["resource"]["target"]["averageUtilization"] = 75
    spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] = 120
    spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] = 900
    return resources


def tripped(bursting: bool) -> dict[str, str]:
    config = {**load_policy_config("prod"),
              "agent-autopilot-resources": {"bursting": bursting},
              "agent-hpa-below-load-threshold": {"bursting": bursting}}
    return {v["rule"]: v["severity"] for v in evaluate_plan(seed_settings_on_our_plan(), "prod", config=config)}


# Both: 150 s < preStop 120 + drain 3600 + shutdown 100 = 3820 s, and the worker keeps taking
# calls through the 120 s sleep, then has 30 s to drain them.
TIMING = {"agent-grace-covers-drain": "mandatory", "agent-no-sleep-prestop": "mandatory"}


def test_without_bursting_the_configuration_trips_four_rules():
    assert tripped(bursting=False) == {
        **TIMING,
        # limit = request = 1000m: 75 % x 1.1 = load 0.83 >= 0.7, pods report full first.
        "agent-hpa-below-load-threshold": "mandatory",
        # the 2000m/2Gi limits are silently set to 1000m/1Gi.
        "agent-autopilot-resources": "advisory",
    }


def test_with_bursting_only_the_timing_traps_remain():
    """The 2000m limit is real: 75 % of 1000m x 1.1 / 2000m = load 0.41 < 0.7."""
    assert tripped(bursting=True) == TIMING


@pytest.mark.parametrize("bursting", [False, True])
def test_the_rest_of_the_seed_configuration_passes(bursting):
    """Scale-down 900 s is slower than scale-up 120 s, 1 GiB per vCPU is inside Autopilot's
    1..6.5 ratio, 1000m is a multiple of 250m, grace 150 s is under the autoscaler's 10 minutes
    (so no safe-to-evict annotation is needed) and a CPU limit exists."""
    assert not {"agent-scale-down-slower", "agent-extended-duration", "agent-cpu-limit"} & set(tripped(bursting))
