"""AgentWorkload: the voice agent on the cluster, with termination that keeps calls alive.

The specs come from small pure modules (k8s/pod.py, k8s/scaling.py, k8s/egress.py); this file
only declares the objects, in dependency order, as children of the component.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from domain.settings import WorkloadSettings
from infra.names import child, type_token
from k8s import runtime
from k8s.runtime import LIVEKIT_SECRET_PROVIDER_CLASS
from k8s.deletion_cost_access import DeletionCostAccess, DeletionCostAccessArgs
from k8s.cloudsql_proxy import CheckpointDatabase
from k8s.egress import network_policy_spec
from k8s.livekit_files import LiveKitFiles, secret_provider_class_spec
from k8s.pod import (
    APP_NAME,
    LIVEKIT_SECRET,
    METRICS_SCRAPE_INTERVAL_S,
    deployment_spec,
    labels,
    livekit_secret_data,
)
from k8s.scaling import hpa_spec


@dataclass(frozen=True)
class AgentWorkloadArgs:
    settings: WorkloadSettings
    image: pulumi.Input[str]
    gcp_project: str
    # livekitCredentials=secretManager: the Secret Manager secrets the pod mounts as files
    # (k8s/livekit_secrets.py); the stack's values never reach the cluster.
    livekit_files: LiveKitFiles | None = None
    # livekitCredentials=kubernetesSecret: the values, for the `livekit` Kubernetes Secret.
    livekit_api_key: pulumi.Input[str] | None = field(default=None, repr=False)
    livekit_api_secret: pulumi.Input[str] | None = field(default=None, repr=False)
    # Crash recovery's database (infra/database.py): the Auth Proxy sidecar, the agent's DSN and
    # one egress rule. None: recovery off.
    database: CheckpointDatabase | None = None
    # Tool servers the agent calls over MCP (k8s/tool_server.py): each gets an audience-bound
    # token in the pod, an MCP URL in AGENT_TOOL_SERVERS and one egress rule.
    tools: tuple[str, ...] = ()


def image_reference(registry_url: pulumi.Input[str], w: WorkloadSettings) -> pulumi.Output[str]:
    """A digest pins the exact build CI tested; a tag is the fallback (immutable in the registry).
    An outside repository (agentImageRepository) is always by digest (domain/config.py)."""
    suffix = f"@{w.image_digest}" if w.image_digest else f":{w.image_tag}"
    if w.image_repository:
        return pulumi.Output.from_input(f"{w.image_repository}{suffix}")
    return pulumi.Output.concat(registry_url, "/", w.image_name, suffix)


def outside_agent_image(w: WorkloadSettings) -> tuple[str, ...]:
    """The agent's exact reference when it comes from another registry (infra/binauthz.py admits
    exactly it), else nothing: the stack's own registry is admitted by the policy itself."""
    return (f"{w.image_repository}@{w.image_digest}",) if w.image_repository and w.image_digest else ()


def _metadata(w: WorkloadSettings, name: str = APP_NAME) -> dict:
    return {"name": name, "namespace": w.namespace, "labels": labels()}


