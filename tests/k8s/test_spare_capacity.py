"""Spare capacity: placeholders the size of one agent pod, preempted first, never preempting."""

from __future__ import annotations

import pytest

from infra.settings import ConfigError
from infra.plan import evaluate
from k8s import runtime
from k8s.sizes import SIZES
from policy.engine import evaluate_plan


def test_prod_keeps_one_agent_pod_of_room(prod_plan):
    priority = prod_plan.named("spare-priority")["inputs"]
    assert priority["value"] < 0 and priority["preemptionPolicy"] == "Never" and priority["globalDefault"] is False
    placeholders = prod_plan.named("spare-placeholders")["inputs"]
    assert placeholders["spec"]["replicas"] == 1
    pod = placeholders["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == priority["metadata"]["name"]
    agent = prod_plan.named("agent-deployment")["inputs"]["spec"]["template"]["spec"]["containers"][0]
    assert pod["containers"][0]["resources"]["requests"] == {"cpu": agent["resources"]["requests"]["cpu"],
                                                              "memory": agent["resources"]["requests"]["memory"]}
    assert pod["containers"][0]["resources"]["requests"]["cpu"] == f"{SIZES['M'].cpu_m}m"
    assert pod["terminationGracePeriodSeconds"] == 0
    labels = placeholders["spec"]["template"]["metadata"]["labels"]
    assert labels[runtime.ROLE_LABEL] == runtime.PLACEHOLDER_ROLE
    # The placeholder must not be mistaken for the agent's pods by the HPA, PDB or monitoring.
    assert labels["app.kubernetes.io/name"] != "voice-agent"


def test_dev_has_none(dev_plan):
    assert not [r for r in dev_plan.resources if r["name"].startswith("spare-")]


def test_placeholders_are_not_judged_as_agents():
    result = evaluate("dev", {"gke-voice-agents:spareCapacityPods": "2"})
    assert result.named("spare-placeholders")["inputs"]["spec"]["replicas"] == 2
    assert evaluate_plan(result.resources, "dev") == []


def test_spare_capacity_is_bounded():
    with pytest.raises(ConfigError, match=r"spareCapacityPods = 51: must be from 0 to 50 pods"):
        evaluate("dev", {"gke-voice-agents:spareCapacityPods": "51"})
