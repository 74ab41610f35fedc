"""A live agent is never evicted because its event loop stalled (issue 25).

A job's event loop stalls for seconds under load (1.3-2.1 s measured at load 12-16: pydantic
schema generation and track setup at session start). Its lease used to be renewed on that loop,
so the lease lapsed, another pod's watcher took the row, removed the live agent from the room
and dispatched a second one. Now the lease is renewed by a thread of its own
(recovery/checkpoints.py), and the watcher spares an agent still listed in its room while
either proof of life (lease, room attribute) is current, plus PRESENT_AGENT_GRACE_LEASES
(recovery/watcher.py: zero, and why).

Real PostgreSQL (the module fixture ``postgres``) and, for the watcher, a real livekit-server
with rtc participants; the watcher's clock is injected, so no verdict waits on a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time

import asyncpg
import pytest
from livekit import api, rtc
from prometheus_client import CollectorRegistry

from helpers.participant import join_as_caller, server_api
from voice_agent.env_declarations import default_of
from voice_agent.recovery import store
from voice_agent.recovery.checkpoints import JOB_LOOP_STALL_LIMIT_SECONDS, CheckpointWriter
from voice_agent.recovery.config import RecoverySettings
from voice_agent.recovery.payload import PAYLOAD_VERSION, Checkpoint
from voice_agent.recovery.resume import LIVENESS_ATTRIBUTE
from voice_agent.recovery.telemetry import create_recovery_metrics
from voice_agent.recovery.watcher import PRESENT_AGENT_GRACE_LEASES, RecoveryWatcher, silent_for

pytestmark = pytest.mark.integration

# the production lease: the widest margin a renewing thread can have on a loaded machine
LEASE = float(default_of("AGENT_CHECKPOINT_LEASE_SECONDS"))
SID = "RM_lease"
CALLER = store.caller_hash(SID, "caller-1")


def _settings(dsn: str, lease: float = LEASE) -> RecoverySettings:
    return RecoverySettings(dsn=dsn, lease_seconds=lease, db_timeout_seconds=1)


async def _fresh(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await conn.execute(f"DROP TABLE IF EXISTS {store.TABLE}")
    await store.migrate(conn)
    return conn


def _writer(dsn: str, room: str = "r", job: str = "live", lease: float = LEASE, **kw) -> CheckpointWriter:
    return CheckpointWriter(_settings(dsn, lease), room=room, job_id=job, agent_identity="a",
                            agent_name="", room_sid=SID, callers=(CALLER,), **kw)


async def _first_write(writer: CheckpointWriter) -> None:
    writer.start()
    writer.submit(Checkpoint(chat_ctx={"items": []}, turns=1))

    async def written():
        while not writer.writes:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(written(), 30.0)


def _lease_now(dsn: str, room: str = "r") -> tuple[str, float] | None:
    """Read the lease from another thread (usable while the caller's event loop is blocked)."""
    result: list[tuple[str, float] | None] = []

    async def read():
        conn = await asyncpg.connect(dsn)
        try:
            result.append(await store.lease_holder(conn, room=room))
        finally:
            await conn.close()

    thread = threading.Thread(target=lambda: asyncio.run(read()))
    thread.start()
    thread.join()
    return result[0]


class LeaseSampler:
    """Reads the lease every 0.1 s from its own thread while the test blocks its loop."""

    def __init__(self, dsn: str, room: str = "r") -> None:
        self._dsn, self._room = dsn, room
        self._stop = threading.Event()
        self.samples: list[tuple[str, float] | None] = []
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()))

    async def _run(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            while not self._stop.is_set():
                self.samples.append(await store.lease_holder(conn, room=self._room))
                await asyncio.sleep(0.1)
        finally:
            await conn.close()

    def __enter__(self) -> LeaseSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _lease_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "voice_agent_lease"]


