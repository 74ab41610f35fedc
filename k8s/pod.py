"""The agent's pod: container, probes, security context, timing. Pure functions over settings.

Every number here derives from k8s/runtime.py (command, ports, user), domain/sizes.py (resources)
or domain/capacity.py (grace period, extended duration); nothing is typed in twice.
"""

from __future__ import annotations

import json

from collections.abc import Sequence

import pulumi

from domain.settings import WorkloadSettings
from k8s import runtime
from k8s import deletion_cost
from k8s import cloudsql_proxy
from k8s import livekit_files
from domain.capacity import (
    JOB_MEMORY_LIMIT_MI,
    JOB_MEMORY_WARN_MI,
    SAFE_TO_EVICT,
    NODE_BOOT_S,
    WORKER_START_S,
    needs_extended_duration,
    sessions_per_pod,
    termination_grace_seconds,
    workload_resources,
)

APP_NAME = "voice-agent"
LIVEKIT_SECRET = "livekit"
# livekitCredentials=kubernetesSecret: Secret key -> environment variable. URL, key and secret
# travel together so a rotation is one object; key and secret are Pulumi secrets. (The default,
# secretManager, mounts key and secret as files instead: k8s/livekit_files.py.)
LIVEKIT_SECRET_ENV = {"url": "LIVEKIT_URL", "api-key": "LIVEKIT_API_KEY", "api-secret": "LIVEKIT_API_SECRET"}
LIVEKIT_SECRET_KEYS = tuple(LIVEKIT_SECRET_ENV)

# Probes go to the agent's own probe server on the metrics port (agent/voice_agent/readiness.py),
# not to the framework's GET / on the health port: that answers 200 until the worker has given
# up on LiveKit for good (16 retries, ~130 s; livekit-agents 1.8.9 worker.py), so as readiness it
# let a release with a wrong secret replace every healthy pod.
# - /ready: registered with LiveKit and not draining (and the model reachable at start).
# - /live: the worker's event loop answers. Never fails for a LiveKit outage (readiness shows
#   it) nor for a drain, so no liveness restart ever cuts the calls a pod is draining.
PROBE_PORT = runtime.METRICS_PORT_NAME
READY_PATH = runtime.READY_PATH
LIVE_PATH = runtime.LIVE_PATH
PROBE_PERIOD_S = 10
# The probe server listens before the framework starts, so the startup probe only has to cover
# imports on a slow, freshly booted node; 120 s is twenty times the measured 4-6 s start and
# costs nothing when start-up is quick (the probe passes on its first success).
STARTUP_BUDGET_S = 120
# A wedged event loop for a whole minute: far beyond any pause a busy worker shows.
LIVENESS_BUDGET_S = 60
# Readiness is polled faster: a pod that loses LiveKit leaves the available count within 5 s.
READINESS_PERIOD_S = 5
# Readiness now sees registration; a new pod counts as available once it has stayed registered
# for four of the worker's status reports (UPDATE_STATUS_INTERVAL 2.5 s, livekit-agents 1.8.9
# worker.py), i.e. LiveKit has it in rotation, and for two readiness periods.
MIN_READY_SECONDS = 10
# How long a rollout may go without progress before the Deployment reports
# ProgressDeadlineExceeded (Kubernetes never rolls back by itself; maxUnavailable 0 keeps every
# old pod serving meanwhile): a node boot, the startup budget, the model check (20 s,
# agent/voice_agent/model_access.py), registration and minReadySeconds, rounded up.
MODEL_CHECK_BUDGET_S = 20
PROGRESS_DEADLINE_SECONDS = 300
assert PROGRESS_DEADLINE_SECONDS >= NODE_BOOT_S + STARTUP_BUDGET_S + MODEL_CHECK_BUDGET_S + WORKER_START_S + MIN_READY_SECONDS
# Managed Prometheus scrapes the metrics port this often (the PodMonitoring in k8s/workload.py).
METRICS_SCRAPE_INTERVAL_S = 30
# After its drain the agent keeps /metrics up one scrape longer, so the last counters (drain
# finished or timed out) reach Monitoring before the pod is gone (agent/voice_agent/worker.py).
# It fits the grace period's shutdown budget after a finished drain.
METRICS_LINGER_S = METRICS_SCRAPE_INTERVAL_S + 5
# The release on every pod (and, as AGENT_VERSION, on the agent's metrics and log lines).
VERSION_LABEL = "app.kubernetes.io/version"
# A label value: at most 63 characters, alphanumeric at both ends, [-_.A-Za-z0-9] inside.
_LABEL_VALUE_MAX = 63
DIGEST_VERSION_HEX = 12
# Everything the process writes goes to /tmp (forkserver socket, a temp dir per job); a few
# MiB in practice (docs/agent.md). The container's logs count against the same request.
TMP_SIZE_LIMIT = "512Mi"
EPHEMERAL_STORAGE = "1Gi"


