"""AGENT_NAME set: the worker joins only rooms it is explicitly dispatched to.

Real livekit-server, worker (contract command) and caller; Gemini replaced at its seam by
the test-only fake (fake_gemini/sitecustomize.py on PYTHONPATH), as it cannot be reached here.
"""

from __future__ import annotations

import asyncio

import pytest
from helpers import participant
from helpers.livekit_server import LiveKitServer
from helpers.worker_process import (
    contract_argv,
    registered_worker,
    worker_env,
    WorkerProcess,
)

pytestmark = pytest.mark.integration

AGENT_NAME = "support-agent"
TIMEOUT = 30.0
# how long an undispatched room is watched for a (wrong) automatic dispatch
NO_DISPATCH_WINDOW = 4.0


async def _scenario(server: LiveKitServer, worker: WorkerProcess) -> None:
    await participant.create_room(server, "named-room")
    caller = await participant.join_as_caller(server, "named-room", "caller-named")
    try:
        await asyncio.sleep(NO_DISPATCH_WINDOW)
        assert not caller.agent_joined.is_set() and not worker.events("job_accepted")

        await participant.dispatch_agent(server, "named-room", AGENT_NAME)
        await asyncio.wait_for(caller.agent_joined.wait(), TIMEOUT)
        await asyncio.to_thread(
            worker.wait_for_event, "session_started", TIMEOUT, room="named-room"
        )
    finally:
        await caller.leave()


def test_named_agent_is_dispatched_explicitly_only(
    livekit_server: LiveKitServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    logs = tmp_path_factory.mktemp("named-worker")
    env = worker_env(
        livekit_server, extra={"AGENT_NAME": AGENT_NAME, "HOME": str(logs), "TMPDIR": str(logs)}
    )
    with registered_worker(contract_argv(), env, log_path=logs / "worker.log") as worker:
        assert worker.events("worker_registered")[0]["agent_name"] == AGENT_NAME
        asyncio.run(_scenario(livekit_server, worker))
        worker.wait_for_event("session_ended", TIMEOUT)
