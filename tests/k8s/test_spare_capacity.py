"""Spare capacity: placeholders the size of one agent pod, preempted first, never preempting; or
GKE's CapacityBuffer, validated against its published CRD."""

from __future__ import annotations

import hashlib
from pathlib import Path

import jsonschema
import pytest
import yaml

from domain.settings import ConfigError
from tooling.plan import evaluate
from k8s import runtime
from domain.sizes import SIZES
from policy.engine import evaluate_plan

CRD = Path(__file__).resolve().parents[1] / "schemas" / "capacitybuffer-crd.yaml"


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


def test_dev_keeps_its_room_with_a_capacity_buffer_and_no_pause_pods(dev_plan):
    """dev (RAPID channel, GKE 1.35.2+) uses GKE's CapacityBuffer: no placeholder Deployment."""
    spare = {r["name"]: r for r in dev_plan.resources if r["name"].startswith("spare-")}
    assert sorted(spare) == ["spare-buffer", "spare-template"]
    buffer = spare["spare-buffer"]["inputs"]
    assert buffer["apiVersion"] == "autoscaling.x-k8s.io/v1beta1" and buffer["kind"] == "CapacityBuffer"
    assert buffer["spec"] == {"provisioningStrategy": "buffer.x-k8s.io/active-capacity",
                              "podTemplateRef": {"name": "voice-agent-spare"}, "replicas": 1}
    template = spare["spare-template"]["inputs"]
    assert template["metadata"]["name"] == "voice-agent-spare"
    agent = dev_plan.named("agent-deployment")["inputs"]["spec"]["template"]["spec"]["containers"][0]
    requests = template["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert requests == {"cpu": agent["resources"]["requests"]["cpu"], "memory": agent["resources"]["requests"]["memory"]}


def _crd_schema() -> dict:
    crd = yaml.safe_load(CRD.read_text())
    return next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == "v1beta1")


def _buffer_object(spec: dict) -> dict:
    return {"apiVersion": "autoscaling.x-k8s.io/v1beta1", "kind": "CapacityBuffer",
            "metadata": {"name": "voice-agent-spare", "namespace": "voice-agents"}, "spec": spec}


def test_the_rendered_buffer_is_valid_against_the_published_crd(dev_plan):
    buffer = dev_plan.named("spare-buffer")["inputs"]
    jsonschema.validate(_buffer_object(buffer["spec"]), _crd_schema())
    # the CRD's CEL rules (x-kubernetes-validations), which jsonschema does not run: a
    # podTemplateRef needs replicas or limits, and never comes with a scalableRef
    spec = buffer["spec"]
    assert "replicas" in spec or "limits" in spec
    assert not ("podTemplateRef" in spec and "scalableRef" in spec)


@pytest.mark.parametrize("spec, message", [
    ({"podTemplateRef": {"name": ""}, "replicas": 1}, "should be non-empty"),
    ({"podTemplateRef": {"name": "x"}, "replicas": -1}, "less than the minimum"),
    ({"podTemplateRef": {"name": "x"}, "replicas": "1"}, "is not of type 'integer'"),
])
def test_the_schema_check_can_fail(spec, message):
    """Control: the vendored schema refuses what the API server would."""
    with pytest.raises(jsonschema.ValidationError, match=message):
        jsonschema.validate(_buffer_object(spec), _crd_schema())


def test_the_vendored_crd_is_the_one_sources_names():
    digest = hashlib.sha256(CRD.read_bytes()).hexdigest()
    assert f"`{digest}`" in (CRD.parent / "SOURCES.md").read_text()


def test_spare_capacity_mode_is_one_of_the_two():
    with pytest.raises(ConfigError, match=r"spareCapacityMode = 'buffers': must be one of placeholders, capacityBuffer"):
        evaluate("dev", {"gke-voice-agents:spareCapacityMode": "buffers"})


def test_placeholders_are_not_judged_as_agents():
    result = evaluate("dev", {"gke-voice-agents:spareCapacityPods": "2", "gke-voice-agents:spareCapacityMode": "placeholders"})
    assert result.named("spare-placeholders")["inputs"]["spec"]["replicas"] == 2
    assert evaluate_plan(result.resources, "dev") == []


def test_spare_capacity_is_bounded():
    with pytest.raises(ConfigError, match=r"spareCapacityPods = 51: must be from 0 to 50 pods"):
        evaluate("dev", {"gke-voice-agents:spareCapacityPods": "51"})
