"""The checkpoint table's guarantees, against a real PostgreSQL server (helpers/postgres.py).

These are the properties the watcher and the jobs rely on; each test names the failure it
guards against."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from helpers.postgres import PostgresServer, start_postgres
from voice_agent.recovery import store
from voice_agent.recovery.checkpoints import CheckpointWriter
from voice_agent.recovery.config import RecoverySettings
from voice_agent.recovery.payload import PAYLOAD_VERSION, Checkpoint, read_payload

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


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


SID = "RM_call1"
CALLER = store.caller_hash(SID, "caller-1")


async def put(conn, room="r", job="job-1", lease=30.0, payload=None, room_sid=SID, callers=(CALLER,)) -> bool:
    return await store.write(conn, room=room, job_id=job, agent_identity=f"agent-{job}", agent_name="",
                             version=PAYLOAD_VERSION,
                             payload_json=json.dumps(payload or {"chat_ctx": {"items": []}}),
                             lease_seconds=lease, room_sid=room_sid, callers=callers)


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
        late = await store.take_over(conn, room="r", job_id="job-late", agent_identity="a", token="old", lease_seconds=5, room_sid=SID)
        current = await store.take_over(conn, room="r", job_id="job-2", agent_identity="b", token="new", lease_seconds=5, room_sid=SID)
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
        await store.take_over(conn, room="r", job_id="job-2", agent_identity="b", token="t", lease_seconds=5, room_sid=SID)
        old_write = await put(conn, job="job-1", payload={"chat_ctx": {"items": []}, "turns": 99})
        old_renew = await store.renew(conn, room="r", job_id="job-1", lease_seconds=5)
        old_remove = await store.remove(conn, room="r", job_id="job-1")
        turns = json.loads(await conn.fetchval(f"SELECT payload FROM {store.TABLE}"))["turns"]
        return old_write, old_renew, old_remove, turns

    assert run(scenario()) == (False, False, False, 1)


def test_a_job_whose_process_exited_has_its_lease_ended_at_once_and_no_other(pg):
    """The worker saw the job's process exit: that job's lease ends now (claimable by the next
    pass); another room's live lease, and a replacement that already took the row over, are
    untouched; a lease already run out is not moved later."""
    async def scenario():
        conn = await fresh(pg)
        await put(conn, room="r", job="job-1", lease=60)
        await put(conn, room="other", job="job-9", lease=60)
        before = await store.claim(conn, room="r", token="t0", claim_seconds=10)
        ended = await store.end_lease(conn, room="r", job_id="job-1")
        orphans = [o.room for o in await store.orphans(conn)]
        again = await store.end_lease(conn, room="r", job_id="job-1")  # already ended: stays ended
        still_orphan = [o.room for o in await store.orphans(conn)]
        # a replacement takes the row over; the dead job's worker reports late: nothing changes
        assert await store.claim(conn, room="r", token="t", claim_seconds=10)
        assert await store.take_over(conn, room="r", job_id="job-2", agent_identity="b", token="t",
                                     lease_seconds=60, room_sid=SID)
        late = await store.end_lease(conn, room="r", job_id="job-1")
        replacement_live = await store.claim(conn, room="r", token="t2", claim_seconds=0.001)
        other_live = await store.claim(conn, room="other", token="t3", claim_seconds=10)
        missing = await store.end_lease(conn, room="nowhere", job_id="job-1")
        return before, ended, orphans, again, still_orphan, late, replacement_live, other_live, missing

    before, ended, orphans, again, still_orphan, late, replacement_live, other_live, missing = run(scenario())
    assert before is None, "the lease was live before the process exited"
    assert ended == "agent-job-1" and orphans == ["r"]
    assert again == "agent-job-1" and still_orphan == ["r"]
    assert late is None and replacement_live is None, "a late report must not end the replacement's lease"
    assert other_live is None and missing is None


def test_a_worker_that_cannot_reach_the_database_leaves_the_lease_to_run_out(pg, caplog):
    """RecoveryWatcher.job_exited: with the database reachable it ends the dead job's lease;
    with it unreachable it says so in one line, never raises, and the lease is untouched."""
    from voice_agent.recovery.watcher import RecoveryWatcher

    def watcher(dsn: str) -> RecoveryWatcher:
        # a generous timeout: the verdict must not depend on how busy the machine is (port 1
        # refuses at once)
        settings = RecoverySettings(dsn=dsn, lease_seconds=60, db_timeout_seconds=10)
        return RecoveryWatcher(settings, livekit_url="ws://127.0.0.1:1", api_key="k", api_secret="s",
                               redispatch=False)

    async def scenario():
        conn = await fresh(pg)
        await put(conn, room="r", job="job-1", lease=60)
        unreachable = await watcher(pg.dsn.replace(f":{pg.port}/", ":1/")).job_exited("r", "job-1")
        live_after_failure = not [o.room for o in await store.orphans(conn)]
        ended = await watcher(pg.dsn).job_exited("r", "job-1")
        no_row = await watcher(pg.dsn).job_exited("r", "job-other")
        return unreachable, live_after_failure, ended, [o.room for o in await store.orphans(conn)], no_row

    with caplog.at_level("WARNING"):
        unreachable, live_after_failure, ended, orphans, no_row = run(scenario())
    assert unreachable is False and live_after_failure
    assert sum("job_lease_end_failed" == getattr(r, "event", None) for r in caplog.records) == 1
    assert ended is True and orphans == ["r"] and no_row is False


def test_adoption_without_a_token_waits_for_the_lease(pg):
    """LiveKit Cloud restarts a job by itself: it adopts the checkpoint only once the dead job's
    lease ran out, never a live call's."""
    async def scenario():
        conn = await fresh(pg)
        await put(conn)
        early = await store.take_over(conn, room="r", job_id="job-2", agent_identity="b", token=None,
                                      lease_seconds=5, room_sid=SID, callers=(CALLER,))
        await expire(conn)
        late = await store.take_over(conn, room="r", job_id="job-2", agent_identity="b", token=None,
                                     lease_seconds=5, room_sid=SID, callers=(CALLER,))
        return early, late

    early, late = run(scenario())
    assert early is None and late is not None