# ------------------------------------------------------------------ the lease outlives a stall
def test_a_job_whose_event_loop_is_blocked_keeps_its_lease(postgres):
    """The job's loop is blocked (time.sleep on it) for two and a half leases: the lease in
    PostgreSQL never runs out and is still this job's when the loop comes back. Before, it was
    renewed on that loop and lapsed one lease into the stall."""

    async def scenario():
        conn = await _fresh(postgres.dsn)
        writer = _writer(postgres.dsn)
        await _first_write(writer)
        renewals = writer.renewals
        with LeaseSampler(postgres.dsn) as sampler:
            time.sleep(2.5 * LEASE)  # blocks this event loop: no task of the job runs
            at_end = _lease_now(postgres.dsn)  # read before the loop runs again
        renewed_while_blocked = writer.renewals - renewals
        await writer.finish(ended_normally=False)
        await conn.close()
        return sampler.samples, at_end, renewed_while_blocked

    samples, at_end, renewed = asyncio.run(scenario())
    assert at_end is not None and at_end[0] == "live" and at_end[1] > 0, f"the lease lapsed: {at_end}"
    assert samples and all(s is not None and s[0] == "live" and s[1] > 0 for s in samples), samples
    assert renewed >= 2, "nothing renewed the lease while the job's loop was blocked"


def test_a_loop_stuck_past_the_stall_limit_stops_renewing_and_a_loop_back_renews_again(postgres, caplog):
    """A loop stuck for good is a dead call: the thread must not keep its lease alive. With a
    stall limit of one lease, a block of the limit plus two leases ends with the lease run out;
    once the loop runs again, the same job renews its own row."""
    lease = 1.5
    limit = lease

    async def scenario():
        conn = await _fresh(postgres.dsn)
        writer = _writer(postgres.dsn, lease=lease, stall_limit_seconds=limit)
        await _first_write(writer)
        time.sleep(limit + 2 * lease)
        at_end = _lease_now(postgres.dsn)

        async def renewed_again():
            while (await store.lease_holder(conn, room="r"))[1] <= 0:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(renewed_again(), 30.0)
        back = await store.lease_holder(conn, room="r")
        await writer.finish(ended_normally=False)
        await conn.close()
        return at_end, back

    at_end, back = asyncio.run(scenario())
    assert at_end is not None and at_end[1] < 0, f"a stuck loop's lease was kept alive: {at_end}"
    assert back[0] == "live"
    assert [r for r in caplog.records if getattr(r, "event", "") == "job_loop_stuck"]


@pytest.mark.parametrize(("since_seen", "stuck"), [
    (JOB_LOOP_STALL_LIMIT_SECONDS - 0.001, False),
    (JOB_LOOP_STALL_LIMIT_SECONDS, False),
    (JOB_LOOP_STALL_LIMIT_SECONDS + 0.001, True),
])
def test_the_stall_limit_boundary(since_seen, stuck):
    now = [1000.0]
    writer = CheckpointWriter(RecoverySettings(dsn="postgresql://x"), room="r", job_id="j",
                              agent_identity="a", agent_name="", clock=lambda: now[0],
                              sealer=_Plain())
    writer._seen()
    now[0] += since_seen
    assert writer._job_loop_stuck() is stuck


class _Plain:
    def seal(self, payload):  # never called: nothing is written
        raise AssertionError


# ------------------------------------------------------------------ the thread ends with the job
def test_the_lease_thread_ends_when_the_writer_finishes(postgres):
    async def scenario():
        conn = await _fresh(postgres.dsn)
        writer = _writer(postgres.dsn)
        await _first_write(writer)
        thread = writer.lease_thread
        alive_before = thread.is_alive()
        await writer.finish(ended_normally=True)
        row = await store.lease_holder(conn, room="r")
        await conn.close()
        return thread, alive_before, row

    thread, alive_before, row = asyncio.run(scenario())
    assert alive_before
    assert not thread.is_alive() and not _lease_threads(), "a lease thread outlived its writer"
    assert row is None, "the normal end removes the row"


