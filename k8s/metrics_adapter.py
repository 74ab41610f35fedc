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

NAMESPACE = "custom-metrics"
SERVICE_ACCOUNT = "custom-metrics-stackdriver-adapter"
# The version the upstream production manifest pins (GKE release registry).
IMAGE = "gcr.io/gke-release/custom-metrics-stackdriver-adapter:v0.15.1-gke.0"
MONITORING_ROLE = "roles/monitoring.viewer"
APP_LABELS = {"app.kubernetes.io/name": SERVICE_ACCOUNT, "app.kubernetes.io/part-of": "gke-voice-agents"}
# Autopilot's minimum without bursting is 250m / 512 MiB (domain/sizes.py); upstream asks 400 MiB,
# which Autopilot would raise silently.
RESOURCES = {"cpu": "250m", "memory": "512Mi"}
CUSTOM_METRICS_VERSIONS = ("v1beta1", "v1beta2")


def adapter_pod_spec() -> dict:
    return {
        "serviceAccountName": SERVICE_ACCOUNT,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "adapter",
            "image": IMAGE,
            "command": ["/adapter", "--use-new-resource-model=true", "--fallback-for-container-metrics=true"],
            "ports": [{"name": "https", "containerPort": 443, "protocol": "TCP"}],
            "resources": {"requests": RESOURCES, "limits": RESOURCES},
            # It serves on 443 as upstream does: the one capability it keeps is binding that port.
            "securityContext": {"allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
        }],
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
        ksa = k8s.core.v1.ServiceAccount(child(name, "ksa"), metadata=meta, opts=in_ns)
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
            # (infra/preconditions.py service-account-first).
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[ns, ksa]))
        service = k8s.core.v1.Service(
            child(name, "service"), metadata=meta,
            spec={"type": "ClusterIP", "selector": APP_LABELS,
                  "ports": [{"port": 443, "protocol": "TCP", "targetPort": 443}]},
            opts=in_ns)
        for version in CUSTOM_METRICS_VERSIONS:
            k8s.apiregistration.v1.APIService(
                child(name, f"api-{version}"), metadata={"name": f"{version}.custom.metrics.k8s.io"},
                spec=api_service_spec(version),
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[deployment, service]))
        self.register_outputs({"principal": self.principal})
