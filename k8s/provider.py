"""The Kubernetes provider for the cluster the infra side built."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s


def cluster_provider(name: str, kubeconfig: pulumi.Input[str], cluster_name: pulumi.Input[str],
                     opts: pulumi.ResourceOptions | None = None) -> k8s.Provider:
    return k8s.Provider(
        name,
        kubeconfig=kubeconfig,
        # The provider is replaced (and with it every object it manages) exactly when the
        # cluster is: a kubeconfig change (new endpoint, rotated auth plugin) only updates it,
        # while a replacement cluster has a new name (infra/cluster.py), so the objects are
        # created again in the new cluster instead of staying in state for one that is gone.
        cluster_identifier=cluster_name,
        enable_server_side_apply=True,
        delete_unreachable=False,
        opts=opts,
    )
