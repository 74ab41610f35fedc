"""The worker runs a whole call with a read-only root filesystem and only /tmp writable.

This is what the Deployment gives it (readOnlyRootFilesystem: true, an emptyDir at /tmp,
HOME=/tmp): the contract command runs in a private mount namespace where / is remounted
read-only and /tmp is an empty tmpfs (the wrapper checks both before it execs the command,
so a worker that registers is one running read-only). Real livekit-server and caller;
Gemini replaced at its seam by the test-only fake (fake_gemini/sitecustomize.py), as it
cannot be reached from here.
"""

from __future__ import annotations

import asyncio
import signal

import pytest
from helpers import participant
from helpers.livekit_server import LiveKitServer
from helpers.worker_process import (
    contract_argv,
    readonly_root_argv,
    readonly_root_supported,
    registered_worker,
    worker_env,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not readonly_root_supported(), reason="needs a mount namespace (unshare --mount)"
    ),
]

TIMEOUT = 30.0


async def _one_call(server: LiveKitServer, worker) -> None:
    await participant.create_room(server, "readonly-call")
    caller = await participant.join_as_caller(server, "readonly-call", "caller-ro")
    try:
        await asyncio.wait_for(caller.agent_audio.wait(), TIMEOUT)
        await asyncio.to_thread(
            worker.wait_for_event, "fake_model_audio_in", TIMEOUT, room="readonly-call"
        )
    finally:
        await caller.leave()


def test_full_call_and_drain_with_read_only_root(
    livekit_server: LiveKitServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Guards the Deployment's securityContext: if anything writes outside /tmp, this fails."""
    logs = tmp_path_factory.mktemp("readonly-worker")
    env = worker_env(
        livekit_server,
        extra={"HOME": "/tmp", "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    with registered_worker(readonly_root_argv(contract_argv()), env, log_path=logs / "worker.log") as worker:
        asyncio.run(_one_call(livekit_server, worker))
        worker.wait_for_event("session_ended", TIMEOUT)
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit(TIMEOUT) == 0, worker.tail()
    problems = [
        line for line in worker.raw_lines if "Read-only file system" in line or "Errno 30" in line
    ]
    assert problems == []
    errors = [
        line["message"][:200] for line in worker.lines if line["severity"] in {"ERROR", "CRITICAL"}
    ]
    assert errors == []
    assert worker.events("worker_exit")[0]["exit_code"] == 0