@pytest.mark.parametrize(("room_sid", "callers", "adopted"), [
    (SID, (CALLER,), True),  # the same call restarted (LiveKit Cloud)
    ("RM_other", (store.caller_hash("RM_other", "caller-1"),), False),  # the name reused later
    (SID, (store.caller_hash(SID, "someone-else"),), False),  # same instance, another caller
    (SID, (), False),  # no caller to prove it with
    ("", (CALLER,), False),  # instance unknown
])
def test_adoption_without_a_token_only_by_the_same_call(pg, room_sid, callers, adopted):
    """A job without a claim token must prove it is the same call: same room instance and one of
    the same callers. Anything else starts fresh (no other caller's conversation)."""
    async def scenario():
        conn = await fresh(pg)
        await put(conn)
        await expire(conn)
        return await store.take_over(conn, room="r", job_id="job-2", agent_identity="b", token=None,
                                     lease_seconds=5, room_sid=room_sid, callers=callers)

    assert (run(scenario()) is not None) is adopted


def test_a_claim_token_is_refused_in_a_room_instance_created_since(pg):
    """CreateDispatch re-creates a room that closed between the watcher's check and the
    dispatch: the job in the new instance must not take the old call's row."""
    async def scenario():
        conn = await fresh(pg)
        await put(conn)
        await expire(conn)
        assert await store.claim(conn, room="r", token="t", claim_seconds=10)
        other = await store.take_over(conn, room="r", job_id="j2", agent_identity="b", token="t",
                                      lease_seconds=5, room_sid="RM_recreated")
        same = await store.take_over(conn, room="r", job_id="j3", agent_identity="c", token="t",
                                     lease_seconds=5, room_sid=SID)
        return other, same

    other, same = run(scenario())
    assert other is None and same is not None


