"""The real control plane for tests/k8s/test_apiserver_*.py (tests/k8s/controlplane.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import _fixture_plan
from tests.k8s import controlplane
from tests.k8s.apiserver import AppliedStack, apply_stack


class Clusters:
    """One API server per committed stack, started on first use and kept for the session:
    the two stacks share names (namespace, cluster roles), so each gets a cluster of its own."""

    def __init__(self, factory: pytest.TempPathFactory):
        self.factory = factory
        self.running: dict[str, AppliedStack] = {}

    def applied(self, stack: str) -> AppliedStack:
        if stack not in self.running:
            cluster = controlplane.start(self.factory.mktemp(f"apiserver-{stack}"), policy_status=True)
            try:
                self.running[stack] = apply_stack(stack, _fixture_plan(stack), cluster)
            except BaseException:
                cluster.stop()
                raise
        return self.running[stack]

    def stop(self) -> None:
        for applied in self.running.values():
            applied.cluster.stop()


@pytest.fixture(scope="session")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clusters]:
    reason = controlplane.unavailable(controlplane.SERVER + ("kube-controller-manager",))
    if reason:
        pytest.fail(reason)
    running = Clusters(tmp_path_factory)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(params=("dev", "prod"))
def applied(request, clusters: Clusters) -> AppliedStack:
    """A real API server holding every object of the stack's plan (applied once per session)."""
    return clusters.applied(request.param)
