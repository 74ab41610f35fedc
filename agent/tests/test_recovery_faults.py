"""Crash recovery under faults that must never hurt a live call nor hand one caller's
conversation to another. Real livekit-server, real PostgreSQL, real worker pods (PID
namespaces), the real livekit-plugins-google plugin against the Live API stand-in
(tests/fakes/gemini_live.py; only Google is imitated), rtc callers.

Leases are scaled for the tests (recovery_pods.TEST_RECOVERY_ENV: lease 1.5 s, poll 0.25 s)."""

from __future__ import annotations

import asyncio
import re
import shutil
import time

import pytest

import recovery_pods as rp
from fakes import google_stand_ins
from fakes.gemini_live import Behaviour
from helpers.talking_caller import join_talking_caller
from helpers.worker_process import http_get

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare for PID namespaces"),
]

LEASE = float(rp.TEST_RECOVERY_ENV["AGENT_CHECKPOINT_LEASE_SECONDS"])
# every reply after the greeting carries a NUL in its transcript (PostgreSQL jsonb refuses it)
PLANTED = "\x00"


@pytest.fixture(scope="module")
def gemini(tmp_path_factory):
    with google_stand_ins(tmp_path_factory.mktemp("gemini"), Behaviour(transcript_suffix=PLANTED, transcript_suffix_after=1)) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def db_paths(postgres):
    """Each pod reaches PostgreSQL through its own relay (its Auth Proxy sidecar in GKE)."""
    return {name: rp.DbPath(postgres) for name in ("a", "b")}


@pytest.fixture(scope="module")
def pods(livekit_server, postgres, gemini, db_paths, tmp_path_factory):
    """Two pods: the one serving the call, and another whose watcher would evict it if its lease
    lapsed (each pod's own watcher would too)."""
    _, google_env = gemini
    logs = tmp_path_factory.mktemp("pods")
    started = {name: rp.start_pod(rp.pod_env(livekit_server, postgres,
                                             {**google_env, "HOME": str(logs),
                                              "AGENT_CHECKPOINT_DSN": db_paths[name].dsn},
                                             fake_gemini=False), logs / f"{name}.log")
               for name in ("a", "b")}
    try:
        rp.wait_registered(*started.values())
        yield started
    finally:
        for pod in started.values():
            pod.kill()


def recoveries(pod, result: str) -> float:
    status, body = http_get(pod.worker.metrics_url)
    assert status == 200
    match = re.search(rf'^voice_agent_recoveries_total{{result="{result}"}} ([0-9.]+)$', body, re.M)
    return float(match.group(1)) if match else 0.0


async def _planted(live) -> None:
    while True:
        sessions, _ = live.snapshot()
        if any(len(session.replies) >= 2 for session in sessions):
            return
        await asyncio.sleep(0.1)


def test_a_nul_in_a_live_calls_transcript_never_costs_the_agent(livekit_server, postgres, gemini, pods):
    """The model's transcript carries U+0000 from its second reply on. Before, the snapshot was
    refused (UntranslatableCharacterError), the heartbeat stopped renewing, and after one lease
    a watcher removed the live agent and dispatched another. Now the call keeps the same agent
    for more than three leases and its checkpoint keeps the conversation."""
    room = "nul-call"

    async def scenario():
        caller = await join_talking_caller(livekit_server, room, f"caller-{room}")
        try:
            await asyncio.wait_for(caller.agent_joined.wait(), 60)
            first = await rp.wait_row(postgres, room, lambda r: len(rp.item_ids(r)) >= 1, 60.0,
                                      "the greeting")
            # the caller talks; the model's next reply plants the NUL
            await asyncio.wait_for(_planted(gemini[0]), 60)
            seen: set[tuple[str, ...]] = set()
            deadline = time.monotonic() + 4 * LEASE
            while time.monotonic() < deadline:
                seen.add(tuple(sorted(await rp.agents_in_room(livekit_server, room))))
                await asyncio.sleep(0.25)
            last = await rp.db_row(postgres, room)
            return first, last, seen
        finally:
            await caller.leave()

    first, last, seen = asyncio.run(scenario())
    assert len(seen) == 1 and len(next(iter(seen))) == 1, f"the agent changed during the call: {seen}"
    assert not rp.events(pods, "recovery_dispatched", room=room)
    assert last is not None and last["job_id"] == first["job_id"], "the live job lost its row"
    texts = [part for item in last["payload"]["chat_ctx"]["items"] for part in item.get("content", [])
             if isinstance(part, str)]
    assert any("\ufffd" in text for text in texts), "the planted NUL's message was not kept"


