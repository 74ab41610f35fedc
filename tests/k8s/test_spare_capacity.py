"""Spare capacity: placeholders the size of one agent pod, preempted first, never preempting; or
GKE's CapacityBuffer, validated against its published CRD."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import jsonschema
import pytest
import yaml

from domain.settings import ConfigError
from tooling.plan import evaluate
from k8s import runtime
from domain.config import parse_stack_config
from domain.stackfiles import load_stack_values
from domain.sizes import SIZES
from domain.pod_requests import effective_pod_requests
from k8s.spare_capacity import CAPACITY_BUFFER_MIN_VERSION, unit_requests
from policy.quantities import cpu_millicores, memory_mib
from policy.engine import evaluate_plan

CRD = Path(__file__).resolve().parents[1] / "schemas" / "capacitybuffer-crd.yaml"


def test_prod_keeps_one_agent_pod_of_room(prod_plan):
    priority = prod_plan.named("spare-priority")["inputs"]
    assert priority["value"] < 0 and priority["preemptionPolicy"] == "Never" and priority["globalDefault"] is False
    placeholders = prod_plan.named("spare-placeholders")["inputs"]
    assert placeholders["spec"]["replicas"] == 1
    pod = placeholders["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == priority["metadata"]["name"]
    # size M (2000m / 4 GiB) and the Auth Proxy sidecar (250m / 256 MiB without bursting)
    assert pod["containers"][0]["resources"]["requests"] == whole_agent_pod(prod_plan)
    assert pod["containers"][0]["resources"]["requests"]["cpu"] == f"{SIZES['M'].cpu_m + 250}m"
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
    requests = template["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert requests == whole_agent_pod(dev_plan)
    # size S (1000m / 2 GiB) and the Auth Proxy sidecar at the bursting minimum (50m / 64 MiB)
    assert requests["cpu"] == f"{SIZES['S'].cpu_m + 50}m"


def whole_agent_pod(plan) -> dict[str, str]:
    """What the scheduler reserves for the plan's agent pod, read from the rendered Deployment
    (not from k8s/spare_capacity.py): every app container plus every native sidecar (KEP-753;
    Kubernetes docs "Effective Pod requests and limits"; no ordinary init container here), CPU
    rounded up to Autopilot's 250m step when the stack does not burst."""
    spec = plan.named("agent-deployment")["inputs"]["spec"]["template"]["spec"]
    assert all(c.get("restartPolicy") == "Always" for c in spec.get("initContainers", []))
    running = spec["containers"] + spec.get("initContainers", [])
    cpu = sum(cpu_millicores(c["resources"]["requests"]["cpu"]) for c in running)
    memory = sum(memory_mib(c["resources"]["requests"]["memory"]) for c in running)
    storage = sum(memory_mib(c["resources"]["requests"]["ephemeral-storage"]) for c in running)
    bursting = spec["containers"][0]["resources"]["limits"]["cpu"] != spec["containers"][0]["resources"]["requests"]["cpu"]
    if not bursting:
        cpu = math.ceil(cpu / 250) * 250
    return {"cpu": f"{cpu:.0f}m", "memory": f"{memory:.0f}Mi", "ephemeral-storage": f"{storage:.0f}Mi"}


def _container(cpu: str, memory: str = "64Mi", restart: str | None = None) -> dict:
    c = {"resources": {"requests": {"cpu": cpu, "memory": memory, "ephemeral-storage": "10Mi"}}}
    return {**c, "restartPolicy": restart} if restart else c


@pytest.mark.parametrize("init_cpu, pod_cpu", [
    # app 1000m + sidecar 250m = 1250m; an ordinary init container after the sidecar runs beside
    # it: it decides the pod's request only above 1000m of its own
    ("999m", 1250.0), ("1000m", 1250.0), ("1001m", 1251.0),
])
def test_effective_request_is_the_larger_phase_at_the_boundary(init_cpu, pod_cpu):
    """KEP-753: max(ordinary init container + sidecars started before it, app + all sidecars)."""
    total = effective_pod_requests([_container("1000m")], [_container("250m", restart="Always"), _container(init_cpu)])
    assert total["cpu"] == pod_cpu


def test_an_init_container_before_the_sidecar_runs_alone():
    total = effective_pod_requests([_container("100m")], [_container("300m"), _container("250m", restart="Always")])
    assert total["cpu"] == 350.0  # app 100m + sidecar 250m beats the lone 300m init container
    total = effective_pod_requests([_container("100m")], [_container("400m"), _container("250m", restart="Always")])
    assert total["cpu"] == 400.0


def test_the_old_placeholder_left_room_for_no_agent_pod(prod_plan):
    """The placeholder used to request the agent container only: preempting it freed 2000m
    where the pod needs 2250m, so the agent pod still waited for a node."""
    room = prod_plan.named("spare-placeholders")["inputs"]["spec"]["template"]["spec"]["containers"][0]
    need = whole_agent_pod(prod_plan)
    agent = prod_plan.named("agent-deployment")["inputs"]["spec"]["template"]["spec"]["containers"][0]
    assert cpu_millicores(agent["resources"]["requests"]["cpu"]) < cpu_millicores(need["cpu"])
    for resource in ("cpu", "memory", "ephemeral-storage"):
        parse = cpu_millicores if resource == "cpu" else memory_mib
        assert parse(room["resources"]["requests"][resource]) == parse(need[resource]), resource


@pytest.mark.parametrize("bursting, cpu", [(False, "1250m"), (True, "1050m")])
def test_unit_is_rounded_as_autopilot_runs_it(bursting, cpu):
    """S with the sidecar: 1000m + 250m without bursting (already on the 250m step), 1000m + 50m
    with it (no step); the placeholder is billed and placed like the pod it stands for."""
    w = _workload(**{"gke-voice-agents:agentSize": "S", "gke-voice-agents:cpuBursting": "true" if bursting else "false"})
    assert unit_requests(w)["cpu"] == cpu


def test_without_recovery_the_unit_is_the_agent_container_alone():
    w = _workload(**{"gke-voice-agents:recoveryEnabled": "false", "gke-voice-agents:agentSize": "M"})
    assert unit_requests(w) == {"cpu": "2000m", "memory": "4096Mi", "ephemeral-storage": "1024Mi"}


def _workload(**overrides: str):
    values = load_stack_values("prod")
    return parse_stack_config("prod", {**values.config, **overrides}, values.secret_keys).workload


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


def test_a_capacity_buffer_pins_the_cluster_to_a_version_that_serves_it(plan):
    """GKE serves CapacityBuffer from 1.35.2-gke.1842000 (k8s/spare_capacity.py): a stack that
    asks for one gets a cluster whose control plane is at least that; placeholders need no pin."""
    cluster = plan.one("gcp:container/cluster:Cluster")["inputs"]
    buffers = plan.of_type("kubernetes:autoscaling.x-k8s.io/v1beta1:CapacityBuffer")
    assert cluster.get("minMasterVersion") == (CAPACITY_BUFFER_MIN_VERSION if buffers else None)