def test_the_lease_thread_ends_when_the_job_crashes_without_finishing(postgres):
    """The job's loop ends (an exception out of the job) and nobody calls finish: the thread
    sees the loop gone and ends, and renews nothing from then on."""
    writers: list[CheckpointWriter] = []

    async def job():
        await _fresh(postgres.dsn)
        writer = _writer(postgres.dsn)
        writers.append(writer)
        await _first_write(writer)
        raise RuntimeError("the job crashed")

    with pytest.raises(RuntimeError, match="the job crashed"):
        asyncio.run(job())
    thread = writers[0].lease_thread
    # the thread looks at the job's loop every heartbeat; generous bound, not a timing verdict
    thread.join(30.0)
    assert not thread.is_alive() and not _lease_threads(), "a lease thread outlived its job"


def test_the_lease_thread_ends_when_another_job_owns_the_row(postgres):
    """Superseded (a replacement took the row over): fenced, the thread ends by itself and never
    renews the replacement's lease."""

    async def scenario():
        conn = await _fresh(postgres.dsn)
        writer = _writer(postgres.dsn, lease=1.5)
        await _first_write(writer)
        await conn.execute(f"UPDATE {store.TABLE} SET job_id = 'replacement' WHERE room = 'r'")
        thread = writer.lease_thread
        await asyncio.to_thread(thread.join, 30.0)
        fenced = writer.fenced
        await writer.finish(ended_normally=True)  # must not remove the replacement's row
        holder = await store.lease_holder(conn, room="r")
        await conn.close()
        return thread, fenced, holder

    thread, fenced, holder = asyncio.run(scenario())
    assert fenced and not thread.is_alive()
    assert holder is not None and holder[0] == "replacement"


# ------------------------------------------------------------------ the watcher's grace
GRACE = PRESENT_AGENT_GRACE_LEASES * 1.5
VOUCHED_UNTIL = 2_000_000_000.0  # the agent's liveness attribute (Unix time); exact in binary


@pytest.mark.parametrize(("expired_s", "attribute", "now", "silent"), [
    (0.4, None, VOUCHED_UNTIL, 0.4),  # no attribute: the lease alone
    (100.0, VOUCHED_UNTIL, VOUCHED_UNTIL + 0.25, 0.25),  # the attribute is the later proof
    (0.25, VOUCHED_UNTIL, VOUCHED_UNTIL + 100.0, 0.25),  # the lease is the later proof
    (100.0, VOUCHED_UNTIL, VOUCHED_UNTIL - 5.0, -5.0),  # still vouching
])
def test_silence_is_counted_from_the_later_proof_of_life(expired_s, attribute, now, silent):
    attributes = {} if attribute is None else {LIVENESS_ATTRIBUTE: f"{attribute:.3f}"}
    orphan = store.Orphan("r", "agent", "", expired_s=expired_s)
    assert silent_for(orphan, attributes, now) == pytest.approx(silent)


async def _call(server, room: str, agent: str, *, attributes: dict[str, str] | None):
    """A caller and a connected agent participant (kind agent) in ``room``; the room's SID."""
    caller = await join_as_caller(server, room, "caller-1")
    token = (api.AccessToken(server.api_key, server.api_secret).with_identity(agent).with_kind("agent")
             .with_grants(api.VideoGrants(room_join=True, room=room, can_update_own_metadata=True)))
    if attributes:
        token = token.with_attributes(attributes)
    agent_room = rtc.Room()
    await agent_room.connect(server.ws_url, token.to_jwt())
    sid = str(await caller.room.sid)
    return caller, agent_room, sid


async def _listed(server, room: str) -> set[str]:
    async with server_api(server) as lk:
        response = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
    return {p.identity for p in response.participants}


