"""ToolServer: an MCP tool server (tools/<name>/) on the cluster, with its own identity.

The agent holds no tool credential: it presents an audience-bound projected token (k8s/pod.py
tool_token_volume) and the tool server, whose own Kubernetes service account alone carries the
Google role it needs (infra/tool_identity.py), verifies it. The specs are pure functions; the
component only declares the objects.

Network: ingress only from agent pods (label gke-voice-agents/role=agent) on the MCP port;
egress only to DNS, the metadata server (Workload Identity token) and TCP 443 (the Places API
and the cluster issuer's key set, both *.googleapis.com through Private Google Access, whose
addresses change: the port is the narrowing, as for the agent in k8s/egress.py; and the cluster's
API server, kubernetes.default.svc:443).

Kubernetes API: the server asks the cluster whether a caller's pod still exists (TokenReview) and
may do nothing else: a ClusterRole with `create` on `tokenreviews` only, and its own projected
API token (10 minutes, renewed by the kubelet) beside the cluster CA, instead of the automounted
token.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.names import child, type_token
from k8s import runtime
from k8s.runtime import GKE_METADATA_SERVER, METADATA_SERVER

TOOL_SERVER_ROLE = "tool-server"
PORT = 8080
PORT_NAME = "mcp"
MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
# Its own user, not the agent's 10001 (tools/places/Dockerfile).
RUN_AS_UID = 10002
# Autopilot's general-purpose minimum without bursting (DESIGN 3.7): a tool server waiting on
# HTTP needs no more; limit = request, as Autopilot forces.
RESOURCES = {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "1Gi"}
REPLICAS = 2
PROBE_PERIOD_S = 10
HTTPS = 443
# Its own API token and the cluster CA (tools/places/places_mcp/settings.py reads these paths).
KUBE_API_VOLUME = "kube-api"
KUBE_API_DIR = "/var/run/secrets/tokens/kube-api"
# The shortest lifetime the API server accepts for a projected token (expirationSeconds >= 600).
KUBE_API_TOKEN_SECONDS = 600
TOKEN_REVIEW_RULE = {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}
# GKE's link from a Kubernetes service account to the Google service account it acts as.
GOOGLE_SERVICE_ACCOUNT_ANNOTATION = "iam.gke.io/gcp-service-account"


def audience(name: str) -> str:
    """The audience of the agent's projected token for this server: one token per server, so a
    token for one tool is worthless at another."""
    return f"{name}-mcp"


def app_name(name: str) -> str:
    return f"{name}-mcp"


def selector_labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app_name(name), "app.kubernetes.io/part-of": "gke-voice-agents"}


def pod_labels(name: str) -> dict[str, str]:
    return {**selector_labels(name), runtime.ROLE_LABEL: TOOL_SERVER_ROLE}


def service_url(name: str, namespace: str) -> str:
    return f"http://{app_name(name)}.{namespace}.svc:{PORT}{MCP_PATH}"


def agent_subject(namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:{runtime.AGENT_SERVICE_ACCOUNT}"


def cluster_issuer(project: str, location: str, cluster_name: str) -> str:
    """GKE's service-account token issuer (its OIDC discovery document and key set are public
    under this URL; GKE Workload Identity Federation docs)."""
    return f"https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{cluster_name}"


def container_env(name: str, namespace: str, project: str, issuer: pulumi.Input[str]) -> list[dict]:
    return [
        {"name": "PLACES_MCP_ISSUER", "value": issuer},
        {"name": "PLACES_MCP_AUDIENCE", "value": audience(name)},
        {"name": "PLACES_MCP_ALLOWED_SUBJECTS", "value": agent_subject(namespace)},
        {"name": "PLACES_QUOTA_PROJECT", "value": project},
        {"name": "PLACES_MCP_PORT", "value": str(PORT)},
        {"name": "PLACES_MCP_KUBE_TOKEN_FILE", "value": f"{KUBE_API_DIR}/token"},
        {"name": "PLACES_MCP_KUBE_CA_FILE", "value": f"{KUBE_API_DIR}/ca.crt"},
        {"name": "HOME", "value": "/tmp"},
    ]


def kube_api_volume() -> dict:
    """Its own API token (default audience: the API server) and the cluster CA, nothing else."""
    return {"name": KUBE_API_VOLUME, "projected": {"defaultMode": 0o440, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": KUBE_API_TOKEN_SECONDS}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    ]}}


def token_review_role_name(name: str) -> str:
    return f"{app_name(name)}-token-review"


def _probe(path: str, failures: int) -> dict:
    return {"httpGet": {"path": path, "port": PORT_NAME}, "periodSeconds": PROBE_PERIOD_S, "timeoutSeconds": 3,
            "failureThreshold": failures}


def pod_spec(name: str, namespace: str, project: str, image: pulumi.Input[str], issuer: pulumi.Input[str]) -> dict:
    return {
        "serviceAccountName": app_name(name),
        # Its only API call is TokenReview, with the projected token of kube_api_volume().
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_UID, "runAsGroup": RUN_AS_UID,
                            "fsGroup": RUN_AS_UID, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "server",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["python", "-m", "places_mcp"],
            "env": container_env(name, namespace, project, issuer),
            "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
            "resources": {"requests": dict(RESOURCES), "limits": dict(RESOURCES)},
            "startupProbe": _probe(HEALTH_PATH, 6),
            "livenessProbe": _probe(HEALTH_PATH, 3),
            # ready once a real search can work (tools/places/places_mcp/readiness.py)
            "readinessProbe": _probe(READY_PATH, 1),
            "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_UID, "runAsGroup": RUN_AS_UID,
                                "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                             {"name": KUBE_API_VOLUME, "mountPath": KUBE_API_DIR, "readOnly": True}],
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}, kube_api_volume()],
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                       "whenUnsatisfiable": "ScheduleAnyway",
                                       "labelSelector": {"matchLabels": selector_labels(name)}}],
    }


def deployment_spec(name: str, namespace: str, project: str, image: pulumi.Input[str],
                    issuer: pulumi.Input[str], replicas: int = REPLICAS) -> dict:
    return {
        "replicas": replicas,
        "selector": {"matchLabels": selector_labels(name)},
        # stateless MCP: any replica serves any call; never fewer ready than asked during a rollout
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "revisionHistoryLimit": 5,
        "template": {"metadata": {"labels": pod_labels(name)},
                     "spec": pod_spec(name, namespace, project, image, issuer)},
    }


def agent_egress_rule() -> dict:
    """The rule the agent's egress NetworkPolicy (k8s/egress.py) needs to reach tool servers:
    pods with the tool-server role, on the MCP port only."""
    return {"to": [{"podSelector": {"matchLabels": {runtime.ROLE_LABEL: TOOL_SERVER_ROLE}}}],
            "ports": [{"protocol": "TCP", "port": PORT}]}


def network_policy_spec(name: str) -> dict:
    metadata_rules = [{"to": [{"ipBlock": {"cidr": cidr}}], "ports": [{"protocol": "TCP", "port": port}]}
                      for cidr, port in (METADATA_SERVER, GKE_METADATA_SERVER)]
    return {
        "podSelector": {"matchLabels": selector_labels(name)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{
            "from": [{"podSelector": {"matchLabels": {runtime.ROLE_LABEL: runtime.AGENT_ROLE}}}],
            "ports": [{"protocol": "TCP", "port": PORT}],
        }],
        "egress": [
            {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
            *metadata_rules,
            {"ports": [{"protocol": "TCP", "port": HTTPS}]},
        ],
    }


@dataclass(frozen=True)
class ToolServerArgs:
    name: str  # "places": tools/places, token audience places-mcp
    namespace: str
    project: str
    image: pulumi.Input[str]
    issuer: pulumi.Input[str]
    replicas: int = REPLICAS
    # The Google service account the server acts as (infra/tool_identity.py): the GKE metadata
    # server hands the pod its token. None: the pod's own federated principal.
    google_service_account: pulumi.Input[str] | None = None


class ToolServer(pulumi.ComponentResource):
    url: pulumi.Output[str]

    def __init__(self, name: str, args: ToolServerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("k8s", "ToolServer"), name, None, opts)
        a = args
        meta = {"name": app_name(a.name), "namespace": a.namespace, "labels": selector_labels(a.name)}
        child_opts = pulumi.ResourceOptions(parent=self)
        ksa_meta = dict(meta)
        if a.google_service_account is not None:
            ksa_meta["annotations"] = {GOOGLE_SERVICE_ACCOUNT_ANNOTATION: a.google_service_account}
        ksa = k8s.core.v1.ServiceAccount(child(name, "ksa"), metadata=ksa_meta, automount_service_account_token=False,
                                         opts=child_opts)
        role_name = token_review_role_name(a.name)
        role = k8s.rbac.v1.ClusterRole(child(name, "token-review-role"),
                                       metadata={"name": role_name, "labels": selector_labels(a.name)},
                                       rules=[TOKEN_REVIEW_RULE], opts=child_opts)
        binding = k8s.rbac.v1.ClusterRoleBinding(
            child(name, "token-review-binding"), metadata={"name": role_name, "labels": selector_labels(a.name)},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
            subjects=[{"kind": "ServiceAccount", "name": app_name(a.name), "namespace": a.namespace}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role, ksa]))
        deployment = k8s.apps.v1.Deployment(
            child(name, "deployment"), metadata=meta,
            spec=deployment_spec(a.name, a.namespace, a.project, a.image, a.issuer, a.replicas),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ksa, binding]))
        k8s.core.v1.Service(
            child(name, "service"), metadata=meta,
            spec={"type": "ClusterIP", "selector": selector_labels(a.name),
                  "ports": [{"name": PORT_NAME, "port": PORT, "targetPort": PORT_NAME, "protocol": "TCP"}]},
            opts=child_opts)
        k8s.policy.v1.PodDisruptionBudget(
            child(name, "pdb"), metadata=meta,
            spec={"minAvailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow",
                  "selector": {"matchLabels": selector_labels(a.name)}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]))
        k8s.networking.v1.NetworkPolicy(child(name, "network"), metadata=meta, spec=network_policy_spec(a.name),
                                        opts=child_opts)
        self.url = pulumi.Output.from_input(service_url(a.name, a.namespace))
        self.register_outputs({"url": self.url})