# Remote tools (k8s/tool_server.py, agent/voice_agent/tools_mcp.py): one projected token per tool
# server, audience "<name>-mcp", under this directory; the kubelet renews each at 80 % of its
# lifetime (Kubernetes "projected volumes"). The shortest lifetime the API server accepts
# (expirationSeconds >= 600, ServiceAccountTokenProjection API reference): a token copied out of
# a pod is worth ten minutes at most, and nothing once its pod is gone (the tool server asks the
# cluster's TokenReview, tools/places/places_mcp/token_review.py).
TOOL_TOKEN_DIR = "/var/run/secrets/tokens"
TOOL_TOKEN_SECONDS = 600
TOOL_TOKENS_VOLUME = "tool-tokens"


def tool_token_volume(tools: Sequence[str]) -> dict:
    """The agent's identity for each tool server, and nothing else: no key, no secret."""
    from k8s.tool_server import audience

    return {"name": TOOL_TOKENS_VOLUME, "projected": {"defaultMode": 0o440, "sources": [
        {"serviceAccountToken": {"audience": audience(name), "expirationSeconds": TOOL_TOKEN_SECONDS,
                                 "path": f"{name}/token"}} for name in tools]}}


def tool_env(tools: Sequence[str], namespace: str) -> dict[str, str]:
    from k8s.tool_server import service_url

    if not tools:
        return {}
    return {"AGENT_TOOL_SERVERS": ",".join(f"{name}={service_url(name, namespace)}" for name in tools),
            "AGENT_TOOL_TOKEN_DIR": TOOL_TOKEN_DIR}


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


def livekit_env(files: livekit_files.LiveKitFiles | None, livekit_url: str) -> list[dict]:
    if files is not None:
        return livekit_files.env(livekit_url)
    return [{"name": env, "valueFrom": {"secretKeyRef": {"name": LIVEKIT_SECRET, "key": key}}}
            for key, env in LIVEKIT_SECRET_ENV.items()]


def container_env(w: WorkloadSettings, gcp_project: str,
                  database: cloudsql_proxy.CheckpointDatabase | None = None,
                  files: livekit_files.LiveKitFiles | None = None) -> list[dict]:
    """The agent runtime contract's variables (CONTRACT.md); the agent validates them at start."""
    plain = {
        "AGENT_DRAIN_TIMEOUT_SECONDS": str(w.drain_timeout_seconds),
        "AGENT_LOAD_THRESHOLD": str(w.load_threshold),
        "AGENT_HEALTH_PORT": str(runtime.HEALTH_PORT),
        "AGENT_METRICS_PORT": str(runtime.METRICS_PORT),
        "AGENT_LOG_LEVEL": w.log_level,
        "AGENT_GEMINI_MODEL": w.gemini_model,
        "AGENT_VERSION": release_version(w),
        # Explicit dispatch: only rooms that ask for this agent get it (docs/agent.md).
        "AGENT_NAME": w.dispatch.agent_name,
        "AGENT_PERSONA": w.dispatch.persona,
        # the plan's Gemini prices, so session_ended estimates each call's model cost the same way
        **({"AGENT_MODEL_PRICES": json.dumps(dict(w.model_prices), sort_keys=True)} if w.model_prices else {}),
        "AGENT_METRICS_LINGER_SECONDS": str(METRICS_LINGER_S),
        "GOOGLE_CLOUD_PROJECT": gcp_project,
        "GOOGLE_CLOUD_LOCATION": w.vertex_location,
        "GOOGLE_GENAI_USE_VERTEXAI": "true",
        # Read-only root filesystem: caches and temp files go to the writable /tmp volume.
        "HOME": "/tmp",
        **call_env(w),
        **admission_env(w),
    }
    own_pod = deletion_cost.downward_env() if w.pod_deletion_cost else []
    # crash recovery: the DSN of the Auth Proxy sidecar (k8s/cloudsql_proxy.py); none = off
    recovery = (cloudsql_proxy.recovery_env(database, w.recovery_watcher, w.recovery_retention_seconds)
                if database else [])
    return [*livekit_env(files, w.livekit_url), *({"name": k, "value": v} for k, v in plain.items()),
            *own_pod, *recovery]


