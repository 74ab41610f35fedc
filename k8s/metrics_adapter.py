"""The HPA's path to the calls metric: Managed Prometheus -> Custom Metrics Stackdriver Adapter.

Why this path (Google Cloud docs, "Horizontal pod autoscaling (HPA)" for Managed Service for
Prometheus, and the GKE tutorial "Optimize Pod autoscaling based on metrics"):
- Managed Service for Prometheus is on in every Autopilot cluster; the agent's PodMonitoring
  (k8s/workload.py) already sends voice_agent_active_sessions to Cloud Monitoring, where the
  dashboards and alerts read it too. One copy of the number, one scrape.
- The Custom Metrics Stackdriver Adapter (v0.13.1 and later) serves those series to the HPA as
  Pods metrics under ``prometheus.googleapis.com|<name>|gauge``. It is one Deployment with a
  narrow role: read Cloud Monitoring (roles/monitoring.viewer), nothing else in the project.
- KEDA would add its own operator, CRDs and webhooks for one metric; GKE's managed metrics
  adapter needs newer GKE versions than the REGULAR channel guarantees. Documented as the
  choice in docs/workload.md.

Hardened like our own pods: non-root, read-only root filesystem, no privilege escalation, every
capability dropped, seccomp RuntimeDefault, a one-hour projected API token instead of the
automounted one, and a NetworkPolicy (serving port in; DNS, metadata server and 443 out).

What the stack installs, as the adapter's production manifest does
(GoogleCloudPlatform/k8s-stackdriver, custom-metrics-stackdriver-adapter/deploy/production/
adapter_new_resource_model.yaml), minus what we do not use (the external.metrics.k8s.io API and
its reader binding): its namespace and service account, the API aggregation bindings, read
access to pods and nodes, the Deployment and Service, and the custom.metrics.k8s.io APIServices.
Its Google identity is its Kubernetes service account itself (Workload Identity Federation
principal), granted roles/monitoring.viewer on the project and nothing more; no key, no
Google service account.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from infra.identity import principal_of
from infra.names import child, type_token
from k8s.deletion_cost import ROOT_CA_CONFIGMAP, SERVICE_ACCOUNT_DIR, TOKEN_SECONDS
from k8s.runtime import GKE_METADATA_SERVER, METADATA_SERVER

NAMESPACE = "custom-metrics"
SERVICE_ACCOUNT = "custom-metrics-stackdriver-adapter"
# The tag upstream's production manifest pins (GoogleCloudPlatform/k8s-stackdriver,
# custom-metrics-stackdriver-adapter/deploy/production/adapter_new_resource_model.yaml, commit
# af49d863 of 2026-08-17, "update custom-metrics-stackdriver-adapter image to v0.16.9-gke.0");
# v0.15.1 carried known vulnerabilities (issue 24). The image is distroless/static (its
# Dockerfile), so it runs as any user.
IMAGE = "gcr.io/gke-release/custom-metrics-stackdriver-adapter:v0.16.9-gke.0"
MONITORING_ROLE = "roles/monitoring.viewer"
APP_LABELS = {"app.kubernetes.io/name": SERVICE_ACCOUNT, "app.kubernetes.io/part-of": "gke-voice-agents"}
# Autopilot's minimum without bursting is 250m / 512 MiB (domain/sizes.py); upstream asks 200 MiB,
# which Autopilot would raise silently.
RESOURCES = {"cpu": "250m", "memory": "512Mi"}
CUSTOM_METRICS_VERSIONS = ("v1beta1", "v1beta2")
# Upstream serves on 443 as root. A non-root process cannot bind below 1024 without a
# capability, so the adapter serves on 8443 (`--secure-port`, k8s.io/apiserver's secure serving
# options, which the adapter's flag set includes) and the Service maps 443 to it.
PORT = 8443
# distroless's `nonroot` user; any non-zero id works for a static binary.
RUN_AS = 65532
# The serving certificate the adapter generates at start (self-signed; the APIService skips
# verification, as upstream) goes to an emptyDir: the root filesystem stays read-only.
CERT_DIR = "/tmp/certs"
TOKEN_VOLUME = "kube-api-token"


def adapter_args() -> list[str]:
    return ["/adapter", "--use-new-resource-model=true", "--fallback-for-container-metrics=true",
            f"--secure-port={PORT}", f"--cert-dir={CERT_DIR}"]


def token_volume() -> dict:
    """The API-server token the adapter needs (it reads pods and nodes, delegates authentication),
    projected for one hour instead of the automounted one: the automount's token is the one
    the API server may extend to a year (--service-account-extend-token-expiration)."""
    return {"name": TOKEN_VOLUME, "projected": {"defaultMode": 0o440, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_SECONDS}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
    ]}}


def adapter_pod_spec() -> dict:
    return {
        "serviceAccountName": SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [token_volume(), {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
        "containers": [{
            "name": "adapter",
            "image": IMAGE,
            "command": adapter_args(),
            "ports": [{"name": "https", "containerPort": PORT, "protocol": "TCP"}],
            "resources": {"requests": RESOURCES, "limits": RESOURCES},
            # as upstream's manifest (readiness added there in 2025-08)
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": PORT, "scheme": "HTTPS"},
                               "initialDelaySeconds": 40, "periodSeconds": 10, "timeoutSeconds": 5},
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": TOKEN_VOLUME, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True},
                             {"name": "tmp", "mountPath": "/tmp"}],
        }],
    }


def network_policy_spec() -> dict:
    """In: the API server's aggregation layer on the serving port (the control plane is no pod
    and its address is not in the plan, so the port is the narrowing). Out: DNS, the metadata
    server (Workload Identity token), TCP 443 (Cloud Monitoring, and the API server through the
    `kubernetes` Service)."""
    metadata = [{"to": [{"ipBlock": {"cidr": cidr}}], "ports": [{"protocol": "TCP", "port": port}]}
                for cidr, port in (METADATA_SERVER, GKE_METADATA_SERVER)]
    return {
        "podSelector": {"matchLabels": APP_LABELS},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"ports": [{"protocol": "TCP", "port": PORT}]}],
        "egress": [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}, *metadata,
                   {"ports": [{"protocol": "TCP", "port": 443}]}],
    }


def api_service_spec(version: str) -> dict:
    # As upstream: the aggregator reaches the adapter's self-signed serving certificate.
    return {
        "insecureSkipTLSVerify": True,
        "group": "custom.metrics.k8s.io",
        "groupPriorityMinimum": 100,
        "versionPriority": 100 if version == "v1beta1" else 200,
        "service": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE},
        "version": version,
    }


def resource_reader_rules() -> list[dict]:
    return [{"apiGroups": [""], "resources": ["pods", "nodes", "nodes/stats"], "verbs": ["get", "list", "watch"]}]


@dataclass(frozen=True)
class MetricsAdapterArgs:
    project: str
    # the cluster's Workload Identity pool (AutopilotCluster.workload_pool): the grant waits for it
    workload_pool: pulumi.Input[str]
    # a Kubernetes provider for the cluster
    provider: pulumi.ProviderResource


class MetricsAdapter(pulumi.ComponentResource):
    principal: pulumi.Output[str]

    def __init__(self, name: str, args: MetricsAdapterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("k8s", "MetricsAdapter"), name, None, opts)
        self.principal = principal_of(self, args.project, args.workload_pool, NAMESPACE, SERVICE_ACCOUNT)
        gcp.projects.IAMMember(child(name, "monitoring-viewer"), project=args.project, role=MONITORING_ROLE,
                               member=self.principal, opts=pulumi.ResourceOptions(parent=self))
        kube = pulumi.ResourceOptions(parent=self, provider=args.provider)
        ns = k8s.core.v1.Namespace(child(name, "namespace"), metadata={"name": NAMESPACE, "labels": APP_LABELS},
                                   opts=kube)
        in_ns = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[ns])
        meta = {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE, "labels": APP_LABELS}
        ksa = k8s.core.v1.ServiceAccount(child(name, "ksa"), metadata=meta, automount_service_account_token=False, opts=in_ns)
        subject = [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}]
        # delegated authentication and authorization of an aggregated API server
        k8s.rbac.v1.ClusterRoleBinding(
            child(name, "auth-delegator"), metadata={"name": "custom-metrics:system:auth-delegator"},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
            subjects=subject, opts=in_ns)
        k8s.rbac.v1.RoleBinding(
            child(name, "auth-reader"), metadata={"name": "custom-metrics-auth-reader", "namespace": "kube-system"},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                      "name": "extension-apiserver-authentication-reader"},
            subjects=subject, opts=in_ns)
        reader = k8s.rbac.v1.ClusterRole(child(name, "resource-reader"),
                                         metadata={"name": "custom-metrics-resource-reader"},
                                         rules=resource_reader_rules(), opts=kube)
        k8s.rbac.v1.ClusterRoleBinding(
            child(name, "resource-reader-binding"), metadata={"name": "custom-metrics-resource-reader"},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "custom-metrics-resource-reader"},
            subjects=subject, opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[reader]))
        deployment = k8s.apps.v1.Deployment(
            child(name, "deployment"), metadata=meta,
            spec={"replicas": 1, "selector": {"matchLabels": APP_LABELS},
                  "template": {"metadata": {"labels": APP_LABELS}, "spec": adapter_pod_spec()}},
            # Pods naming a service account that does not exist yet are refused by admission
            # (tooling/preconditions.py service-account-first).
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[ns, ksa]))
        service = k8s.core.v1.Service(
            child(name, "service"), metadata=meta,
            spec={"type": "ClusterIP", "selector": APP_LABELS,
                  "ports": [{"port": 443, "protocol": "TCP", "targetPort": PORT}]},
            opts=in_ns)
        k8s.networking.v1.NetworkPolicy(child(name, "network"), metadata=meta, spec=network_policy_spec(), opts=in_ns)
        for version in CUSTOM_METRICS_VERSIONS:
            k8s.apiregistration.v1.APIService(
                child(name, f"api-{version}"), metadata={"name": f"{version}.custom.metrics.k8s.io"},
                spec=api_service_spec(version),
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[deployment, service]))
        self.register_outputs({"principal": self.principal})
