"""The agent's pod: container, probes, security context, timing. Pure functions over settings.

Every number here derives from k8s/runtime.py (command, ports, user), k8s/sizes.py (resources)
or k8s/capacity.py (grace period, extended duration); nothing is typed in twice.
"""

from __future__ import annotations

import pulumi

from infra.settings import WorkloadSettings
from k8s import runtime
from k8s.capacity import (
    SAFE_TO_EVICT,
    WORKER_START_S,
    needs_extended_duration,
    termination_grace_seconds,
    workload_resources,
)

APP_NAME = "voice-agent"
LIVEKIT_SECRET = "livekit"
# Secret key -> environment variable. URL, key and secret travel together so a rotation is one
# object; key and secret are Pulumi secrets.
LIVEKIT_SECRET_ENV = {"url": "LIVEKIT_URL", "api-key": "LIVEKIT_API_KEY", "api-secret": "LIVEKIT_API_SECRET"}
LIVEKIT_SECRET_KEYS = tuple(LIVEKIT_SECRET_ENV)

PROBE_PERIOD_S = 10
# The framework's health server answers as soon as it listens, before the job processes are
# prewarmed (Silero VAD loaded) and before the worker registers (livekit-agents worker.py: GET /
# is 200 unless the LiveKit connection failed for good). So the startup probe only has to cover
# imports on a slow, freshly booted node; 120 s is twenty times the measured 4-6 s start and
# costs nothing when start-up is quick (the probe passes on its first success).
STARTUP_BUDGET_S = 120
# Readiness cannot see registration either, so a new pod counts as available only after it has
# been ready for twice the measured time to register: a rollout then never stops an old worker
# (which stops taking calls at once) before its replacement takes calls.
MIN_READY_SECONDS = 2 * WORKER_START_S
# Everything the process writes goes to /tmp (forkserver socket, a temp dir per job); a few
# MiB in practice (docs/agent.md). The container's logs count against the same request.
TMP_SIZE_LIMIT = "512Mi"
EPHEMERAL_STORAGE = "1Gi"


def labels() -> dict[str, str]:
    """Selector labels. A Deployment's selector is immutable: never add to these."""
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/part-of": "gke-voice-agents"}


def pod_labels() -> dict[str, str]:
    """The pod template's labels: the selector's, plus the role by which the policy rules tell
    an agent pod from any other Deployment (a placeholder, a tool server, someone's redis)."""
    return {**labels(), runtime.ROLE_LABEL: runtime.AGENT_ROLE}


def livekit_secret_data(w: WorkloadSettings, api_key: pulumi.Input[str], api_secret: pulumi.Input[str]) -> dict:
    values = {"url": w.livekit_url, "api-key": api_key, "api-secret": api_secret}
    return {k: values[k] for k in LIVEKIT_SECRET_KEYS}


def container_env(w: WorkloadSettings, gcp_project: str) -> list[dict]:
    """The agent runtime contract's variables (CONTRACT.md); the agent validates them at start."""
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
    from_secret = [{"name": env, "valueFrom": {"secretKeyRef": {"name": LIVEKIT_SECRET, "key": key}}}
                   for key, env in LIVEKIT_SECRET_ENV.items()]
    return [*from_secret, *({"name": k, "value": v} for k, v in plain.items())]


def container_resources(w: WorkloadSettings) -> dict:
    r = workload_resources(w)
    return {
        "requests": {**r.requests(), "ephemeral-storage": EPHEMERAL_STORAGE},
        "limits": {**r.limits(), "ephemeral-storage": EPHEMERAL_STORAGE},
    }


def _probe(failure_threshold: int) -> dict:
    return {
        "httpGet": {"path": "/", "port": "health"},
        "periodSeconds": PROBE_PERIOD_S,
        "timeoutSeconds": 3,
        "failureThreshold": failure_threshold,
    }


def container_security_context() -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": runtime.RUN_AS_UID,
        "runAsGroup": runtime.RUN_AS_GID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_spec(w: WorkloadSettings, image: pulumi.Input[str], gcp_project: str) -> dict:
    spec = {
        "name": runtime.CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        # Exec form, so Python is PID 1 and SIGTERM starts the drain (DESIGN 3.3).
        "command": list(runtime.COMMAND),
        "args": list(runtime.ARGS),
        "env": container_env(w, gcp_project),
        "ports": [
            {"name": "health", "containerPort": runtime.HEALTH_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": runtime.METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": container_resources(w),
        "startupProbe": _probe(STARTUP_BUDGET_S // PROBE_PERIOD_S),
        # GET / turns 503 once the worker has given up on LiveKit; the restart that follows is
        # a SIGTERM too, so running calls are drained, not cut.
        "livenessProbe": _probe(3),
        "readinessProbe": _probe(2),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    # No preStop hook: the worker drains on SIGTERM, and a sleep before it would only keep the
    # worker taking new calls while its grace period runs down (DESIGN 3.2).
    return spec


def grace_seconds(w: WorkloadSettings) -> int:
    return termination_grace_seconds(w.drain_timeout_seconds)


def pod_annotations(w: WorkloadSettings) -> dict[str, str]:
    # controller.kubernetes.io/pod-deletion-cost is deliberately not set here: a static value
    # changes nothing, and a live one (kept near the pod's active calls, so the HPA removes idle
    # pods first) needs the worker to patch its own pod, i.e. an API token and RBAC in every
    # agent pod. docs/workload.md explains the trade-off.
    if needs_extended_duration(w.max_session_minutes, grace_seconds(w)):
        # Autopilot extended-duration Pods: neither the autoscaler nor auto-upgrades evict them
        # for up to 7 days, instead of at most 10 minutes of grace on scale-down.
        return {SAFE_TO_EVICT: "false"}
    return {}


def _spread(topology_key: str) -> dict:
    return {
        "maxSkew": 1,
        "topologyKey": topology_key,
        # Best effort: a zone short of capacity must not leave callers waiting for a pod.
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": labels()},
    }


def pod_spec(w: WorkloadSettings, image: pulumi.Input[str], gcp_project: str) -> dict:
    return {
        "serviceAccountName": runtime.AGENT_SERVICE_ACCOUNT,
        # The agent never calls the Kubernetes API; GKE's metadata server issues the Workload
        # Identity token without the pod's own service-account token.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": grace_seconds(w),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": runtime.RUN_AS_UID,
            "runAsGroup": runtime.RUN_AS_GID,
            "fsGroup": runtime.RUN_AS_GID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container_spec(w, image, gcp_project)],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}}],
        # Zones first (a zone outage), then nodes (a node upgrade drains one node at a time).
        "topologySpreadConstraints": [_spread("topology.kubernetes.io/zone"), _spread("kubernetes.io/hostname")],
    }


def deployment_spec(w: WorkloadSettings, image: pulumi.Input[str], gcp_project: str) -> dict:
    # No `replicas`: the HPA owns the count (and the component ignores changes to it).
    return {
        "selector": {"matchLabels": labels()},
        # New pods first, old ones after: capacity never dips during a rollout. Old pods stop
        # taking calls at SIGTERM and drain in the background without holding the rollout up.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "minReadySeconds": MIN_READY_SECONDS,
        "revisionHistoryLimit": 5,
        "template": {
            "metadata": {"labels": pod_labels(), "annotations": pod_annotations(w)},
            "spec": pod_spec(w, image, gcp_project),
        },
    }
