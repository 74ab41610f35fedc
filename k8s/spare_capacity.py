"""SpareCapacity: placeholder pods that hold room for agent pods on warm nodes.

A new Autopilot node takes about 80-120 s to boot (DESIGN 3.8), and a caller who arrives while
every pod reports full waits for it. Placeholders at a negative priority, each the size of one
agent pod, keep that room: the scheduler preempts one the moment an agent pod needs it, and
Autopilot then boots a node for the evicted placeholder in the background (GKE "Provision
extra compute capacity for rapid Pod scaling").

Where the cluster runs GKE 1.35.2-gke.1842000 or later, spareCapacityMode = capacityBuffer
uses GKE's CapacityBuffer instead ("Configure capacity buffers", GKE docs): the cluster
autoscaler keeps room for `spareCapacityPods` agent pods by simulating placeholder pods from a
PodTemplate, so no pause pods run and nothing is preempted. Its CRD (autoscaling.x-k8s.io,
kubernetes/autoscaler) is vendored in tests/schemas/ and the rendered object is validated
against it. The cluster is pinned to that version whenever this mode is chosen
(CAPACITY_BUFFER_MIN_VERSION; infra/cluster.py min_master_version).

One unit of room is one whole agent pod, not its agent container: the pod also runs the Cloud
SQL Auth Proxy as a native sidecar, and the scheduler reserves a pod's *effective* request
(KEP-753 "Resources calculation for scheduling and pod admission"; Kubernetes docs "Effective
Pod requests and limits"): max(the largest init-phase need, sum(app containers) +
sum(restartable init containers)). A placeholder one sidecar smaller than that, once preempted,
leaves a hole an agent pod does not fit into.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

import math

from domain.pod_requests import effective_pod_requests
from domain.settings import WorkloadSettings
from domain.sizes import Resources, autopilot_normalise
from infra.names import child, type_token
from k8s import cloudsql_proxy, runtime
from k8s.pod import container_resources

# Below every real workload (the default priority is 0) so any pod may preempt a placeholder.
PLACEHOLDER_PRIORITY = -10
# The pause image does nothing and needs nothing writable.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
# GKE serves the CapacityBuffer kind from this version on ("Configure capacity buffers", GKE
# docs: active buffers need 1.35.2-gke.1842000 or later on Standard and Autopilot).
CAPACITY_BUFFER_MIN_VERSION = "1.35.2-gke.1842000"

def agent_pod_containers(w: WorkloadSettings) -> tuple[list[dict], list[dict]]:
    """(containers, init containers) of one agent pod as far as their requests go: the agent
    (k8s/pod.py) and, with crash recovery, the Auth Proxy sidecar (k8s/cloudsql_proxy.py)."""
    containers = [{"name": "agent", "resources": container_resources(w)}]
    sidecars = ([{"name": cloudsql_proxy.CONTAINER_NAME, "restartPolicy": "Always",
                  "resources": cloudsql_proxy.sidecar_resources(w.cpu_bursting)}]
                if w.recovery_enabled else [])
    return containers, sidecars


def unit_requests(w: WorkloadSettings) -> dict[str, str]:
    """One unit of spare room: the whole agent pod's effective request, as Autopilot runs it
    (CPU in 250m steps without bursting, its minimums and CPU:memory ratio; domain/sizes.py), so the
    placeholder is billed and scheduled exactly like the pod whose room it holds."""
    total = effective_pod_requests(*agent_pod_containers(w))
    cpu, mem = math.ceil(total["cpu"]), math.ceil(total["memory"])
    run = autopilot_normalise(Resources(cpu, mem, cpu, mem), w.cpu_bursting)
    return {"cpu": f"{run.cpu_request_m}m", "memory": f"{run.memory_request_mi}Mi",
            "ephemeral-storage": f"{math.ceil(total['ephemeral-storage'])}Mi"}


@dataclass(frozen=True)
class SpareCapacityArgs:
    settings: WorkloadSettings


def placeholder_labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": "voice-agent-spare", runtime.ROLE_LABEL: runtime.PLACEHOLDER_ROLE}


def placeholder_pod_spec(w: WorkloadSettings, priority_class: str) -> dict:
    # A whole agent pod's effective request: a placeholder holds the room of one agent pod.
    requests = unit_requests(w)
    return {
        "priorityClassName": priority_class,
        # Evicted placeholders should leave at once: the agent pod is waiting for the room.
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65535, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "placeholder",
            "image": PAUSE_IMAGE,
            "resources": {"requests": requests, "limits": requests},
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
        }],
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": placeholder_labels()},
        }],
    }


BUFFER_API_VERSION = "autoscaling.x-k8s.io/v1beta1"
BUFFER_NAME = "voice-agent-spare"


def buffer_pod_template(w: WorkloadSettings) -> dict:
    """One buffer unit: an agent pod's requests (the pause pod spec, never run by the buffer)."""
    return {"metadata": {"labels": placeholder_labels()},
            "spec": {k: v for k, v in placeholder_pod_spec(w, "").items() if k != "priorityClassName"}}


def capacity_buffer_spec(w: WorkloadSettings) -> dict:
    return {
        # active capacity: the autoscaler provisions nodes for the simulated placeholders
        "provisioningStrategy": "buffer.x-k8s.io/active-capacity",
        "podTemplateRef": {"name": BUFFER_NAME},
        "replicas": w.spare_capacity_pods,
    }


class SpareCapacity(pulumi.ComponentResource):
    def __init__(self, name: str, args: SpareCapacityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("k8s", "SpareCapacity"), name, None, opts)
        w = args.settings
        child_opts = pulumi.ResourceOptions(parent=self)
        if w.spare_capacity_mode == "capacityBuffer":
            self._buffer(name, w)
            return
        priority = k8s.scheduling.v1.PriorityClass(
            child(name, "priority"),
            metadata={"name": f"{w.namespace}-spare-capacity", "labels": placeholder_labels()},
            value=PLACEHOLDER_PRIORITY,
            global_default=False,
            # Placeholders never push anything out; they are only ever pushed out.
            preemption_policy="Never",
            description="Placeholder pods that keep room for voice agents; preempted first.",
            opts=child_opts,
        )
        k8s.apps.v1.Deployment(
            child(name, "placeholders"),
            metadata={"name": "voice-agent-spare", "namespace": w.namespace, "labels": placeholder_labels()},
            spec={
                "replicas": w.spare_capacity_pods,
                "selector": {"matchLabels": placeholder_labels()},
                "template": {
                    "metadata": {"labels": placeholder_labels()},
                    "spec": placeholder_pod_spec(w, f"{w.namespace}-spare-capacity"),
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[priority]),
        )
        self.register_outputs({"pods": w.spare_capacity_pods})

    def _buffer(self, name: str, w: WorkloadSettings) -> None:
        template = k8s.core.v1.PodTemplate(
            child(name, "template"),
            metadata={"name": BUFFER_NAME, "namespace": w.namespace, "labels": placeholder_labels()},
            template=buffer_pod_template(w),
            opts=pulumi.ResourceOptions(parent=self))
        k8s.apiextensions.CustomResource(
            child(name, "buffer"),
            api_version=BUFFER_API_VERSION,
            kind="CapacityBuffer",
            metadata={"name": BUFFER_NAME, "namespace": w.namespace, "labels": placeholder_labels()},
            spec=capacity_buffer_spec(w),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[template]))
        self.register_outputs({"pods": w.spare_capacity_pods})
