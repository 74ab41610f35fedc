"""The worker keeps its pod's deletion cost in bands, against a Kubernetes API stand-in.

No Kubernetes API server runs here: tests/fakes/kubernetes_api.py imitates the pod PATCH
endpoint at the network boundary (TLS, bearer token, merge patch, the API's Status answers),
and the real client code (voice_agent/deletion_cost.py, aiohttp) talks to it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fakes.kubernetes_api import MERGE_PATCH, FakeKubernetesApi
from helpers import participant
from helpers.livekit_server import LiveKitServer
from helpers.worker_process import contract_argv, registered_worker, worker_env

from voice_agent.deletion_cost import ANNOTATION, BAND_COSTS, DeletionCostKeeper, PodRef, band_for

NS, POD = "voice-agents", "voice-agent-7c9f-abcde"


@pytest.mark.parametrize("calls, cap, band", [
    (0, 3, "idle"), (1, 3, "busy"), (2, 3, "busy"), (3, 3, "full"), (4, 3, "full"),
    (0, 0, "idle"), (50, 0, "busy"),  # no cap: never "full"
])
def test_band_boundaries(calls, cap, band):
    assert band_for(calls, cap) == band


@pytest.fixture
def api(tmp_path: Path):
    fake = FakeKubernetesApi(tmp_path / "api", token="projected-token-1").start()
    fake.add_pod(NS, POD)
    fake.write_credentials(tmp_path / "sa")
    try:
        yield fake
    finally:
        fake.stop()


def _keeper(api: FakeKubernetesApi, tmp_path: Path, cap: int = 3, namespace: str = NS) -> DeletionCostKeeper:
    return DeletionCostKeeper(PodRef(POD, namespace), cap, api_url=api.url, credentials_dir=tmp_path / "sa")


async def _walk(keeper: DeletionCostKeeper, calls: list[int]) -> list[bool]:
    try:
        return [await keeper.update(n) for n in calls]
    finally:
        await keeper.aclose()


def test_writes_only_on_band_changes(api: FakeKubernetesApi, tmp_path: Path):
    """Guards against one API write per call (load on the API server) and against a stale band."""
    calls = [0, 0, 1, 2, 2, 3, 3, 2, 1, 0, 0]
    wrote = asyncio.run(_walk(_keeper(api, tmp_path), calls))
    assert wrote == [True, False, True, False, False, True, False, True, False, True, False]
    patches = api.patches()
    assert [p.body for p in patches] == [
        {"metadata": {"annotations": {ANNOTATION: str(BAND_COSTS[b])}}} for b in ("idle", "busy", "full", "busy", "idle")
    ]
    assert {p.path for p in patches} == {f"/api/v1/namespaces/{NS}/pods/{POD}"}
    assert {p.content_type for p in patches} == {MERGE_PATCH}
    assert api.annotations(NS, POD) == {ANNOTATION: "0"}


def test_token_is_read_again_at_every_write(api: FakeKubernetesApi, tmp_path: Path):
    """The kubelet renews the projected token file; a token cached at start expires in an hour."""
    async def scenario() -> None:
        keeper = _keeper(api, tmp_path)
        try:
            assert await keeper.update(0)
            api.token = "projected-token-2"
            (tmp_path / "sa" / "token").write_text("projected-token-2")
            assert await keeper.update(1)
        finally:
            await keeper.aclose()

    asyncio.run(scenario())
    assert [p.token for p in api.patches()] == ["projected-token-1", "projected-token-2"]


def test_a_failed_write_is_retried_at_the_next_tick(api: FakeKubernetesApi, tmp_path: Path):
    api.fail_next = [503]
    keeper = _keeper(api, tmp_path)
    assert asyncio.run(_walk(keeper, [1, 1, 1])) == [False, True, False]
    assert keeper.failures == 1 and keeper.applied_band == "busy"
    assert api.annotations(NS, POD) == {ANNOTATION: str(BAND_COSTS["busy"])}


def test_a_forbidden_namespace_is_refused_and_nothing_is_applied(api: FakeKubernetesApi, tmp_path: Path):
    """The Role covers the agent's namespace only: the API answers 403 elsewhere."""
    keeper = _keeper(api, tmp_path, namespace="kube-system")
    assert asyncio.run(_walk(keeper, [0, 0])) == [False, False]
    assert keeper.failures == 2 and keeper.applied_band is None


def test_a_wrong_token_is_refused(api: FakeKubernetesApi, tmp_path: Path):
    (tmp_path / "sa" / "token").write_text("not-the-token")
    keeper = _keeper(api, tmp_path)
    assert asyncio.run(_walk(keeper, [0])) == [False]
    assert api.annotations(NS, POD) == {}


@pytest.mark.integration
def test_the_worker_marks_its_pod_busy_during_a_call_and_idle_after(
    livekit_server: LiveKitServer, api: FakeKubernetesApi, tmp_path: Path
):
    """The real worker (contract command) with the env the pod spec gives it."""
    env = worker_env(livekit_server, extra={
        "AGENT_POD_NAME": POD, "AGENT_POD_NAMESPACE": NS, "AGENT_MAX_CALLS": "3",
        "AGENT_KUBE_CREDENTIALS_DIR": str(tmp_path / "sa"),
        "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": api.url.rsplit(":", 1)[1],
    })
    with registered_worker(contract_argv(), env, log_path=tmp_path / "worker.log") as worker:
        worker.wait_for_event("deletion_cost_set", 20, band="idle")
        asyncio.run(_one_call(livekit_server, worker))
        worker.wait_for_event("deletion_cost_set", 30, band="idle", previous_band="busy")
    bands = [p.body["metadata"]["annotations"][ANNOTATION] for p in api.patches()]
    assert bands == [str(BAND_COSTS[b]) for b in ("idle", "busy", "idle")]


async def _one_call(server: LiveKitServer, worker) -> None:
    await participant.create_room(server, "cost-1")
    room = await participant.join_as_caller(server, "cost-1", "caller-cost")
    try:
        await asyncio.to_thread(worker.wait_for_event, "deletion_cost_set", 30.0, band="busy")
    finally:
        await room.leave()
