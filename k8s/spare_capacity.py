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
against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from domain.settings import WorkloadSettings
from infra.names import child, type_token
from k8s import runtime
from domain.capacity import workload_resources

# Below every real workload (the default priority is 0) so any pod may preempt a placeholder.
PLACEHOLDER_PRIORITY = -10
# The pause image does nothing and needs nothing writable.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


@dataclass(frozen=True)
class SpareCapacityArgs:
    settings: WorkloadSettings


def placeholder_labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": "voice-agent-spare", runtime.ROLE_LABEL: runtime.PLACEHOLDER_ROLE}


def placeholder_pod_spec(w: WorkloadSettings, priority_class: str) -> dict:
    # The agent pod's requests exactly: a placeholder holds the room of one agent pod.
    requests = workload_resources(w).requests()
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
