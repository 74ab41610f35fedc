"""SIGTERM drains: the running call continues, no new job is taken, the worker then exits 0.

Real livekit-server, real worker process started with the contract command, real callers.
Gemini is replaced at its one seam by the test-only fake (fake_gemini/sitecustomize.py on
PYTHONPATH), because it cannot be reached from here. SIGTERM goes to the worker's PID only,
as the kubelet sends it to PID 1 of the container.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator

import pytest
from helpers import participant
from helpers.livekit_server import LiveKitServer
from helpers.worker_process import (
    PLAIN_CALL_IDS,
    contract_argv,
    http_get,
    registered_worker,
    worker_env,
    WorkerProcess,
)

pytestmark = pytest.mark.integration

TIMEOUT = 30.0
# how long a second room is watched for a (wrong) dispatch while the worker drains
NO_DISPATCH_WINDOW = 6.0


@pytest.fixture
def worker(
    livekit_server: LiveKitServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    logs = tmp_path_factory.mktemp("drain-worker")
    env = worker_env(livekit_server, extra={"HOME": str(logs), "TMPDIR": str(logs), **PLAIN_CALL_IDS})
    with registered_worker(contract_argv(), env, log_path=logs / "worker.log") as process:
        yield process


async def _drain_scenario(server: LiveKitServer, worker: WorkerProcess) -> None:
    await participant.create_room(server, "call-in-progress")
    first = await participant.join_as_caller(server, "call-in-progress", "caller-1")
    await asyncio.wait_for(first.agent_joined.wait(), TIMEOUT)
    started = await asyncio.to_thread(
        worker.wait_for_event, "session_started", TIMEOUT, room="call-in-progress"
    )

    worker.signal(signal.SIGTERM)
    drain = await asyncio.to_thread(worker.wait_for_event, "drain_started", TIMEOUT)
    assert drain["active_jobs"] == 1 and drain["active_sessions"] == 1
    framework = await asyncio.to_thread(worker.wait_for_message, "draining worker", TIMEOUT)
    assert framework["timeout"] == 3600  # AGENT_DRAIN_TIMEOUT_SECONDS default reached the framework
    status, body = http_get(worker.metrics_url)
    assert status == 200 and '\nvoice_agent_draining{version="unversioned"} 1.0\n' in body

    # a new caller arrives during the drain: the draining worker must not take the job
    await participant.create_room(server, "new-call")
    second = await participant.join_as_caller(server, "new-call", "caller-2")
    await asyncio.sleep(NO_DISPATCH_WINDOW)
    assert not second.agent_joined.is_set()
    assert not [line for line in worker.events("job_accepted") if line["room"] == "new-call"]
    server.wait_for_log("worker status changed", workerID=drain["worker_id"], status="WS_FULL")

    # the call in progress is still served: not ended, and the worker is still running
    assert not worker.events("session_ended") and worker.process.poll() is None
    assert (await participant.list_participant_kinds(server, "call-in-progress")).get(
        f"agent-{started['job_id']}"
    ) == 4

    await second.leave()
    # the caller hangs up; the drain then completes without waiting for drain_timeout
    await first.leave()


def test_sigterm_drains_then_exits(worker: WorkerProcess, livekit_server: LiveKitServer) -> None:
    asyncio.run(_drain_scenario(livekit_server, worker))
    started = time.monotonic()
    code = worker.wait_exit(TIMEOUT)
    assert code == 0, worker.tail()
    ended = worker.events("session_ended")
    assert [line["reason"] for line in ended] == ["participant_disconnected"]
    finished = worker.wait_for_event("drain_finished", 1)
    assert finished["waited_seconds"] > NO_DISPATCH_WINDOW
    exit_line = worker.wait_for_event("worker_exit", 1)
    assert exit_line["exit_code"] == 0
    assert time.monotonic() - started < TIMEOUT
    # order an operator reads during a rollout
    order = [
        line.get("event") or line["message"]
        for line in worker.lines
        if line.get("event")
        in {"drain_started", "session_ended", "drain_finished", "worker_closed", "worker_exit"}
        or line["message"] == "draining worker"
    ]
    assert order == [
        "drain_started",
        "draining worker",
        "session_ended",
        "drain_finished",
        "worker_closed",
        "worker_exit",
    ]
