"""The Cloud SQL Auth Proxy beside the agent: the only way a checkpoint reaches the database.

A native sidecar (an init container with `restartPolicy: Always`, Kubernetes 1.29+; GKE
Autopilot runs them): it starts, and passes its startup probe, before the agent container
starts, and the kubelet stops it only after the agent has exited, so a draining agent keeps its
database to the end. The agent talks plain PostgreSQL to 127.0.0.1:5432; the proxy dials the
instance's private IP on TCP 3307 with an ephemeral client certificate and logs in as the
database service account it impersonates (infra/database.py says why not the Python Connector
and why a service account). Pure functions over settings; k8s/pod.py and k8s/egress.py use them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import quote

import pulumi

from domain.sizes import CPU_STEP_M, MIN_CPU_M_BURST, MIN_GIB_PER_VCPU, MIN_MEM_MI_BURST

# Pinned by tag only: no registry is reachable from where this is written, so no digest could
# be verified here (docs/recovery.md). Binary Authorization admits exactly this reference.
IMAGE = "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.2"
CONTAINER_NAME = "cloud-sql-proxy"
LOOPBACK = "127.0.0.1"
PORT = 5432  # PostgreSQL's own port, on loopback only: nothing outside the pod reaches it
HEALTH_PORT = 9801
HEALTH_PORT_NAME = "sqlproxy-health"
# Cloud SQL's server-side connector port: the proxy's only destination besides Google APIs
# (Cloud SQL docs, "About the Cloud SQL Auth Proxy": outbound TCP 3307).
CONNECTOR_PORT = 3307
# /startup answers 200 once the proxy has its first certificate and listens (Auth Proxy v2
# --health-check). A minute of retries covers the first token exchange on a cold node; the
# agent container does not start before this passes.
STARTUP_PERIOD_S = 2
STARTUP_BUDGET_S = 60
# The proxy holds a handful of connections (one per live call, one per watcher) and uses a few
# MiB and millicores. Its requests are the smallest that keep the *pod's* total valid on
# Autopilot (sidecar requests count toward the pod): without bursting CPU goes in 250m steps,
# so the sidecar takes one step and the agent's size stays a multiple; with bursting the pod
# minimum of 50m applies. Memory: 1 GiB per vCPU of that (Autopilot's lowest ratio), at least
# 64 MiB. tests/k8s/test_cloudsql_proxy.py checks every size in both modes.
MIN_MEMORY_MI = 64
EPHEMERAL_STORAGE = "64Mi"  # logs only; without a request Autopilot would set 1 GiB


@dataclass(frozen=True)
class CheckpointDatabase:
    """What the agent's pod needs of AgentDatabase (infra/database.py)."""

    connection_name: pulumi.Input[str]
    service_account_email: pulumi.Input[str]
    user: pulumi.Input[str]  # the IAM database user: the service account's email without .gserviceaccount.com
    database: pulumi.Input[str]
    private_range_cidr: str  # where the instance's private IP lives: the egress rule's only 3307 target
    kms_key: pulumi.Input[str]  # CheckpointKey.key_id (infra/checkpoint_key.py): seals every checkpoint


def requests(bursting: bool) -> tuple[int, int]:
    """(CPU millicores, memory MiB) of the sidecar, requests = limits."""
    cpu = MIN_CPU_M_BURST if bursting else CPU_STEP_M
    return cpu, max(MIN_MEMORY_MI, MIN_MEM_MI_BURST, math.ceil(cpu / 1000 * MIN_GIB_PER_VCPU * 1024))


def sidecar_resources(bursting: bool) -> dict:
    """Requests = limits of the sidecar; k8s/spare_capacity.py counts them in the agent pod."""
    cpu, mem = requests(bursting)
    amounts = {"cpu": f"{cpu}m", "memory": f"{mem}Mi", "ephemeral-storage": EPHEMERAL_STORAGE}
    return {"requests": amounts, "limits": dict(amounts)}


def proxy_args(db: CheckpointDatabase) -> list:
    return [
        "--private-ip",
        "--auto-iam-authn",
        pulumi.Output.concat("--impersonate-service-account=", db.service_account_email),
        f"--address={LOOPBACK}",
        f"--port={PORT}",
        "--structured-logs",
        "--health-check",
        f"--http-port={HEALTH_PORT}",
        # The health server listens on localhost by default; the kubelet probes the pod's IP.
        "--http-address=0.0.0.0",
        db.connection_name,
    ]


def security_context() -> dict:
    # The pod's securityContext sets the non-root user; the distroless proxy needs no file.
    return {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def sidecar(db: CheckpointDatabase, bursting: bool) -> dict:
    """The init container that runs for the pod's whole life (native sidecar)."""
    return {
        "name": CONTAINER_NAME,
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "restartPolicy": "Always",
        "args": proxy_args(db),
        "ports": [{"name": HEALTH_PORT_NAME, "containerPort": HEALTH_PORT, "protocol": "TCP"}],
        "resources": sidecar_resources(bursting),
        "startupProbe": {
            "httpGet": {"path": "/startup", "port": HEALTH_PORT_NAME},
            "periodSeconds": STARTUP_PERIOD_S,
            "timeoutSeconds": 1,
            "failureThreshold": STARTUP_BUDGET_S // STARTUP_PERIOD_S,
        },
        "securityContext": security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def checkpoint_dsn(user: pulumi.Input[str], database: pulumi.Input[str]) -> pulumi.Output[str]:
    """AGENT_CHECKPOINT_DSN: the sidecar on loopback, the IAM user without a password (the proxy
    logs in with --auto-iam-authn). The `@` inside the IAM user name is written %40."""
    return pulumi.Output.all(user, database).apply(
        lambda v: f"postgresql://{quote(v[0], safe='')}@{LOOPBACK}:{PORT}/{v[1]}")


def recovery_env(db: CheckpointDatabase, watcher: bool, retention_seconds: int) -> list[dict]:
    """The agent's recovery variables; the lease, poll, claim, handle and timeout figures keep
    the agent's own defaults (agent/voice_agent/recovery, docs/recovery.md); how long a dead
    call's row lives is the stack's (recoveryRetentionSeconds). The KMS key is always named: a
    deployed stack never stores a conversation in the clear (the agent refuses to start with a
    database and no key)."""
    return [
        {"name": "AGENT_CHECKPOINT_DSN", "value": checkpoint_dsn(db.user, db.database)},
        {"name": "AGENT_RECOVERY_KMS_KEY", "value": db.kms_key},
        {"name": "AGENT_RECOVERY_WATCHER", "value": "on" if watcher else "off"},
        {"name": "AGENT_CHECKPOINT_RETENTION_SECONDS", "value": str(retention_seconds)},
    ]


def egress_rule(private_range_cidr: str) -> dict:
    """The agent pod's one extra egress: the proxy to the instance's private IP."""
    return {"to": [{"ipBlock": {"cidr": private_range_cidr}}],
            "ports": [{"protocol": "TCP", "port": CONNECTOR_PORT}]}
