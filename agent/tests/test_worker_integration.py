"""The real worker process against a real LiveKit server: register, serve, take and end jobs.

What is real: livekit-server --dev, the worker started with the contract command
`python -m voice_agent start` (cwd agent/, like WORKDIR /app), the framework's job processes,
Silero VAD, the AgentSession and room I/O, and a caller joining with the rtc SDK and
publishing audio. What is not: Gemini. It cannot be reached from here, so the test-only
fake_gemini/sitecustomize.py (on PYTHONPATH) swaps the single seam
voice_agent.model.build_realtime_model for a local fake that answers with a short tone.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from helpers import participant
from helpers.livekit_server import LiveKitServer
from helpers.worker_process import (
    contract_argv,
    http_get,
    registered_worker,
    worker_env,
    WorkerProcess,
)

pytestmark = pytest.mark.integration

SESSION_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def worker(
    livekit_server: LiveKitServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    logs = tmp_path_factory.mktemp("worker")
    env = worker_env(livekit_server, extra={"HOME": str(logs), "TMPDIR": str(logs)})
    with registered_worker(contract_argv(), env, log_path=logs / "worker.log") as process:
        yield process


def _metric(worker: WorkerProcess, name: str) -> float:
    """Sum of all samples named exactly ``name`` (labels ignored)."""
    status, body = http_get(worker.metrics_url)
    assert status == 200
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.split("{", 1)[0].split(" ", 1)[0] == name
    ]
    assert values, f"{name} not exported"
    return sum(values)


def _metric_or_zero(worker: WorkerProcess, name: str) -> float:
    """Labelled series appear only once something was counted."""
    try:
        return _metric(worker, name)
    except AssertionError:
        return 0.0


def _wait_metric(worker: WorkerProcess, name: str, want: float, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (value := _metric(worker, name)) != want:
        assert time.monotonic() < deadline, f"{name}={value}, expected {want}"
        time.sleep(0.2)


def test_worker_registers_with_the_server(
    worker: WorkerProcess, livekit_server: LiveKitServer
) -> None:
    ours = worker.events("worker_registered")[0]
    framework = worker.messages("registered worker")[0]
    assert ours["worker_id"] == framework["id"] and ours["worker_id"].startswith("AW_")
    assert ours["seconds_since_process_start"] > 0
    # the server's side of the same registration
    entry = livekit_server.wait_for_log("worker registered", workerID=ours["worker_id"])
    assert (entry["jobType"], entry["agentName"]) == ("JT_ROOM", "")


def test_every_line_is_cloud_logging_json(worker: WorkerProcess) -> None:
    json_lines = worker.lines
    assert json_lines, worker.tail()
    for line in json_lines:
        assert {
            "severity",
            "message",
            "time",
            "logging.googleapis.com/sourceLocation",
        } <= line.keys()
    starting = worker.events("worker_starting")[0]
    assert starting["drain_timeout_seconds"] == 3600
    assert starting["load_threshold"] == float(worker.env["AGENT_LOAD_THRESHOLD"])
    assert "livekit_api_secret" not in starting and worker.env[
        "LIVEKIT_API_SECRET"
    ] not in json.dumps(starting)


def test_health_endpoint_answers(worker: WorkerProcess) -> None:
    assert http_get(worker.health_url + "/") == (200, "OK")
    status, body = http_get(worker.health_url + "/worker")
    info = json.loads(body)
    assert status == 200
    assert (info["worker_type"], info["sdk_version"]) == ("JT_ROOM", "1.8.9")


def test_metrics_endpoint_serves_ours_and_the_frameworks(worker: WorkerProcess) -> None:
    # The framework's process-initialization histogram has a sample once a job process is
    # initialized. Registration does not wait for that on a busy machine: livekit-agents 1.8.9
    # ipc/proc_pool.py start() gives the idle processes initialize_process_timeout + 2 s (12 s)
    # and registers anyway ("timed out waiting for idle processes to initialize").
    worker.wait_for_message("process initialized", timeout=120)
    status, body = http_get(worker.metrics_url)
    assert status == 200
    for name in (
        "voice_agent_active_sessions",
        "voice_agent_session_duration_seconds_count",
        "voice_agent_draining",
        "lk_agents_worker_load",
        "lk_agents_proc_initialize_duration_seconds_count",
        "process_resident_memory_bytes",
    ):
        assert name in body, name
    assert _metric(worker, "voice_agent_draining") == 0


async def _call_then(
    server: LiveKitServer, worker: WorkerProcess, room: str, hang_up: str
) -> tuple[participant.Caller, dict]:
    """Create ``room``, join a caller, wait for the agent session, then end it by ``hang_up``."""
    await participant.create_room(server, room)
    caller = await participant.join_as_caller(server, room, f"caller-{room}")
    try:
        await asyncio.wait_for(caller.agent_joined.wait(), SESSION_TIMEOUT)
        started = await asyncio.to_thread(
            worker.wait_for_event, "session_started", SESSION_TIMEOUT, room=room
        )
        # the agent speaks (fake model's reply reaches the caller as audio)...
        await asyncio.wait_for(caller.agent_audio.wait(), SESSION_TIMEOUT)
        # ...and the caller's microphone reaches the model
        await asyncio.to_thread(
            worker.wait_for_event, "fake_model_audio_in", SESSION_TIMEOUT, room=room
        )
        kinds = await participant.list_participant_kinds(server, room)
        assert sorted(kinds.values()) == [0, 4], (
            kinds
        )  # STANDARD caller + AGENT, as the server sees it
        assert _metric(worker, "voice_agent_active_sessions") == 1
        assert _metric(worker, "lk_agents_active_job_count") == 1
    finally:
        if hang_up == "delete_room":
            await participant.delete_room(server, room)
            await caller.leave()
        else:
            await caller.leave()
    return caller, started


def test_new_room_dispatches_a_job_that_ends_with_the_room(
    worker: WorkerProcess, livekit_server: LiveKitServer
) -> None:
    room = "room-deleted"
    caller, started = asyncio.run(_call_then(livekit_server, worker, room, "delete_room"))
    accepted = worker.wait_for_event("job_accepted", 1, room=room)
    assert accepted["job_id"] == started["job_id"]
    assert caller.frames_from_agent > 0
    ended = worker.wait_for_event(
        "session_ended", SESSION_TIMEOUT, session_id=started["session_id"]
    )
    assert ended["job_id"] == started["job_id"] and ended["duration_seconds"] > 0
    # the job process is gone: the framework's job count and our gauge are back to zero
    _wait_metric(worker, "lk_agents_active_job_count", 0)
    _wait_metric(worker, "voice_agent_active_sessions", 0)
    assert _metric(worker, "voice_agent_session_duration_seconds_count") >= 1


def test_job_ends_when_the_caller_leaves(
    worker: WorkerProcess, livekit_server: LiveKitServer
) -> None:
    """The room still exists; the session must not idle in it until the server's timeout."""
    room = "room-caller-leaves"
    ended_before = _metric_or_zero(worker, "voice_agent_sessions_ended_total")
    _caller, started = asyncio.run(_call_then(livekit_server, worker, room, "leave"))
    ended = worker.wait_for_event(
        "session_ended", SESSION_TIMEOUT, session_id=started["session_id"]
    )
    assert ended["reason"] == "participant_disconnected"
    _wait_metric(worker, "lk_agents_active_job_count", 0)
    # the agent left the room too (the room itself may linger until its empty timeout)
    kinds = asyncio.run(participant.list_participant_kinds(livekit_server, room))
    assert 4 not in kinds.values(), kinds
    assert _metric(worker, "voice_agent_sessions_ended_total") == ended_before + 1