@pytest.mark.parametrize(("stale_sid", "lease", "forgotten"), [
    ("RM_old", -1.0, True),   # an earlier call under this name, agent dead
    ("RM_old", 30.0, True),   # an earlier instance cannot be live: its room is gone
    (SID, -1.0, False),       # this very call: kept for adoption
    ("", -1.0, True),         # previous release's row, lease run out: cannot be proven, dropped
    ("", 30.0, False),        # previous release's row of a live call: left alone
])
def test_a_reused_room_name_forgets_the_previous_call(pg, stale_sid, lease, forgotten):
    async def scenario():
        conn = await fresh(pg)
        await conn.execute(
            f"INSERT INTO {store.TABLE} (room, job_id, payload_version, payload, lease_until, room_sid) "
            "VALUES ('r', 'old', 1, '{}'::jsonb, now() + make_interval(secs => $1), $2)", lease, stale_sid)
        gone = await store.forget_stale(conn, room="r", room_sid=SID)
        left = await conn.fetchval(f"SELECT count(*) FROM {store.TABLE}")
        return gone, left

    gone, left = run(scenario())
    assert gone is forgotten and left == (0 if forgotten else 1)


def test_a_take_over_whose_reply_was_lost_is_still_this_jobs(pg):
    """The UPDATE committed but the reply timed out: the retry finds the token spent; the job
    owns the row and must resume, not leave as 'superseded'."""
    async def scenario():
        conn = await fresh(pg)
        await put(conn, payload={"chat_ctx": {"items": []}, "turns": 7})
        await expire(conn)
        assert await store.claim(conn, room="r", token="t", claim_seconds=10)
        assert await store.take_over(conn, room="r", job_id="new", agent_identity="n", token="t",
                                     lease_seconds=5, room_sid=SID)
        again = await store.take_over(conn, room="r", job_id="new", agent_identity="n", token="t",
                                      lease_seconds=5, room_sid=SID)
        owned = await store.owned(conn, room="r", job_id="new")
        return again, owned

    again, owned = run(scenario())
    assert again is None and owned is not None and owned.payload["turns"] == 7


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
        # without a claim token nothing proves a previous-release row is this call's
        tokenless = await store.take_over(conn, room="r", job_id="new", agent_identity="n", token=None,
                                          lease_seconds=5, room_sid=SID, callers=(CALLER,))
        [orphan] = await store.orphans(conn)
        assert orphan.room_sid == "" and orphan.created_at > 0  # the watcher proves it by time
        assert await store.claim(conn, room="r", token="t", claim_seconds=10)
        stored = await store.take_over(conn, room="r", job_id="new", agent_identity="n", token="t",
                                       lease_seconds=5, room_sid=SID)
        sid = await conn.fetchval(f"SELECT room_sid FROM {store.TABLE}")
        return tokenless, read_payload(stored.payload_version, stored.payload), sid

    tokenless, checkpoint, sid = run(scenario())
    assert tokenless is None
    assert checkpoint.turns == 2 and checkpoint.chat_ctx["items"][0]["id"] == "m1"
    assert sid == SID, "the adopted row now belongs to this room instance"


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
        writer = CheckpointWriter(settings, room="r", job_id="new", agent_identity="a", agent_name="",
                                  room_sid=SID)
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


# ---------------------------------------------------------------- liveness apart from snapshots
# A trigger stands in for what makes PostgreSQL refuse or stall one snapshot (22P05 is the
# SQLSTATE of the U+0000 refusal seen with a real transcript; pg_sleep a write that never ends in
# time); the lease renewal touches the same row and must go on regardless.
FAULTS = f"""
CREATE OR REPLACE FUNCTION voice_agent_test_fault() RETURNS trigger AS $$
BEGIN
  IF NEW.payload::text LIKE '%poison-refuse%' THEN
    RAISE EXCEPTION 'unsupported Unicode escape sequence' USING ERRCODE = '22P05';
  END IF;
  IF NEW.payload::text LIKE '%poison-slow%' THEN
    PERFORM pg_sleep(5);
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER voice_agent_test_fault BEFORE INSERT OR UPDATE ON {store.TABLE}
  FOR EACH ROW EXECUTE FUNCTION voice_agent_test_fault();
"""


class NotJson:
    pass


