"""The checkpoint table's guarantees, against a real PostgreSQL server (helpers/postgres.py).

These are the properties the watcher and the jobs rely on; each test names the failure it
guards against."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import asyncpg
import pytest

from helpers.postgres import PostgresServer, start_postgres
from voice_agent.recovery import store
from voice_agent.recovery.checkpoints import CheckpointWriter
from voice_agent.recovery.config import RecoverySettings
from voice_agent.recovery.payload import PAYLOAD_VERSION, Checkpoint, read_payload

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.destroy()


def run(coro):
    return asyncio.run(coro)


async def fresh(pg: PostgresServer) -> asyncpg.Connection:
    conn = await asyncpg.connect(pg.dsn)
    await conn.execute(f"DROP TABLE IF EXISTS {store.TABLE}")
    await store.migrate(conn)
    return conn


async def put(conn, room="r", job="job-1", lease=30.0, payload=None) -> bool:
    return await store.write(conn, room=room, job_id=job, agent_identity=f"agent-{job}", agent_name="",
                             version=PAYLOAD_VERSION, payload=payload or {"chat_ctx": {"items": []}},
                             lease_seconds=lease)


async def expire(conn, room="r"):
    await conn.execute(f"UPDATE {store.TABLE} SET lease_until = now() - interval '1 second' WHERE room = $1", room)


def test_migrations_are_idempotent_under_concurrent_pods(pg):
    """Every pod migrates at start; ten at once must neither fail nor duplicate anything."""
    async def scenario():
        (await fresh(pg)).terminate()
        conns = [await asyncpg.connect(pg.dsn) for _ in range(10)]
        await asyncio.gather(*(store.migrate(c) for c in conns))
        await store.migrate(conns[0])
        count = await conns[0].fetchval("SELECT count(*) FROM pg_indexes WHERE tablename = $1", store.TABLE)
        for c in conns:
            await c.close()
        return count

    assert run(scenario()) == 3  # primary key + lease + updated indexes


def test_exactly_one_of_many_concurrent_claims_wins(pg):
    """Survivors noticing the same dead call at once: one re-dispatch, never two."""
    async def scenario():
        conn = await fresh(pg)
        await put(conn)
        await expire(conn)
        conns = [await asyncpg.connect(pg.dsn) for _ in range(8)]
        results = await asyncio.gather(*(store.claim(c, room="r", token=f"t{i}", claim_seconds=10) for i, c in enumerate(conns)))
        for c in conns:
            await c.close()
        return [r for r in results if r is not None]

    winners = run(scenario())
    assert len(winners) == 1 and winners[0].recoveries == 1


def test_live_lease_cannot_be_claimed_and_expired_one_can(pg):
    async def scenario():
        conn = await fresh(pg)
        await put(conn, lease=30)
        live = await store.claim(conn, room="r", token="t", claim_seconds=10)
        await expire(conn)
        dead = await store.claim(conn, room="r", token="t", claim_seconds=10)
        return live, dead

    live, dead = run(scenario())
    assert live is None and dead is not None


def test_a_late_job_from_an_expired_claim_cannot_take_the_room(pg):
    """A slow dispatch whose claim expired and was re-claimed must not add a second agent."""
    async def scenario():
        conn = await fresh(pg)
        await put(conn)
        await expire(conn)
        assert await store.claim(conn, room="r", token="old", claim_seconds=10)
        await conn.execute(f"UPDATE {store.TABLE} SET claim_until = now() - interval '1 second'")
        assert await store.claim(conn, room="r", token="new", claim_seconds=10)
        late = await store.take_over(conn, room="r", job_id="job-late", agent_identity="a", token="old", lease_seconds=5)
        current = await store.take_over(conn, room="r", job_id="job-2", agent_identity="b", token="new", lease_seconds=5)
        return late, current

    late, current = run(scenario())
    assert late is None and current is not None


def test_writes_are_fenced_on_the_owner(pg):
    """A job given up for dead (e.g. partitioned) cannot overwrite its replacement's state."""
    async def scenario():
        conn = await fresh(pg)
        await put(conn, job="job-1", payload={"chat_ctx": {"items": []}, "turns": 1})
        await expire(conn)
        await store.claim(conn, room="r", token="t", claim_seconds=10)
        await store.take_over(conn, room="r", job_id="job-2", agent_identity="b", token="t", lease_seconds=5)
        old_write = await put(conn, job="job-1", payload={"chat_ctx": {"items": []}, "turns": 99})
        old_renew = await store.renew(conn, room="r", job_id="job-1", lease_seconds=5)
        old_remove = await store.remove(conn, room="r", job_id="job-1")
        turns = json.loads(await conn.fetchval(f"SELECT payload FROM {store.TABLE}"))["turns"]
        return old_write, old_renew, old_remove, turns

    assert run(scenario()) == (False, False, False, 1)


