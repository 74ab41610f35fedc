"""A call whose job process died while its worker lives on (an OOM kill of one job process) is
recovered without waiting for the dead job's lease: the worker sees the process exit
(livekit-agents 1.8.9 ProcPool ``process_closed``) and ends that job's lease at once
(recovery/wiring.py, RecoveryWatcher.job_exited).

Real parts: livekit-server, PostgreSQL, two worker pods, an rtc caller; Gemini is the fake. The
lease is long here (20 s, claim 40 s) so that the order of events decides, not a clock: the
replacement is dispatched while the dead job's lease, as stored at the kill, still runs. On code
without the hook nothing can be dispatched before that lease ends."""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest

import recovery_pods as rp

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare for PID namespaces"),
]

LONG_LEASE = {"AGENT_CHECKPOINT_LEASE_SECONDS": "20", "AGENT_RECOVERY_CLAIM_SECONDS": "40"}


@pytest.fixture(scope="module")
def pods(livekit_server, postgres, tmp_path_factory):
    logs = tmp_path_factory.mktemp("pods")
    started = {name: rp.start_pod(rp.pod_env(livekit_server, postgres, LONG_LEASE), logs / f"{name}.log")
               for name in ("a", "b")}
    try:
        rp.wait_registered(*started.values())
        # a watcher acts only after it has seen the database healthy for one lease
        # (RecoveryWatcher._db_trusted): without this the first pass that may act comes a
        # lease after the pods' start, whatever ended the dead job's lease
        time.sleep(float(LONG_LEASE["AGENT_CHECKPOINT_LEASE_SECONDS"]))
        yield started
    finally:
        for pod in started.values():
            pod.kill()


def test_a_dead_job_process_is_recovered_before_its_lease_would_have_run_out(livekit_server, postgres, pods):
    async def scenario():
        caller, serving, before = await rp.answered_call(livekit_server, postgres, pods, "job-exit")
        try:
            trial = await rp.kill_and_measure(livekit_server, postgres, pods, caller, "job-exit",
                                              before, whole_pod=False, timeout=25.0)
            return serving, before, trial
        finally:
            await caller.leave()

    serving, before, trial = asyncio.run(scenario())
    print(trial)
    assert trial.seconds is not None, "the caller heard no replacement while the dead job's lease ran"
    assert trial.context_kept and len(trial.agents_after) == 1 and trial.dispatches == 1
    ended = rp.events({serving: pods[serving]}, "job_lease_ended", room="job-exit")
    assert len(ended) == 1 and ended[0]["job_id"] == before["job_id"]
    # the re-dispatch came while the lease the dead job had renewed was still running
    assert trial.phases["dispatched"] < trial.phases["lease_end"]
    assert all(pod.running() for pod in pods.values()), "only the job process was killed"
