"""A job whose memory runs away is killed by the framework; the other call on the worker goes on.

Real worker (the contract command), real livekit-server, real rtc callers, the real Gemini
plugin against the network stand-ins of tests/fakes. The worker runs under a container-like
memory limit (a cgroup of its own, as a pod's container) when this machine allows it, so
without AGENT_JOB_MEMORY_LIMIT_MB the runaway job would take the whole container, i.e. both
calls. The runaway is injected at the one seam tests use (voice_agent.model.build_realtime_model,
as tests/fake_gemini does): in the room named "runaway-*" the job process allocates 40 MB/s.
"""

from __future__ import annotations

import asyncio
import os
import textwrap
import time
from pathlib import Path

import pytest
from fakes import google_stand_ins
from fakes.gemini_live import REPLY_HZ, Behaviour
from helpers import participant
from helpers.livekit_server import LiveKitServer
from helpers.talking_caller import join_talking_caller
from helpers.worker_process import contract_argv, registered_worker, worker_env

pytestmark = pytest.mark.integration

JOB_LIMIT_MB = 400
JOB_WARN_MB = 250
# What the "container" may use: the worker, the forkserver, an idle process, two calls and
# one job at its kill size fit (about 500 + 2 x 70 + 400 MiB, k8s/data/capacity-measured.json);
# a job growing on without a kill does not.
CONTAINER_LIMIT_MI = 1400
# livekit-agents 1.8.9 ipc/supervised_proc.py: logged by the memory monitor just before the kill
KILL_MESSAGE = "job process exceeded memory limit, killing it"

HOG = '''
"""TEST ONLY (written by test_admission_memory.py): a job in a runaway-* room leaks memory."""
import importlib.abc, sys, threading, time

SEAM = "voice_agent.model"

def _grow():
    hoard = []
    while True:
        hoard.append(b"\\x01" * (20 * 1024 * 1024))  # written, so the pages are really used
        time.sleep(0.5)

def _patch(module):
    original = module.build_realtime_model
    def build_realtime_model(settings):
        from livekit.agents import get_job_context
        ctx = get_job_context(required=False)
        if ctx is not None and ctx.job.room.name.startswith("runaway"):
            threading.Thread(target=_grow, name="runaway", daemon=True).start()
        return original(settings)
    module.build_realtime_model = build_realtime_model

class _Loader(importlib.abc.Loader):
    def __init__(self, wrapped):
        self._wrapped = wrapped
    def create_module(self, spec):
        return self._wrapped.create_module(spec)
    def exec_module(self, module):
        self._wrapped.exec_module(module)
        _patch(module)

class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != SEAM:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = getattr(finder, "find_spec", lambda *a: None)(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader)
                return spec
        return None

sys.meta_path.insert(0, _Finder())
'''


def memory_cgroup_argv(name: str, limit_mi: int, argv: list[str]) -> tuple[list[str], Path | None]:
    """Wrap argv so it runs in a memory cgroup of its own (v2 or v1), or unchanged if the
    machine does not allow it (not root, no memory controller)."""
    root = Path("/sys/fs/cgroup")
    if os.geteuid() != 0:
        return argv, None
    if (root / "cgroup.controllers").exists():
        group = root / name
    elif (root / "memory" / "memory.limit_in_bytes").exists():
        own = next(line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
                   if "memory" in line.split(":", 2)[1].split(","))
        group = root / "memory" / own.lstrip("/") / name
    else:
        return argv, None
    group.mkdir()
    limit_file = "memory.max" if (root / "cgroup.controllers").exists() else "memory.limit_in_bytes"
    (group / limit_file).write_text(str(limit_mi * 2**20))
    return ["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh", *argv], group


def test_runaway_job_is_killed_and_the_other_call_goes_on(
    livekit_server: LiveKitServer, tmp_path: Path
) -> None:
    """Guards against a job's memory blow-up OOM-killing the container (every call on the pod,
    DESIGN 7.6): the framework must kill that one job process at AGENT_JOB_MEMORY_LIMIT_MB."""
    hog_dir = tmp_path / "hog"
    hog_dir.mkdir()
    (hog_dir / "sitecustomize.py").write_text(textwrap.dedent(HOG))
    argv, group = memory_cgroup_argv(f"admission-test-{os.getpid()}", CONTAINER_LIMIT_MI, contract_argv())
    try:
        with google_stand_ins(tmp_path, Behaviour()) as (_live, google_env):
            env = worker_env(livekit_server, fake_gemini=False, extra={
                "HOME": str(tmp_path), "TMPDIR": str(tmp_path), "PYTHONPATH": str(hog_dir),
                **google_env,
                "AGENT_SILENCE_TIMEOUT_SECONDS": "3600",
                "AGENT_JOB_MEMORY_LIMIT_MB": str(JOB_LIMIT_MB),
                "AGENT_JOB_MEMORY_WARN_MB": str(JOB_WARN_MB),
            })
            with registered_worker(argv, env, log_path=tmp_path / "worker.log") as worker:
                heard_before, heard_after, runaway_ended = asyncio.run(_two_calls(livekit_server, worker))
                assert worker.process.poll() is None, "the worker died with the runaway job"
                killed = worker.messages(KILL_MESSAGE)
                assert killed, worker.tail()
                assert killed[0]["memory_usage_mb"] > JOB_LIMIT_MB
                warned = [line for line in worker.lines if "above the warning threshold" in line.get("message", "")]
                assert warned, "the warning threshold should be crossed before the kill"
                steady = [line for line in worker.events("session_started") if line.get("room") == "steady-1"]
                assert steady and not [
                    line for line in worker.events("session_ended")
                    if line.get("session_id") == steady[0]["session_id"]
                ], "the steady call ended"
                assert heard_after > heard_before, "the steady caller heard no reply after the kill"
                assert runaway_ended, "the runaway call's agent should be gone"
    finally:
        if group is not None:
            for _ in range(50):
                try:
                    group.rmdir()
                    break
                except OSError:
                    time.sleep(0.2)


async def _two_calls(server: LiveKitServer, worker) -> tuple[int, int, bool]:
    await participant.create_room(server, "steady-1")
    steady = await join_talking_caller(server, "steady-1", "caller-steady")
    await asyncio.wait_for(steady.agent_joined.wait(), 30)
    await participant.create_room(server, "runaway-1")
    runaway = await join_talking_caller(server, "runaway-1", "caller-runaway")
    try:
        await asyncio.wait_for(runaway.agent_joined.wait(), 30)
        # 400 MB at 40 MB/s plus one 5 s memory sample: about 15 s
        await asyncio.to_thread(worker.wait_for_message, KILL_MESSAGE, 60.0)
        heard_before = len(steady.heard_near(REPLY_HZ))
        # a few of the steady caller's turns (2 s each) after the kill
        await asyncio.sleep(8)
        heard_after = len(steady.heard_near(REPLY_HZ))
        agents = await participant.list_participant_kinds(server, "runaway-1")
        runaway_ended = not any(kind == 4 for kind in agents.values())  # ParticipantInfo.Kind.AGENT
        return heard_before, heard_after, runaway_ended
    finally:
        await steady.leave()
        await runaway.leave()
