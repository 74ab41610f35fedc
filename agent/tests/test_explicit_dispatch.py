"""AGENT_NAME set: the worker joins only rooms it is explicitly dispatched to, through the
CreateDispatch API or a caller token carrying a RoomAgentDispatch (the test-call command).

Real livekit-server, worker (contract command) and caller; Gemini replaced at its seam by
the test-only fake (fake_gemini/sitecustomize.py on PYTHONPATH), as it cannot be reached here.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import participant
from helpers.livekit_server import LiveKitServer, wait_for_spare_capacity
from helpers.worker_process import (
    AGENT_DIR,
    PLAIN_CALL_IDS,
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
        livekit_server,
        extra={"AGENT_NAME": AGENT_NAME, "HOME": str(logs), "TMPDIR": str(logs), **PLAIN_CALL_IDS},
    )
    with registered_worker(contract_argv(), env, log_path=logs / "worker.log") as worker:
        assert worker.events("worker_registered")[0]["agent_name"] == AGENT_NAME
        asyncio.run(_scenario(livekit_server, worker))
        worker.wait_for_event("session_ended", TIMEOUT)


def _credentials(server: LiveKitServer, form: str, files: Path) -> dict[str, str]:
    """The key pair as env values (the kubernetesSecret mode) or as files (the GKE stack's
    Secret Manager mount), with the trailing newline a secret stored with `echo` has."""
    if form == "env":
        return {"LIVEKIT_API_KEY": server.api_key, "LIVEKIT_API_SECRET": server.api_secret}
    (files / "api-key").write_text(server.api_key + "\n")
    (files / "api-secret").write_text(server.api_secret + "\n")
    return {"LIVEKIT_API_KEY_FILE": str(files / "api-key"),
            "LIVEKIT_API_SECRET_FILE": str(files / "api-secret")}


@pytest.mark.parametrize("form", ["env", "files"])
def test_call_command_dispatches_by_token_and_reports_the_call(
    livekit_server: LiveKitServer, tmp_path_factory: pytest.TempPathFactory, form: str
) -> None:
    """The post-deploy smoke test (python -m voice_agent.test_call) against the real server: a
    token with a RoomAgentDispatch brings the named agent, which answers with audio, and the
    session ends once the caller hangs up. With the credentials as files, the call proves the
    job process got them too (the framework hands the worker's pair down as env values)."""
    logs = tmp_path_factory.mktemp("test-call-worker")
    credentials = _credentials(livekit_server, form, logs)
    env = worker_env(
        livekit_server,
        extra={"AGENT_NAME": AGENT_NAME, "HOME": str(logs), "TMPDIR": str(logs), **PLAIN_CALL_IDS},
    )
    env = {k: v for k, v in env.items() if k not in ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")}
    room = f"smoke-room-{form}"
    with registered_worker(contract_argv(), {**env, **credentials}, log_path=logs / "worker.log") as worker:
        # a token dispatches once, when its join creates the room: the worker must be able to
        # take it then (helpers.livekit_server.wait_for_spare_capacity)
        wait_for_spare_capacity(worker.metrics_url)
        base = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
        done = subprocess.run(
            [sys.executable, "-m", "voice_agent.test_call", "--url", livekit_server.ws_url,
             "--agent-name", AGENT_NAME, "--room", room, "--listen", "1"],
            capture_output=True, text=True, timeout=120, cwd=AGENT_DIR, env={**base, **credentials},
        )
        print(done.stdout)
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert report["ok"] is True and report["room"] == room
        assert 0 < report["agent_joined_s"] <= report["first_audio_s"]
        assert report["audio_received_s"] > 0 and report["session_end_s"] is not None
        assert worker.events("job_accepted")[0]["room"] == room
        worker.wait_for_event("session_ended", TIMEOUT, room=room)


def test_call_command_without_an_agent_of_that_name_fails_cleanly(livekit_server: LiveKitServer) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "voice_agent.test_call", "--url", livekit_server.ws_url,
         "--agent-name", "nobody-runs-this", "--timeout", "3"],
        capture_output=True, text=True, timeout=60, cwd=AGENT_DIR,
        env={**os.environ, "LIVEKIT_API_KEY": livekit_server.api_key,
             "LIVEKIT_API_SECRET": livekit_server.api_secret},
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"] is False and report["error"] == "no agent joined within 3 s"


@pytest.mark.parametrize("args, env, message", [
    (["--url", "http://x", "--agent-name", "a"], {"LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s"},
     "--url='http://x' is not a LiveKit URL"),
    (["--url", "ws://x", "--agent-name", "a"], {},
     "LIVEKIT_API_KEY is required but neither LIVEKIT_API_KEY_FILE nor LIVEKIT_API_KEY is set"),
    (["--url", "ws://x", "--agent-name", "a", "--timeout", "0"], {"LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s"},
     "allowed (0, 600]"),
])
def test_call_command_refuses_bad_input_in_one_line(args, env, message) -> None:
    done = _test_call(args, env)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_call_command_takes_the_key_pair_from_files_as_the_agent_does(tmp_path) -> None:
    """Where the GKE stack mounts the pair from Secret Manager, the operator points the smoke
    test at the same files: read (only the bad URL is refused), or named with the path."""
    (tmp_path / "api-key").write_text("k\n")
    (tmp_path / "api-secret").write_text("s\n")
    files = {"LIVEKIT_API_KEY_FILE": str(tmp_path / "api-key"),
             "LIVEKIT_API_SECRET_FILE": str(tmp_path / "api-secret")}
    done = _test_call(["--url", "http://x", "--agent-name", "a"], files)
    assert done.returncode == 2 and done.stderr.splitlines() == [
        "test-call: --url='http://x' is not a LiveKit URL: use ws://host:port or wss://host"]
    done = _test_call(["--url", "ws://x", "--agent-name", "a"],
                      {**files, "LIVEKIT_API_KEY_FILE": str(tmp_path / "missing")})
    assert done.returncode == 2 and done.stderr.splitlines() == [
        f"test-call: LIVEKIT_API_KEY_FILE={str(tmp_path / 'missing')!r} cannot be read: no such file; "
        "point it at the mounted secret file (in the GKE stack, the pod's Secret Manager volume)"]


def _test_call(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    return subprocess.run([sys.executable, "-m", "voice_agent.test_call", *args], capture_output=True,
                          text=True, timeout=60, cwd=AGENT_DIR, env={**base, **env})