class AgentWorkload(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    deployment_name: pulumi.Output[str]

    def __init__(self, name: str, args: AgentWorkloadArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("k8s", "AgentWorkload"), name, None, opts)
        w = args.settings
        ns = k8s.core.v1.Namespace(
            child(name, "namespace"), metadata={"name": w.namespace, "labels": labels()},
            opts=pulumi.ResourceOptions(parent=self))
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        ksa = k8s.core.v1.ServiceAccount(
            child(name, "ksa"),
            # The name infra/identity.py binds to Vertex AI through Workload Identity.
            metadata=_metadata(w, runtime.AGENT_SERVICE_ACCOUNT),
            automount_service_account_token=False,
            opts=in_ns)
        credentials = self._livekit_credentials(name, args, in_ns)
        if w.pod_deletion_cost:
            # the worker patches its own pod's deletion cost (idle pods go first on scale-down)
            DeletionCostAccess(child(name, "deletion-cost"), DeletionCostAccessArgs(w), opts=in_ns)
        deployment = k8s.apps.v1.Deployment(
            child(name, "deployment"),
            metadata=_metadata(w),
            spec=deployment_spec(w, args.image, args.gcp_project, args.tools, database=args.database,
                                 files=args.livekit_files),
            # The HPA owns the replica count; Pulumi must not reset it on every update.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns, ksa, credentials],
                                        ignore_changes=["spec.replicas"]))
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            child(name, "hpa"), metadata=_metadata(w), spec=hpa_spec(w),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]))
        k8s.policy.v1.PodDisruptionBudget(
            child(name, "pdb"),
            metadata=_metadata(w),
            spec={
                # Node drains (upgrades, repairs) take one pod at a time, so the rest keep taking
                # calls while it drains.
                "maxUnavailable": 1,
                # A pod that is not ready (crash loop, lost LiveKit) must not hold a node
                # upgrade hostage; evicting it still sends SIGTERM, so its calls drain.
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
                "selector": {"matchLabels": labels()},
            },
            opts=in_ns)
        k8s.apiextensions.CustomResource(
            child(name, "podmonitoring"),
            api_version="monitoring.googleapis.com/v1",
            kind="PodMonitoring",
            metadata=_metadata(w),
            spec={
                "selector": {"matchLabels": labels()},
                # The container port named "metrics" (runtime.METRICS_PORT).
                "endpoints": [{"port": "metrics", "path": "/metrics", "interval": f"{METRICS_SCRAPE_INTERVAL_S}s"}],
            },
            # GKE registers the PodMonitoring CRD some time after a new cluster reports ready,
            # and pulumi-kubernetes retries a create of an unknown kind only 5 times with
            # doubling back-off (about 30 s; provider await.go, Creation). Created after the
            # Deployment, whose create waits for ready pods (on a new Autopilot cluster: a
            # first node boot of 80-120 s, then start-up), the CRD has had minutes instead.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns, deployment]))
        k8s.networking.v1.NetworkPolicy(
            child(name, "egress"), metadata=_metadata(w),
            spec=network_policy_spec(args.database.private_range_cidr if args.database else None,
                                     reach_tools=bool(args.tools)), opts=in_ns)

        self.namespace = ns.metadata.apply(_name_of)
        self.deployment_name = deployment.metadata.apply(_name_of)
        self.register_outputs({"namespace": self.namespace, "deploymentName": self.deployment_name})


    def _livekit_credentials(self, name: str, args: AgentWorkloadArgs,
                             in_ns: pulumi.ResourceOptions) -> pulumi.CustomResource:
        """What the pods read their LiveKit credentials from; created before the Deployment, whose
        pods cannot start without it."""
        w = args.settings
        if (w.livekit_credentials == "secretManager") != (args.livekit_files is not None):
            raise ValueError(f"livekitCredentials={w.livekit_credentials} needs livekit_files "
                             f"{'set' if args.livekit_files is None else 'unset'} (__main__.py wires them)")
        if args.livekit_files is not None:
            # The add-on registers this CRD with the cluster. Should a brand-new cluster not have
            # it yet, the provider's retries (about 30 s) end this `up` here, before any pod
            # exists, and the next `up` carries on (README, "Going to `pulumi up`", step 8).
            return k8s.apiextensions.CustomResource(
                child(name, "livekit-files"),
                api_version="secrets-store.csi.x-k8s.io/v1", kind="SecretProviderClass",
                metadata=_metadata(w, LIVEKIT_SECRET_PROVIDER_CLASS),
                spec=secret_provider_class_spec(args.livekit_files), opts=in_ns)
        return k8s.core.v1.Secret(
            child(name, "livekit"),
            metadata=_metadata(w, LIVEKIT_SECRET),
            type="Opaque",
            string_data=livekit_secret_data(w, pulumi.Output.secret(args.livekit_api_key),
                                            pulumi.Output.secret(args.livekit_api_secret)),
            opts=in_ns)


def _name_of(metadata) -> str:
    return metadata["name"] if isinstance(metadata, dict) else metadata.name
