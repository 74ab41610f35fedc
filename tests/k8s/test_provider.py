"""The Kubernetes provider built from the cluster's kubeconfig, and that every Kubernetes object
goes through it. Mocks stand in for GKE; no cluster is contacted."""

from __future__ import annotations

from tooling.mocks import ParentTrackingMonitor
from tests.k8s.rendered import plan_with


def test_provider_applies_server_side_with_a_stable_identity(plan):
    provider = plan.named("gke-k8s")
    assert provider["type"] == "pulumi:providers:kubernetes"
    inputs = provider["inputs"]
    assert inputs["enableServerSideApply"] == "true"
    # The identity must not come from the kubeconfig: a rotated endpoint or auth plugin would
    # otherwise replace the provider and, with it, every object it manages. It is the cluster's
    # name, which changes exactly when the cluster is replaced (issue 15 item 5).
    assert inputs["clusterIdentifier"] == plan.one("gcp:container/cluster:Cluster")["inputs"]["name"]
    assert inputs["kubeconfig"] == "[secret]", "the kubeconfig holds the cluster endpoint and CA; keep it secret"


def test_every_kubernetes_object_uses_the_cluster_provider(monkeypatch):
    """An object registered without the provider would go to whatever cluster the ambient
    kubeconfig points at."""
    providers: dict[str, str] = {}
    real = ParentTrackingMonitor.RegisterResource

    def register(self, request):
        if request.type.startswith("kubernetes:"):
            providers[request.name] = request.provider
        return real(self, request)

    monkeypatch.setattr(ParentTrackingMonitor, "RegisterResource", register)
    plan_with("prod")
    # 12 agent objects (deletion-cost access and LiveKit files included) + 2 spare-capacity objects + 11 of the
    # metrics adapter (k8s/metrics_adapter.py, its NetworkPolicy included) + 7 of the Places tool server, in prod
    assert len(providers) == 32
    # A provider reference is "<provider URN>::<provider id>".
    urns = {ref.rsplit("::", 1)[0] for ref in providers.values()}
    assert urns == {"urn:pulumi:prod::gke-voice-agents::pulumi:pulumi:Stack$pulumi:providers:kubernetes::gke-k8s"}, providers
