"""A kubeconfig for the cluster's DNS endpoint, authenticated by gke-gcloud-auth-plugin."""

from __future__ import annotations

import json

# The DNS endpoint presents a publicly trusted certificate, so no CA bundle is embedded;
# access is decided by IAM (container.clusters.connect), not by network position.
_AUTH_PLUGIN = {
    "apiVersion": "client.authentication.k8s.io/v1beta1",
    "command": "gke-gcloud-auth-plugin",
    "installHint": "Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin",
    "provideClusterInfo": True,
}


def render_kubeconfig(context: str, dns_endpoint: str) -> str:
    """JSON is valid YAML; kubectl and the Kubernetes provider read it as a kubeconfig."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": f"https://{dns_endpoint}"}}],
        "users": [{"name": context, "user": {"exec": dict(_AUTH_PLUGIN)}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }
    return json.dumps(document, indent=2)