def test_adoption_without_a_token_waits_for_the_lease(pg):
    """LiveKit Cloud restarts a job by itself: it adopts the checkpoint only once the dead job's
    lease ran out, never a live call's."""
    async def scenario():
        conn = await fresh(pg)
        await put(conn)
        early = await store.take_over(conn, room="r", job_id="job-2", agent_identity="b", token=None, lease_seconds=5)
        await expire(conn)
        late = await store.take_over(conn, room="r", job_id="job-2", agent_identity="b", token=None, lease_seconds=5)
        return early, late

    early, late = run(scenario())
    assert early is None and late is not None


@pytest.mark.parametrize(("age_s", "swept"), [(99, False), (101, True)])
def test_sweep_deletes_only_rows_older_than_the_retention(pg, age_s, swept):
    async def scenario():
        conn = await fresh(pg)
        await put(conn)
        await conn.execute(f"UPDATE {store.TABLE} SET updated_at = now() - make_interval(secs => $1)", float(age_s))
        return await store.sweep(conn, retention_seconds=100)

    assert run(scenario()) == int(swept)


def test_a_row_written_by_the_previous_release_is_read(pg):
    """Rollouts run two releases side by side: version-1 rows (and rows with keys a newer
    release added) must be readable."""
    async def scenario():
        conn = await fresh(pg)
        v1 = {"v": 1, "chat_ctx": {"items": [{"id": "m1", "type": "message", "role": "user", "content": ["hi"]}]},
              "agent": "VoiceAssistant", "turns": 2, "saved_at": 1.0, "added_by_a_newer_release": {"x": 1}}
        await conn.execute(
            f"INSERT INTO {store.TABLE} (room, job_id, payload_version, payload, lease_until) "
            "VALUES ('r', 'old', 1, $1::jsonb, now() - interval '1 second')", json.dumps(v1))
        stored = await store.take_over(conn, room="r", job_id="new", agent_identity="n", token=None, lease_seconds=5)
        return read_payload(stored.payload_version, stored.payload)

    checkpoint = run(scenario())
    assert checkpoint.turns == 2 and checkpoint.chat_ctx["items"][0]["id"] == "m1"


def test_the_writer_degrades_and_recovers_when_the_database_goes_away(pg, caplog):
    """Database down: submit() never blocks or raises, one line per outage; back: it writes."""
    settings = RecoverySettings(dsn=pg.dsn, lease_seconds=1.5, db_timeout_seconds=0.5)

    async def scenario():
        (await fresh(pg)).terminate()
        writer = CheckpointWriter(settings, room="w", job_id="job-w", agent_identity="a", agent_name="")
        writer.start()
        writer.submit(Checkpoint(chat_ctx={"items": []}, turns=1))
        for _ in range(40):
            if writer.writes:
                break
            await asyncio.sleep(0.05)
        first = writer.writes
        await asyncio.to_thread(pg.stop)
        for turn in range(2, 6):
            writer.submit(Checkpoint(chat_ctx={"items": []}, turns=turn))  # must not block
            await asyncio.sleep(0.3)
        await asyncio.to_thread(pg.start)
        for _ in range(60):
            if writer.writes > first:
                break
            await asyncio.sleep(0.1)
        conn = await asyncpg.connect(pg.dsn)
        turns = json.loads(await conn.fetchval(f"SELECT payload FROM {store.TABLE} WHERE room = 'w'"))["turns"]
        await writer.finish(ended_normally=False)
        await conn.close()
        return first, writer.writes, turns

    first, total, turns = run(scenario())
    events = [r.event for r in caplog.records if getattr(r, "event", "").startswith("checkpoint_")]
    assert first == 1 and total == 2
    assert turns == 5, "latest wins: the newest snapshot is written, the superseded ones never"
    assert events.count("checkpoint_unavailable") == 1 and events.count("checkpoint_recovered") == 1


def test_a_taken_over_lease_is_renewed_before_the_first_snapshot(pg):
    """A replacement job can need longer than one lease to start its session; if its lease
    lapsed meanwhile, a watcher would dispatch a second replacement (seen in the bench)."""
    settings = RecoverySettings(dsn=pg.dsn, lease_seconds=1.5, db_timeout_seconds=1)

    async def scenario():
        conn = await fresh(pg)
        await put(conn, job="dead")
        await expire(conn)
        assert await store.claim(conn, room="r", token="t", claim_seconds=10)
        writer = CheckpointWriter(settings, room="r", job_id="new", agent_identity="a", agent_name="")
        assert await writer.take_over("t") is not None
        writer.start()
        await asyncio.sleep(3 * 1.5)  # three leases, no snapshot submitted
        holder = await store.lease_holder(conn, room="r")
        fresh_writer = CheckpointWriter(settings, room="other", job_id="j", agent_identity="b", agent_name="")
        fresh_writer.start()
        await asyncio.sleep(1.2)  # heartbeats before a new call's first snapshot
        fenced = (writer.fenced, fresh_writer.fenced)
        await writer.finish(ended_normally=False)
        await fresh_writer.finish(ended_normally=False)
        await conn.close()
        return holder, fenced

    holder, fenced = run(scenario())
    assert holder is not None and holder[0] == "new" and holder[1] > 0, "the lease lapsed"
    assert fenced == (False, False)