def test_the_pods_own_database_path_failing_never_costs_the_agent(livekit_server, postgres, pods, db_paths):
    """The serving pod's own path to the database fails (its Auth Proxy sidecar, say) while the
    database is healthy for the other pod: the call's lease runs out in the database, but the
    agent still vouches for itself in the room, so the other pod's watcher leaves it alone. The
    path comes back: the same job renews its own row."""
    room = "own-path"

    async def scenario():
        caller = await join_talking_caller(livekit_server, room, f"caller-{room}")
        try:
            await asyncio.wait_for(caller.agent_joined.wait(), 60)
            before = await rp.wait_row(postgres, room, lambda r: len(rp.item_ids(r)) >= 1, 60.0, "the greeting")
            serving = rp.pod_serving(pods, room)
            other = next(name for name in pods if name != serving)
            agents = await rp.agents_in_room(livekit_server, room)
            db_paths[serving].cut()
            try:
                await asyncio.to_thread(pods[serving].worker.wait_for_event, "checkpoint_unavailable", 15.0,
                                        room=room)
                seen: set[tuple[str, ...]] = set()
                deadline = time.monotonic() + 4 * LEASE
                while time.monotonic() < deadline:
                    seen.add(tuple(sorted(await rp.agents_in_room(livekit_server, room))))
                    await asyncio.sleep(0.25)
                skipped = recoveries(pods[other], "skipped_agent_alive")
            finally:
                db_paths[serving].restore()
            await asyncio.to_thread(pods[serving].worker.wait_for_event, "checkpoint_recovered", 20.0, room=room)
            after = await rp.wait_row(postgres, room, lambda r: r["job_id"] == before["job_id"], 10.0,
                                      "the same job's row")
            return agents, seen, skipped, before, after
        finally:
            await caller.leave()

    agents, seen, skipped, before, after = asyncio.run(scenario())
    assert len(agents) == 1 and seen == {tuple(agents)}, f"the agent changed: {agents} -> {seen}"
    assert skipped >= 1, "the other pod's watcher never looked at the expired lease"
    assert not rp.events(pods, "recovery_dispatched", room=room)
    assert after["job_id"] == before["job_id"]


def test_a_resumed_call_continues_its_gemini_session_through_the_handle(livekit_server, postgres, gemini, pods):
    """The job dies after Gemini issued a handle covering the whole stored conversation: the
    replacement resumes that Gemini session with it (public RealtimeModel(session_resumption=))
    and replays nothing on top of it, so Gemini's history holds no turn twice."""
    room = "handle-call"
    live, _ = gemini

    def covered(row) -> bool:
        payload = row["payload"]
        return bool(payload.get("gemini_handle")) and set(rp.item_ids(row)) <= set(payload.get("gemini_handle_items") or [])

    async def scenario():
        caller = await join_talking_caller(livekit_server, room, f"caller-{room}")
        try:
            await asyncio.wait_for(caller.agent_joined.wait(), 60)
            await rp.wait_row(postgres, room, lambda r: len(rp.item_ids(r)) >= 3, 60.0, "two answered turns")
            caller.talking = False  # quiet, so Gemini's last handle covers the whole conversation
            before = await rp.wait_row(postgres, room, covered, 30.0, "a handle covering every item")
            trial = await rp.kill_and_measure(livekit_server, postgres, pods, caller, room, before, whole_pod=False)
            return before, trial
        finally:
            await caller.leave()

    before, trial = asyncio.run(scenario())
    assert trial.seconds is not None and trial.context_kept, trial
    sessions, connections = live.snapshot()
    handle = before["payload"]["gemini_handle"]
    resumed = [c for c in connections if c.resumed_from == handle and c.ready_at is not None]
    assert resumed, "the replacement did not resume Gemini's session with the stored handle"
    # the plugin may reconnect (GoAway, a setting changed before it connected) and so resume
    # more than once; every connection of the resumed session from then on counts
    session = next(s for s in sessions if s.id == resumed[0].session_id)
    later = [c for c in connections if c.session_id == session.id and c.opened_at >= resumed[0].opened_at]
    # the restored conversation, as the checkpoint held it (the model's transcripts); replayed,
    # the plugin would send them again as text turns (to_provider_format). The "." user turn
    # and the resume instructions of generate_reply are new turns, not history.
    stored = {_plain(part) for item in before["payload"]["chat_ctx"]["items"] if item.get("type") == "message"
              for part in item.get("content", []) if isinstance(part, str) and _plain(part)}
    assert len(stored) >= 2, f"the checkpoint held too little conversation to tell a replay: {stored}"
    sent_after = [_plain(text) for c in later for text in c.client_texts]
    assert sent_after, "the replacement sent Gemini nothing (not even its resume instructions)"
    replayed = [text for text in sent_after if any(old in text for old in stored)]
    assert replayed == [], f"history sent again on top of the handle: {replayed}"
    assert session.not_resumable_updates >= 1, "the stand-in never marked a generation not resumable"
    [line] = rp.events(pods, "session_resumed", room=room)
    assert line["gemini_handle"] is True


def _plain(text: str) -> str:
    """Transcript text without the planted NUL (stored as U+FFFD), so stored and sent compare."""
    return text.replace(PLANTED, "").replace("\ufffd", "").strip()