def admission_env(w: WorkloadSettings) -> dict[str, str]:
    """What the worker counts before it takes a call (agent/voice_agent/admission.py): the
    size's call cap, and the job size at which the framework kills a runaway job (livekit-agents
    1.8.9 measures it in MiB and calls it MB, ipc/supervised_proc.py)."""
    return {
        "AGENT_MAX_CALLS": str(sessions_per_pod(workload_resources(w), w.load_threshold)),
        "AGENT_JOB_MEMORY_LIMIT_MB": str(JOB_MEMORY_LIMIT_MI),
        "AGENT_JOB_MEMORY_WARN_MB": str(JOB_MEMORY_WARN_MI),
    }


def call_env(w: WorkloadSettings) -> dict[str, str]:
    """How a call ends and is rescued (agent/voice_agent/call_life.py, model.py). The call limit
    is the one maxSessionMinutes the drain is sized for, so a call never outlives its drain."""
    c = w.call
    env = {
        "AGENT_MAX_CALL_SECONDS": str(w.max_session_minutes * 60),
        "AGENT_CALL_WARNING_SECONDS": str(c.warning_seconds),
        "AGENT_SILENCE_TIMEOUT_SECONDS": str(c.silence_timeout_seconds),
        "AGENT_GEMINI_CONNECT_RETRIES": str(c.gemini_connect_retries),
        "AGENT_LOG_CONVERSATION_TEXT": "true" if c.log_conversation_text else "false",
        "AGENT_LOG_CALL_IDS": c.log_call_ids,
    }
    if c.gemini_fallback_location:
        env["AGENT_GEMINI_FALLBACK_LOCATION"] = c.gemini_fallback_location
    if c.gemini_fallback_model:
        env["AGENT_GEMINI_FALLBACK_MODEL"] = c.gemini_fallback_model
    if w.agent_voice:  # else the persona's own voice (agent/voice_agent/persona_api.py)
        env["AGENT_VOICE"] = w.agent_voice
    return env


def container_resources(w: WorkloadSettings) -> dict:
    r = workload_resources(w)
    return {
        "requests": {**r.requests(), "ephemeral-storage": EPHEMERAL_STORAGE},
        "limits": {**r.limits(), "ephemeral-storage": EPHEMERAL_STORAGE},
    }


def release_version(w: WorkloadSettings) -> str:
    """The release as a label value: the image tag, or `sha256-` and the digest's first 12 hex
    digits when deploying by digest (a digest has a colon and 71 characters; labels allow
    neither)."""
    if w.image_digest:
        return "sha256-" + w.image_digest.split(":", 1)[-1][:DIGEST_VERSION_HEX]
    tag = w.image_tag
    if len(tag) > _LABEL_VALUE_MAX or not (tag[0].isalnum() and tag[-1].isalnum()):
        raise ValueError(
            f"agentImageTag={tag!r} cannot label the pods: a release label is at most "
            f"{_LABEL_VALUE_MAX} characters and starts and ends with a letter or digit; "
            "use a shorter tag or deploy by agentImageDigest")
    return tag


