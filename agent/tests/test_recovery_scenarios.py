"""Crash recovery against real parts: livekit-server, PostgreSQL, worker pods (PID namespaces),
rtc callers. Each test states what the caller notices. Gemini is the fake (fake_gemini)."""

from __future__ import annotations

import asyncio
import re
import shutil
import time

import pytest

import recovery_pods as rp
from helpers.worker_process import http_get

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare for PID namespaces"),
]


@pytest.fixture(scope="module")
def pods(livekit_server, postgres, tmp_path_factory):
    """Three pods (workers, each PID 1 of its own namespace) sharing one database: after one is
    killed, two survivors' watchers race for its calls."""
    logs = tmp_path_factory.mktemp("pods")
    started = {name: rp.start_pod(rp.pod_env(livekit_server, postgres), logs / f"{name}.log") for name in ("a", "b", "c")}
    try:
        rp.wait_registered(*started.values())
        yield started
    finally:
        for pod in started.values():
            pod.kill()


@pytest.fixture(autouse=True)
def every_pod_running(pods, livekit_server, postgres, tmp_path):
    """Each test starts with all three pods up: the ReplicaSet replaces a killed pod."""
    restarted = []
    for name, pod in list(pods.items()):
        if not pod.running():
            pods[name] = rp.start_pod(rp.pod_env(livekit_server, postgres), tmp_path / f"{name}-again.log")
            restarted.append(pods[name])
    rp.wait_registered(*restarted)


def test_sigkill_of_a_whole_pod_mid_call_costs_seconds_not_the_call(livekit_server, postgres, pods, tmp_path):
    async def scenario():
        caller, serving, before = await rp.answered_call(livekit_server, postgres, pods, "pod-kill")
        try:
            return serving, await rp.kill_and_measure(livekit_server, postgres, pods, caller, "pod-kill",
                                                      before, whole_pod=True)
        finally:
            await caller.leave()

    serving, trial = asyncio.run(scenario())
    print(trial)
    assert trial.seconds is not None, "the caller never heard an agent again"
    assert trial.context_kept, "the replacement did not carry the earlier conversation"
    assert len(trial.agents_after) == 1 and trial.dispatches == 1
    resumed = rp.events({n: p for n, p in pods.items() if n != serving}, "session_resumed", room="pod-kill")
    assert len(resumed) == 1 and resumed[0]["restored_items"] >= 1


def test_sigkill_of_one_job_process_recovers_the_call(livekit_server, postgres, pods, tmp_path):
    """An OOM kill of one call's process: its worker lives on, the call comes back."""
    async def scenario():
        caller, _, before = await rp.answered_call(livekit_server, postgres, pods, "job-kill")
        try:
            return await rp.kill_and_measure(livekit_server, postgres, pods, caller, "job-kill",
                                             before, whole_pod=False)
        finally:
            await caller.leave()

    trial = asyncio.run(scenario())
    print(trial)
    assert trial.seconds is not None and trial.context_kept
    assert len(trial.agents_after) == 1 and trial.dispatches == 1
    assert all(pod.running() for pod in pods.values()), "only the job process was killed"


def test_two_survivors_racing_dispatch_exactly_one_replacement(livekit_server, postgres, pods, tmp_path):
    """Three pods, one killed: both survivors' watchers see the expired lease; one agent joins."""

    async def scenario():
        caller, _, before = await rp.answered_call(livekit_server, postgres, pods, "race")
        try:
            return await rp.kill_and_measure(livekit_server, postgres, pods, caller, "race",
                                             before, whole_pod=True)
        finally:
            await caller.leave()

    trial = asyncio.run(scenario())
    print(trial)
    survivors = [name for name, pod in pods.items() if pod.running()]
    assert len(survivors) == 2
    assert trial.seconds is not None and trial.context_kept
    assert trial.dispatches == 1, "exactly one watcher may re-dispatch"
    assert len(trial.agents_after) == 1


def test_caller_who_leaves_while_the_agent_is_dead_gets_nothing_redispatched(livekit_server, postgres, pods, tmp_path):
    async def scenario():
        caller, serving, _ = await rp.answered_call(livekit_server, postgres, pods, "left")
        victim = pods[serving]
        import os, signal

        os.kill(victim.pid1, signal.SIGKILL)
        # the pod is gone once its PID 1 is reaped (the kernel kills and reaps the whole
        # namespace first); only then may the caller leave, or a still-running job would see
        # the caller go and end the call normally
        await asyncio.to_thread(victim.worker.process.wait, 10)
        assert await rp.db_row(postgres, "left") is not None
        await caller.leave()  # the caller hangs up before anyone could notice the agent died
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not rp.events(pods, "recovery_abandoned", room="left"):
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # a wrong dispatch would show up within this
        return serving, await rp.db_row(postgres, "left")

    serving, row = asyncio.run(scenario())
    assert rp.events(pods, "recovery_abandoned", room="left"), "no watcher examined the dead call"
    assert not rp.events(pods, "recovery_dispatched", room="left")
    assert [n for n, p in pods.items() if any(l.get("room") == "left" for l in p.worker.events("job_accepted"))] == [serving]
    assert row is None, "the abandoned call's checkpoint must be forgotten"


def test_database_down_during_a_call_then_back_never_breaks_it(livekit_server, postgres, pods, tmp_path):
    """The database goes away for longer than a lease: the call goes on (no checkpoint, one log
    line, a metric); when it is back, checkpoints resume and nobody re-dispatches the live call."""
    async def scenario():
        caller, serving, before = await rp.answered_call(livekit_server, postgres, pods, "db-down")
        pod = pods[serving]
        agents = await rp.agents_in_room(livekit_server, "db-down")
        try:
            await asyncio.to_thread(postgres.stop)
            await asyncio.to_thread(pod.worker.wait_for_event, "checkpoint_unavailable", 15.0, room="db-down")
            await asyncio.sleep(3 * 1.5)  # three leases without a database
            during = await rp.agents_in_room(livekit_server, "db-down")
            await asyncio.to_thread(postgres.start)
            await asyncio.to_thread(pod.worker.wait_for_event, "checkpoint_recovered", 15.0, room="db-down")
            await asyncio.sleep(4 * 1.5)  # watchers trust the database again after one lease
            after = await rp.agents_in_room(livekit_server, "db-down")
            row = await rp.db_row(postgres, "db-down")
            return pod, agents, during, after, row, before
        finally:
            if not postgres.running():
                postgres.start()
            await caller.leave()

    pod, agents, during, after, row, before = asyncio.run(scenario())
    assert len(agents) == 1 and during == agents and after == agents, "the same agent served throughout"
    assert not rp.events(pods, "recovery_dispatched", room="db-down")
    assert row is not None and row["job_id"] == before["job_id"], "the live job still owns its checkpoint"
    status, body = http_get(pod.worker.metrics_url)
    assert status == 200
    match = re.search(r"^voice_agent_checkpoint_unavailable_total ([0-9.]+)$", body, re.M)
    assert match and float(match.group(1)) >= 1.0, "the outage must show in the metric"