@pytest.mark.parametrize(("fault", "reason"), [
    ({"chat_ctx": {"items": [{"order": NotJson()}]}}, "not_json"),
    ({"gemini_handle": "poison-refuse"}, "refused"),
    ({"gemini_handle": "poison-slow"}, "timeout"),
])
def test_a_snapshot_that_cannot_be_stored_never_costs_the_lease(pg, caplog, fault, reason):
    """One bad snapshot used to stop the heartbeat (the pending write was retried instead of
    renewing), so a watcher evicted the live agent. Now: dropped, one line, the lease lives for
    more than three leases, and the next good snapshot replaces it."""
    settings = RecoverySettings(dsn=pg.dsn, lease_seconds=1.5, db_timeout_seconds=1)

    async def scenario():
        conn = await fresh(pg)
        await conn.execute(FAULTS)
        writer = CheckpointWriter(settings, room="r", job_id="live", agent_identity="a", agent_name="",
                                  room_sid=SID, callers=(CALLER,))
        writer.start()
        writer.submit(Checkpoint(chat_ctx={"items": []}, turns=1))
        for _ in range(40):
            if writer.writes:
                break
            await asyncio.sleep(0.05)
        writer.submit(Checkpoint(**{"chat_ctx": {"items": []}, "turns": 2, **fault}))
        lowest_left = 99.0
        for _ in range(int(3.5 * 1.5 / 0.1)):  # more than three leases
            holder = await store.lease_holder(conn, room="r")
            lowest_left = min(lowest_left, holder[1] if holder and holder[0] == "live" else -1.0)
            await asyncio.sleep(0.1)
        writer.submit(Checkpoint(chat_ctx={"items": []}, turns=3))
        for _ in range(40):
            turns = json.loads(await conn.fetchval(f"SELECT payload FROM {store.TABLE}"))["turns"]
            if turns == 3:
                break
            await asyncio.sleep(0.05)
        state = (writer.dropped, writer.fenced, writer.renewals)
        await writer.finish(ended_normally=False)
        await conn.close()
        return lowest_left, turns, state

    lowest_left, turns, (dropped, fenced, renewals) = run(scenario())
    assert lowest_left > 0, "the lease ran out while the job was alive"
    assert dropped == 1 and not fenced and renewals >= 3
    assert turns == 3, "the next good snapshot replaces the dropped one"
    lines = [r for r in caplog.records if getattr(r, "event", "") == "checkpoint_dropped"]
    assert len(lines) == 1 and lines[0].reason == reason
    assert not [r for r in caplog.records if getattr(r, "event", "") == "checkpoint_unavailable"]


def test_a_nul_character_in_the_transcript_is_stored_as_a_replacement_character(pg):
    """PostgreSQL jsonb refuses \\u0000 (SQLSTATE 22P05): the writer stores U+FFFD instead, so
    the conversation is kept."""
    settings = RecoverySettings(dsn=pg.dsn, lease_seconds=1.5, db_timeout_seconds=1)
    items = {"items": [{"id": "m1", "type": "message", "role": "assistant", "content": ["a\x00b"]}]}

    async def scenario():
        conn = await fresh(pg)
        writer = CheckpointWriter(settings, room="r", job_id="j", agent_identity="a", agent_name="",
                                  room_sid=SID)
        writer.start()
        writer.submit(Checkpoint(chat_ctx=items, gemini_handle="k\x00"))
        for _ in range(40):
            if writer.writes:
                break
            await asyncio.sleep(0.05)
        payload = json.loads(await conn.fetchval(f"SELECT payload FROM {store.TABLE}"))
        await writer.finish(ended_normally=False)
        await conn.close()
        return payload

    payload = run(scenario())
    assert payload["chat_ctx"]["items"][0]["content"] == ["a\ufffdb"]
    assert payload["gemini_handle"] == "k\ufffd"


@pytest.mark.parametrize(("recoveries", "lease", "swept"), [
    (store.MAX_RECOVERIES_PER_CALL - 1, -1.0, False),
    (store.MAX_RECOVERIES_PER_CALL, -1.0, True),
    (store.MAX_RECOVERIES_PER_CALL, 30.0, False),  # a live job after the last recovery
])
def test_a_call_out_of_recoveries_is_swept_not_kept_adoptable(pg, recoveries, lease, swept):
    async def scenario():
        conn = await fresh(pg)
        await put(conn, lease=lease)
        await conn.execute(f"UPDATE {store.TABLE} SET recoveries = $1", recoveries)
        adopted = await store.take_over(conn, room="r", job_id="x", agent_identity="x", token=None,
                                        lease_seconds=5, room_sid=SID, callers=(CALLER,))
        if adopted is not None:  # put it back as it was for the sweep
            await conn.execute(f"UPDATE {store.TABLE} SET lease_until = now() - interval '1 second'")
        return adopted, await store.sweep(conn, retention_seconds=3600)

    adopted, count = run(scenario())
    assert count == int(swept)
    if recoveries >= store.MAX_RECOVERIES_PER_CALL:
        assert adopted is None