def _probe(path: str, period_s: int, budget_s: int) -> dict:
    return {
        "httpGet": {"path": path, "port": PROBE_PORT},
        "periodSeconds": period_s,
        "timeoutSeconds": 3,
        "failureThreshold": max(1, budget_s // period_s),
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


def container_spec(w: WorkloadSettings, image: pulumi.Input[str], gcp_project: str, tools: Sequence[str] = (),
                   database: cloudsql_proxy.CheckpointDatabase | None = None,
                   files: livekit_files.LiveKitFiles | None = None) -> dict:
    spec = {
        "name": runtime.CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        # Exec form, so Python is PID 1 and SIGTERM starts the drain (DESIGN 3.3).
        "command": list(runtime.COMMAND),
        "args": list(runtime.ARGS),
        "env": container_env(w, gcp_project, database, files) + [{"name": k, "value": v} for k, v in tool_env(tools, w.namespace).items()],
        "ports": [
            {"name": "health", "containerPort": runtime.HEALTH_PORT, "protocol": "TCP"},
            {"name": runtime.METRICS_PORT_NAME, "containerPort": runtime.METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": container_resources(w),
        "startupProbe": _probe(LIVE_PATH, PROBE_PERIOD_S, STARTUP_BUDGET_S),
        # Not a way out of a lost LiveKit connection: once the worker's run has ended (it gave
        # up on LiveKit), livekit-agents 1.8.9 (cli/cli.py) drains by itself and its handler
        # force-exits on SIGTERM, so a liveness restart then would cut calls, not drain them.
        # The worker exits by itself in that case; /live fails only for a wedged event loop.
        "livenessProbe": _probe(LIVE_PATH, PROBE_PERIOD_S, LIVENESS_BUDGET_S),
        # one failed answer takes the pod out: "not registered" and "draining" are facts, not noise
        "readinessProbe": _probe(READY_PATH, READINESS_PERIOD_S, READINESS_PERIOD_S),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                         *(deletion_cost.token_mounts() if w.pod_deletion_cost else []),
                         *([{"name": TOOL_TOKENS_VOLUME, "mountPath": TOOL_TOKEN_DIR, "readOnly": True}] if tools else []),
                         *([livekit_files.mount()] if files else [])],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    # No preStop hook: the worker drains on SIGTERM, and a sleep before it would only keep the
    # worker taking new calls while its grace period runs down (DESIGN 3.2).
    return spec


def grace_seconds(w: WorkloadSettings) -> int:
    return termination_grace_seconds(w.drain_timeout_seconds)


def pod_annotations(w: WorkloadSettings, files: livekit_files.LiveKitFiles | None = None) -> dict:
    # controller.kubernetes.io/pod-deletion-cost is not set here: a static value changes
    # nothing. With podDeletionCost the worker keeps it on its own pod (k8s/deletion_cost.py).
    annotations: dict = {}
    if needs_extended_duration(w.max_session_minutes, grace_seconds(w)):
        # Autopilot extended-duration Pods: neither the autoscaler nor auto-upgrades evict them
        # for up to 7 days, instead of at most 10 minutes of grace on scale-down.
        annotations[SAFE_TO_EVICT] = "false"
    if files is not None:
        annotations[livekit_files.REVISION_ANNOTATION] = files.revision
    return annotations


def _spread(topology_key: str) -> dict:
    return {
        "maxSkew": 1,
        "topologyKey": topology_key,
        # Best effort: a zone short of capacity must not leave callers waiting for a pod.
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": labels()},
    }


def pod_spec(w: WorkloadSettings, image: pulumi.Input[str], gcp_project: str, tools: Sequence[str] = (),
             database: cloudsql_proxy.CheckpointDatabase | None = None,
             files: livekit_files.LiveKitFiles | None = None) -> dict:
    return {
        "serviceAccountName": runtime.AGENT_SERVICE_ACCOUNT,
        # No automounted token: GKE's metadata server issues the Workload Identity token without
        # it. With podDeletionCost the one Kubernetes API call (a PATCH of the pod's own deletion
        # cost) uses a short-lived projected token instead (k8s/deletion_cost.py).
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
        # The Auth Proxy as a native sidecar: up before the agent, down after its drain.
        **({"initContainers": [cloudsql_proxy.sidecar(database, w.cpu_bursting)]} if database else {}),
        "containers": [container_spec(w, image, gcp_project, tools, database, files)],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}},
                    *(deletion_cost.token_volumes() if w.pod_deletion_cost else []),
                    *([tool_token_volume(tools)] if tools else []),
                    *([livekit_files.volume()] if files else [])],
        # Zones first (a zone outage), then nodes (a node upgrade drains one node at a time).
        "topologySpreadConstraints": [_spread("topology.kubernetes.io/zone"), _spread("kubernetes.io/hostname")],
    }


def deployment_spec(w: WorkloadSettings, image: pulumi.Input[str], gcp_project: str, tools: Sequence[str] = (),
                    database: cloudsql_proxy.CheckpointDatabase | None = None,
                    files: livekit_files.LiveKitFiles | None = None) -> dict:
    """`files`: the LiveKit credentials as files from Secret Manager; None: from the `livekit`
    Kubernetes Secret (livekitCredentials=kubernetesSecret)."""
    # No `replicas`: the HPA owns the count (and the component ignores changes to it).
    return {
        "selector": {"matchLabels": labels()},
        # New pods first, old ones after: capacity never dips during a rollout. An old pod is
        # terminated (SIGTERM: it stops taking calls and drains in the background) only once a
        # new one is ready, i.e. registered with LiveKit. A release that never registers (wrong
        # secret or URL, no model access) therefore stalls the rollout with every old pod
        # still serving: maxUnavailable must stay 0.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "minReadySeconds": MIN_READY_SECONDS,
        "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
        "revisionHistoryLimit": 5,
        "template": {
            "metadata": {"labels": {**pod_labels(), VERSION_LABEL: release_version(w)},
                         "annotations": pod_annotations(w, files)},
            "spec": pod_spec(w, image, gcp_project, tools, database, files),
        },
    }
