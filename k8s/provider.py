"""The Kubernetes provider for the cluster the infra side built."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s


def cluster_provider(name: str, kubeconfig: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None) -> k8s.Provider:
    return k8s.Provider(
        name,
        kubeconfig=kubeconfig,
        # A kubeconfig change (new endpoint, rotated auth plugin) must update the provider, not
        # replace it: replacing it would replace every workload it manages.
        cluster_identifier=f"{name}-cluster",
        enable_server_side_apply=True,
        delete_unreachable=False,
        opts=opts,
    )