async def _orphan_row(conn, room: str, agent: str, sid: str, expired_s: float) -> None:
    await store.write(conn, room=room, job_id="stalled-job", agent_identity=agent, agent_name="voice",
                      version=PAYLOAD_VERSION, payload_json=json.dumps({"chat_ctx": {"items": []}}),
                      lease_seconds=30, room_sid=sid, callers=(store.caller_hash(sid, "caller-1"),))
    await conn.execute(f"UPDATE {store.TABLE} SET lease_until = now() - make_interval(secs => $2) "
                       "WHERE room = $1", room, expired_s)


async def _watch(server, postgres, room: str, clock=None, before_pass=None) -> tuple[int, set[str], str | None]:
    """One trusted watcher pass over ``room``: (re-dispatched, agents listed after, claim).
    ``before_pass``: awaited right before that pass."""
    kw = {} if clock is None else {"clock": clock}
    watcher = RecoveryWatcher(_settings(postgres.dsn, 1.5), livekit_url=server.ws_url,
                              api_key=server.api_key, api_secret=server.api_secret,
                              metrics=create_recovery_metrics(CollectorRegistry()), **kw)
    try:
        await watcher.poll_once()
        # the watcher acts only after one lease of database health (watcher._db_trusted): a
        # precondition of the pass below, not part of its verdict
        await asyncio.sleep(1.5)
        if before_pass is not None:
            await before_pass()
        dispatched = await watcher.poll_once()
    finally:
        await watcher.aclose()
    conn = await asyncpg.connect(postgres.dsn)
    claim = await conn.fetchval(f"SELECT claim_token FROM {store.TABLE} WHERE room = $1", room)
    await conn.close()
    return dispatched, await _listed(server, room), claim


@pytest.mark.parametrize(("offset", "evicted"), [(-0.001, False), (0.0, True), (0.001, True)])
def test_a_listed_agent_is_evicted_only_once_silent_for_the_grace(livekit_server, postgres, offset, evicted):
    """The agent is still connected and listed; its lease ran out long ago and its liveness
    attribute vouched until VOUCHED_UNTIL. The watcher's clock stands just before, at and just
    after VOUCHED_UNTIL + grace."""
    room = f"grace-{'before' if offset < 0 else 'at' if offset == 0 else 'after'}"
    agent = f"agent-{room}"

    async def scenario():
        conn = await _fresh(postgres.dsn)
        caller, agent_room, sid = await _call(livekit_server, room, agent,
                                              attributes={LIVENESS_ATTRIBUTE: f"{VOUCHED_UNTIL:.3f}"})
        try:
            await _orphan_row(conn, room, agent, sid, expired_s=3600.0)
            return await _watch(livekit_server, postgres, room, clock=lambda: VOUCHED_UNTIL + GRACE + offset)
        finally:
            await conn.close()
            await agent_room.disconnect()
            await caller.leave()

    dispatched, listed, claim = asyncio.run(scenario())
    if evicted:
        assert dispatched == 1 and agent not in listed and claim is not None
    else:
        assert dispatched == 0 and agent in listed and claim is None, "a connected agent was evicted"


def test_an_agent_no_longer_in_the_room_is_recovered_at_once(livekit_server, postgres):
    """A lease that ran out 10 ms ago and an agent that has left the room: the call is
    re-dispatched at once (a listed agent still vouching stays: the boundary test above)."""
    room, agent = "lapsed-gone", "agent-lapsed-gone"

    async def scenario():
        conn = await _fresh(postgres.dsn)
        caller, agent_room, sid = await _call(livekit_server, room, agent,
                                              attributes={LIVENESS_ATTRIBUTE: f"{VOUCHED_UNTIL:.3f}"})
        try:
            await agent_room.disconnect()
            while agent in await _listed(livekit_server, room):
                await asyncio.sleep(0.05)
            await _orphan_row(conn, room, agent, sid, expired_s=0.01)
            return await _watch(livekit_server, postgres, room, clock=lambda: VOUCHED_UNTIL)
        finally:
            await conn.close()
            with contextlib.suppress(Exception):
                await caller.leave()

    dispatched, listed, claim = asyncio.run(scenario())
    assert dispatched == 1 and claim is not None