def _documented(pattern: str) -> int:
    """A number docs/recovery.md promises (its table of guarantees), read from the text a team
    reads, so the store's behaviour is held to the document and not to its own constant."""
    text = (REPO_ROOT / "docs" / "recovery.md").read_text()
    match = re.search(pattern, text)
    assert match, f"docs/recovery.md no longer says {pattern!r}"
    return int(match.group(1))


def test_a_call_is_re_dispatched_as_often_as_the_docs_promise_and_never_again(pg):
    """No crash loop: a call whose replacements keep dying is claimed exactly as many times as
    docs/recovery.md promises (one claim per recovery); on the last one it leaves the orphans
    list, the next claim fails, and no job adopts it without a token either."""
    limit = _documented(r"at most (\d+) recoveries per call")

    async def scenario():
        conn = await fresh(pg)
        await put(conn)
        await expire(conn)
        seen = []
        for _ in range(limit):
            listed = [o.room for o in await store.orphans(conn)]
            won = await store.claim(conn, room="r", token=f"t{len(seen)}", claim_seconds=10)
            seen.append((listed, won.recoveries if won else None))
            await conn.execute(f"UPDATE {store.TABLE} SET claim_until = now() - interval '1 second'")
        after = ([o.room for o in await store.orphans(conn)],
                 await store.claim(conn, room="r", token="one-more", claim_seconds=10),
                 await store.take_over(conn, room="r", job_id="x", agent_identity="x", token=None,
                                       lease_seconds=5, room_sid=SID, callers=(CALLER,)))
        return seen, after

    seen, after = run(scenario())
    assert seen == [(["r"], n) for n in range(1, limit + 1)], "every recovery up to the promised count"
    assert after == ([], None, None), "and not one more"


@pytest.mark.parametrize("dead", [49, 50, 51])
def test_one_pass_examines_the_documented_page_of_dead_calls_dead_longest_first(pg, dead):
    """After a node loss many calls die at once: one watcher pass lists the page docs/recovery.md
    states (equal, one fewer, one more dead calls), those whose lease ran out first, and the next
    pass, once those are claimed, gets the rest."""
    page = _documented(r"a watcher's pass examines at most (\d+) dead calls")

    async def scenario():
        conn = await fresh(pg)
        for i in range(dead):
            await put(conn, room=f"r{i:03}")
        # r000 died first, r001 a second later, ...: the order a pass must take them in
        await conn.execute(f"UPDATE {store.TABLE} SET lease_until = now() - make_interval(secs => "
                           "1000 - substr(room, 2)::int)")
        first = [o.room for o in await store.orphans(conn)]
        for room in first:
            assert await store.claim(conn, room=room, token="t", claim_seconds=60)
        return first, [o.room for o in await store.orphans(conn)]

    first, second = run(scenario())
    assert first == [f"r{i:03}" for i in range(min(dead, page))]
    assert second == [f"r{i:03}" for i in range(page, dead)]


@pytest.mark.parametrize(("state", "forgotten"), [
    ("live lease", False), ("lease run out", True), ("claimed by a watcher", False),
])
def test_a_call_whose_caller_left_is_forgotten_only_while_nobody_holds_it(pg, state, forgotten):
    """abandon: the caller left while the agent was dead. A row whose lease is alive (the agent is
    back) or that a watcher's live claim holds is not deleted; an unclaimed dead one is."""
    async def scenario():
        conn = await fresh(pg)
        await put(conn)
        if state != "live lease":
            await expire(conn)
        if state == "claimed by a watcher":
            assert await store.claim(conn, room="r", token="t", claim_seconds=30)
        said = await store.abandon(conn, room="r")
        return said, await conn.fetchval(f"SELECT count(*) FROM {store.TABLE}")

    assert run(scenario()) == (forgotten, 0 if forgotten else 1)
