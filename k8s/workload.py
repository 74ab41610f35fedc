"""AgentWorkload: the voice agent on the cluster, with termination that keeps calls alive."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.config import WorkloadSettings
from infra.names import child, type_token
from k8s import runtime
from k8s.capacity import needs_extended_duration, termination_grace_seconds
from k8s.sizes import SIZES

APP_LABEL = "voice-agent"
# The worker loads Silero VAD in prewarm before it registers; allow a slow node two minutes.
STARTUP_BUDGET_S = 120
PROBE_PERIOD_S = 10


@dataclass(frozen=True)
class AgentWorkloadArgs:
    settings: WorkloadSettings
    image: pulumi.Input[str]
    gcp_project: str
    livekit_api_key: pulumi.Input[str]
    livekit_api_secret: pulumi.Input[str]


def image_reference(registry_url: pulumi.Input[str], w: WorkloadSettings) -> pulumi.Output[str]:
    """A digest pins the exact build CI tested; a tag is the fallback (immutable in the registry)."""
    suffix = f"@{w.image_digest}" if w.image_digest else f":{w.image_tag}"
    return pulumi.Output.concat(registry_url, "/", w.image_name, suffix)


def labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": APP_LABEL, "app.kubernetes.io/part-of": "gke-voice-agents"}


class AgentWorkload(pulumi.ComponentResource):
    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: AgentWorkloadArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("k8s", "AgentWorkload"), name, None, opts)
        w = args.settings
        child_opts = pulumi.ResourceOptions(parent=self)
        ns = k8s.core.v1.Namespace(child(name, "namespace"), metadata={"name": w.namespace, "labels": labels()}, opts=child_opts)
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        k8s.core.v1.ServiceAccount(
            child(name, "ksa"),
            metadata={"name": runtime.AGENT_SERVICE_ACCOUNT, "namespace": w.namespace, "labels": labels()},
            automount_service_account_token=False,
            opts=in_ns,
        )
        k8s.core.v1.Secret(
            child(name, "livekit"),
            metadata={"name": LIVEKIT_SECRET, "namespace": w.namespace, "labels": labels()},
            type="Opaque",
            string_data=dict(zip(LIVEKIT_SECRET_KEYS, (w.livekit_url, args.livekit_api_key, args.livekit_api_secret))),
            opts=in_ns,
        )
        deployment = k8s.apps.v1.Deployment(
            child(name, "deployment"),
            metadata={"name": APP_LABEL, "namespace": w.namespace, "labels": labels()},
            spec=deployment_spec(args),
            # The HPA owns the replica count; Pulumi must not reset it on every update.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns], ignore_changes=["spec.replicas"]),
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            child(name, "hpa"),
            metadata={"name": APP_LABEL, "namespace": w.namespace, "labels": labels()},
            spec=hpa_spec(w),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]),
        )
        k8s.policy.v1.PodDisruptionBudget(
            child(name, "pdb"),
            metadata={"name": APP_LABEL, "namespace": w.namespace, "labels": labels()},
            # Voluntary disruptions (node drains for upgrades) take one pod at a time, so the
            # others keep taking new calls while it drains.
            spec={"maxUnavailable": 1, "selector": {"matchLabels": labels()}},
            opts=in_ns,
        )
        k8s.apiextensions.CustomResource(
            child(name, "podmonitoring"),
            api_version="monitoring.googleapis.com/v1",
            kind="PodMonitoring",
            metadata={"name": APP_LABEL, "namespace": w.namespace, "labels": labels()},
            spec={
                "selector": {"matchLabels": labels()},
                "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}],
            },
            opts=in_ns,
        )
        k8s.networking.v1.NetworkPolicy(
            child(name, "egress"),
            metadata={"name": APP_LABEL, "namespace": w.namespace, "labels": labels()},
            spec=network_policy_spec(),
            opts=in_ns,
        )
        self.namespace = ns.metadata.apply(lambda m: m["name"] if isinstance(m, dict) else m.name)
        self.register_outputs({"namespace": self.namespace})


LIVEKIT_SECRET = "livekit"
LIVEKIT_SECRET_KEYS = ("url", "api-key", "api-secret")


def _secret_env(name: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": LIVEKIT_SECRET, "key": key}}}


def container_env(w: WorkloadSettings, gcp_project: str) -> list[dict]:
    plain = {
        "AGENT_DRAIN_TIMEOUT_SECONDS": str(w.drain_timeout_seconds),
        "AGENT_LOAD_THRESHOLD": str(w.load_threshold),
        "AGENT_HEALTH_PORT": str(runtime.HEALTH_PORT),
        "AGENT_METRICS_PORT": str(runtime.METRICS_PORT),
        "AGENT_LOG_LEVEL": w.log_level,
        "AGENT_GEMINI_MODEL": w.gemini_model,
        "GOOGLE_CLOUD_PROJECT": gcp_project,
        "GOOGLE_CLOUD_LOCATION": w.vertex_location,
        "GOOGLE_GENAI_USE_VERTEXAI": "true",
        # Read-only root filesystem: caches and temp files go to the writable /tmp volume.
        "HOME": "/tmp",
    }
    return [
        _secret_env("LIVEKIT_URL", "url"),
        _secret_env("LIVEKIT_API_KEY", "api-key"),
        _secret_env("LIVEKIT_API_SECRET", "api-secret"),
        *({"name": k, "value": v} for k, v in plain.items()),
    ]


def container_resources(w: WorkloadSettings) -> dict:
    size = SIZES[w.size]
    cpu_limit, memory_limit = size.limits(w.cpu_bursting)
    return {
        "requests": {"cpu": f"{size.cpu_m}m", "memory": f"{size.memory_mi}Mi", "ephemeral-storage": "1Gi"},
        "limits": {"cpu": f"{cpu_limit}m", "memory": f"{memory_limit}Mi", "ephemeral-storage": "1Gi"},
    }


def _probe(path: str, failure_threshold: int) -> dict:
    return {
        "httpGet": {"path": path, "port": "health"},
        "periodSeconds": PROBE_PERIOD_S,
        "timeoutSeconds": 3,
        "failureThreshold": failure_threshold,
    }


def container_spec(args: AgentWorkloadArgs) -> dict:
    w = args.settings
    spec = {
        "name": runtime.CONTAINER_NAME,
        "image": args.image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(runtime.COMMAND),
        "args": list(runtime.ARGS),
        "env": container_env(w, args.gcp_project),
        "ports": [
            {"name": "health", "containerPort": runtime.HEALTH_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": runtime.METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": container_resources(w),
        "startupProbe": _probe("/", STARTUP_BUDGET_S // PROBE_PERIOD_S),
        "livenessProbe": _probe("/", 3),
        # Readiness gates nothing (no Service routes to agents; LiveKit dispatches jobs), but it
        # makes a rollout wait for a registered worker before the next old pod goes.
        "readinessProbe": _probe("/worker", 1),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": runtime.RUN_AS_UID,
            "runAsGroup": runtime.RUN_AS_GID,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if w.pre_stop_seconds:
        # Only when asked for: a sleep here delays SIGTERM, and the worker keeps taking new
        # calls until SIGTERM arrives (DESIGN 3.2).
        spec["lifecycle"] = {"preStop": {"sleep": {"seconds": w.pre_stop_seconds}}}
    return spec


def pod_annotations(w: WorkloadSettings) -> dict[str, str]:
    grace = termination_grace_seconds(w.pre_stop_seconds, w.drain_timeout_seconds)
    if needs_extended_duration(w.max_session_minutes, grace):
        # Autopilot extended-duration Pods: the autoscaler leaves them alone for up to 7 days
        # instead of evicting with at most 10 minutes of grace.
        return {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    return {}


def deployment_spec(args: AgentWorkloadArgs) -> dict:
    w = args.settings
    return {
        "selector": {"matchLabels": labels()},
        # Rollouts add a new pod before an old one drains, so capacity never dips.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "revisionHistoryLimit": 5,
        "template": {
            "metadata": {"labels": labels(), "annotations": pod_annotations(w)},
            "spec": {
                "serviceAccountName": runtime.AGENT_SERVICE_ACCOUNT,
                "terminationGracePeriodSeconds": termination_grace_seconds(w.pre_stop_seconds, w.drain_timeout_seconds),
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": runtime.RUN_AS_UID,
                    "runAsGroup": runtime.RUN_AS_GID,
                    "fsGroup": runtime.RUN_AS_GID,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [container_spec(args)],
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}}],
                "topologySpreadConstraints": [{
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": labels()},
                }],
            },
        },
    }


def hpa_spec(w: WorkloadSettings) -> dict:
    h = w.hpa
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP_LABEL},
        "minReplicas": h.min_replicas,
        "maxReplicas": h.max_replicas,
        "metrics": [{
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": h.target_cpu_utilization}},
        }],
        "behavior": {
            # Up fast: a new Autopilot node needs 80-120 s to boot, so waiting longer than a
            # short window only adds to what a caller waits for. Up to 4 pods or 100% a minute.
            "scaleUp": {
                "stabilizationWindowSeconds": h.scale_up_window_seconds,
                "selectPolicy": "Max",
                "policies": [
                    {"type": "Pods", "value": 4, "periodSeconds": 60},
                    {"type": "Percent", "value": 100, "periodSeconds": 60},
                ],
            },
            # Down slowly: every removed pod drains live calls for up to the drain timeout, and
            # the HPA picks victims without looking at sessions.
            "scaleDown": {
                "stabilizationWindowSeconds": h.scale_down_window_seconds,
                "selectPolicy": "Min",
                "policies": [{"type": "Pods", "value": h.scale_down_pods_per_period, "periodSeconds": h.scale_down_period_seconds}],
            },
        },
    }


def network_policy_spec() -> dict:
    """Egress only: nothing connects to an agent except the metrics scraper; the agent dials
    out to DNS, the metadata server (Workload Identity tokens), HTTPS (Vertex AI, LiveKit) and
    WebRTC media over UDP."""
    return {
        "podSelector": {"matchLabels": labels()},
        "policyTypes": ["Egress"],
        "egress": [
            {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
            {"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}], "ports": [{"protocol": "TCP", "port": 80}, {"protocol": "TCP", "port": 988}]},
            {"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 7880}, {"protocol": "TCP", "port": 7881}]},
            {"ports": [{"protocol": "UDP", "port": 1024, "endPort": 65535}]},
        ],
    }
