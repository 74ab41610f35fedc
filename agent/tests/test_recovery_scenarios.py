"""Crash recovery against real parts: livekit-server, PostgreSQL, worker pods (PID namespaces),
rtc callers. Each test states what the caller notices. Gemini is the fake (fake_gemini)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator

import pytest

import recovery_pods as rp
from helpers.postgres import PostgresServer, start_postgres

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare for PID namespaces"),
]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def pods(livekit_server, postgres, tmp_path_factory):
    """Two pods (two workers, each PID 1 of its own namespace) sharing one database."""
    logs = tmp_path_factory.mktemp("pods")
    started = {name: rp.start_pod(rp.pod_env(livekit_server, postgres), logs / f"{name}.log") for name in ("a", "b")}
    try:
        rp.wait_registered(*started.values())
        yield started
    finally:
        for pod in started.values():
            pod.kill()


def restart_dead(pods, livekit_server, postgres, tmp_path):
    """Keep two pods alive between tests (the Deployment's ReplicaSet would)."""
    for name, pod in list(pods.items()):
        if not pod.running():
            pods[name] = rp.start_pod(rp.pod_env(livekit_server, postgres), tmp_path / f"{name}-again.log")
            rp.wait_registered(pods[name])


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
    survivor = next(p for n, p in pods.items() if n != serving)
    resumed = survivor.worker.events("session_resumed")
    assert resumed and resumed[-1]["room"] == "pod-kill" and resumed[-1]["restored_items"] >= 1
    restart_dead(pods, livekit_server, postgres, tmp_path)
