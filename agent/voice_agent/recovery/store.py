"""The checkpoint table in PostgreSQL: schema, and every statement recovery runs against it.

One row per room name at a time (a name has at most one live room instance). The row belongs
to one call: the room instance (``room_sid``, the server's RM_ id) and the call's callers
(``callers``: hashes of their identities, ``caller_hash``). A job adopts a row only as that same
call: with a watcher's claim token (the watcher checked instance and callers), or, without one
(LiveKit Cloud restarting a job), by showing the same room SID and one of the same callers. A
reused name is a new instance: its job deletes the stale row and starts fresh (``forget_stale``).
Rows from the release before room_sid existed have ``room_sid = ''`` and are never adopted
without a claim token (the watcher proves those by the room's creation time).

The row is owned by exactly one job (``job_id``); every write is fenced on
that owner, so a job that was given up for dead cannot overwrite its replacement's state.
Liveness is a lease in the database's own clock (``now()``), never a worker's clock, so clock
skew between pods cannot make a live call look dead.

Schema changes are additive only (two releases run side by side during a rollout, and the older
one keeps writing): new columns get defaults, nothing is renamed or dropped. ``migrate`` is
idempotent and serialised by an advisory lock, so every pod may run it at start.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

TABLE = "voice_agent_checkpoints"
# pg_advisory_xact_lock key: any fixed 64-bit number unique to this schema.
MIGRATION_LOCK = 0x766F696365  # "voice"

MIGRATIONS = (
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        room text PRIMARY KEY,
        job_id text NOT NULL,
        agent_identity text NOT NULL DEFAULT '',
        agent_name text NOT NULL DEFAULT '',
        payload_version integer NOT NULL,
        payload jsonb NOT NULL,
        lease_until timestamptz NOT NULL,
        claim_token text,
        claim_until timestamptz,
        recoveries integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_lease_idx ON {TABLE} (lease_until)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_updated_idx ON {TABLE} (updated_at)",
    # release 2: a call's identity is its room instance and its callers, not the room's name
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS room_sid text NOT NULL DEFAULT ''",
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS callers text[] NOT NULL DEFAULT '{{}}'",
)


def caller_hash(room_sid: str, identity: str) -> str:
    """What a row keeps of a caller: enough to recognise the same caller in the same room
    instance, nothing a reader could turn back into an identity or phone number elsewhere."""
    return hashlib.sha256(f"{room_sid}\x1f{identity}".encode()).hexdigest()[:32]

# A call whose replacements keep dying (a poison checkpoint, a model that always fails) is not
# re-dispatched forever: after this many recoveries it is left to the retention sweep.
MAX_RECOVERIES_PER_CALL = 5
# Dead calls one watcher pass examines (each costs LiveKit API round trips), those dead longest
# first; after a node loss the rest wait one poll (AGENT_RECOVERY_POLL_SECONDS). docs/recovery.md
# states it, and the store's tests hold the code to that page.
ORPHANS_PER_PASS = 50
# A lease or claim that has run out, in the database's clock.
_CLAIMABLE = "lease_until < now() AND (claim_until IS NULL OR claim_until < now())"


@dataclass(frozen=True)
class Orphan:
    """A room whose agent stopped renewing its lease."""

    room: str
    agent_identity: str
    agent_name: str
    room_sid: str = ""
    callers: tuple[str, ...] = ()
    created_at: float = 0.0
    """Unix time the row was created (database clock)."""
    expired_s: float = 0.0
    """Seconds since the lease ran out, when the row was read (database clock)."""


@dataclass(frozen=True)
class Claim:
    room: str
    token: str
    agent_identity: str
    agent_name: str
    recoveries: int


@dataclass(frozen=True)  # pragma: no mutate: nothing assigns to or hashes a Stored (its dict is unhashable), so frozen=False runs the same
class Stored:
    payload_version: int
    payload: dict[str, Any]


async def migrate(conn: Any) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        for statement in MIGRATIONS:
            await conn.execute(statement)


async def write(conn: Any, *, room: str, job_id: str, agent_identity: str, agent_name: str,
                version: int, payload_json: str, lease_seconds: float, room_sid: str = "",
                callers: tuple[str, ...] = ()) -> bool:
    """Insert or update this job's checkpoint and renew its lease; False if another job owns it.
    ``payload_json`` is already encoded (off the call's event loop, payload.encode)."""
    row = await conn.fetchrow(
        f"""INSERT INTO {TABLE} AS t
              (room, job_id, agent_identity, agent_name, payload_version, payload, lease_until,
               room_sid, callers)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, now() + make_interval(secs => $7), $8, $9)
            ON CONFLICT (room) DO UPDATE SET
              agent_identity = EXCLUDED.agent_identity, payload_version = EXCLUDED.payload_version,
              payload = EXCLUDED.payload, lease_until = EXCLUDED.lease_until, updated_at = now(),
              room_sid = CASE WHEN t.room_sid = '' THEN EXCLUDED.room_sid ELSE t.room_sid END,
              callers = ARRAY(SELECT DISTINCT c FROM unnest(t.callers || EXCLUDED.callers) AS c ORDER BY c)
            WHERE t.job_id = EXCLUDED.job_id
            RETURNING 1""",
        room, job_id, agent_identity, agent_name, version, payload_json, lease_seconds,
        room_sid, list(callers),
    )
    return row is not None


async def renew(conn: Any, *, room: str, job_id: str, lease_seconds: float) -> bool:
    """Heartbeat: extend this job's lease; False if the row is gone or owned by another job."""
    status = await conn.execute(
        f"""UPDATE {TABLE} SET lease_until = now() + make_interval(secs => $3), updated_at = now()
            WHERE room = $1 AND job_id = $2""",
        room, job_id, lease_seconds,
    )
    return status.endswith(" 1")


async def end_lease(conn: Any, *, room: str, job_id: str) -> str | None:
    """The job's process is known to have exited (its worker saw it end): its lease ends now
    instead of running out. Only that job's row: a replacement that took the row over has
    another job_id and is untouched. Returns the dead job's agent identity, or None."""
    row = await conn.fetchrow(
        f"""UPDATE {TABLE} SET lease_until = LEAST(lease_until, now())
            WHERE room = $1 AND job_id = $2 RETURNING agent_identity""",
        room, job_id,
    )
    return None if row is None else str(row["agent_identity"])


async def remove(conn: Any, *, room: str, job_id: str) -> bool:
    """The call ended normally: nothing to recover (only the owner may remove it)."""
    status = await conn.execute(f"DELETE FROM {TABLE} WHERE room = $1 AND job_id = $2", room, job_id)
    return status.endswith(" 1")


async def orphans(conn: Any, limit: int = ORPHANS_PER_PASS) -> list[Orphan]:
    """Rooms whose lease and claim ran out and that have recoveries left, dead longest first."""
    rows = await conn.fetch(
        f"""SELECT room, agent_identity, agent_name, room_sid, callers,
                   EXTRACT(EPOCH FROM created_at)::float8 AS created_s,
                   EXTRACT(EPOCH FROM (now() - lease_until))::float8 AS expired_s FROM {TABLE}
            WHERE {_CLAIMABLE} AND recoveries < $2 ORDER BY lease_until LIMIT $1""",
        limit, MAX_RECOVERIES_PER_CALL,
    )
    return [Orphan(r["room"], r["agent_identity"], r["agent_name"], r["room_sid"],
                   tuple(r["callers"]), r["created_s"], r["expired_s"]) for r in rows]


async def claim(conn: Any, *, room: str, token: str, claim_seconds: float) -> Claim | None:
    """Atomically take the right to re-dispatch ``room``; None if the lease is alive or another
    watcher holds a live claim. Under READ COMMITTED a second concurrent UPDATE waits for the
    first, re-evaluates the WHERE on the new row version and matches nothing: one winner."""
    row = await conn.fetchrow(
        f"""UPDATE {TABLE} SET claim_token = $2,
              claim_until = now() + make_interval(secs => $3), recoveries = recoveries + 1
            WHERE room = $1 AND {_CLAIMABLE} AND recoveries < $4
            RETURNING agent_identity, agent_name, recoveries""",
        room, token, claim_seconds, MAX_RECOVERIES_PER_CALL,
    )
    if row is None:
        return None
    return Claim(room, token, row["agent_identity"], row["agent_name"], row["recoveries"])


async def take_over(conn: Any, *, room: str, job_id: str, agent_identity: str,
                    token: str | None, lease_seconds: float, room_sid: str = "",
                    callers: tuple[str, ...] = ()) -> Stored | None:
    """A new job becomes the row's owner and gets the stored state, only as the same call.

    With a claim token (a watcher's re-dispatch, the watcher having checked the room instance
    and its callers) only the job holding the current token wins, and only in that room
    instance (a row of the previous release, without room_sid, was proven by the watcher): a
    late job from an expired claim, or a job in a room re-created since, gets None. Without a
    token (LiveKit Cloud restarted the job) the row is taken only once its lease has run out and
    no claim is live, and only by a job in the same room instance with one of the same callers:
    a later call that reuses the name never adopts it."""
    if token is not None:
        condition = "claim_token = $5 AND (room_sid = '' OR room_sid = $6)"
        args: list[Any] = [room, job_id, agent_identity, lease_seconds, token, room_sid]
    else:
        if not room_sid or not callers:
            return None  # nothing to prove the same call with
        condition = (f"{_CLAIMABLE} AND room_sid = $5 AND callers && $6::text[] "
                     f"AND recoveries < {MAX_RECOVERIES_PER_CALL}")
        args = [room, job_id, agent_identity, lease_seconds, room_sid, list(callers)]
    row = await conn.fetchrow(
        f"""UPDATE {TABLE} SET job_id = $2, agent_identity = $3, claim_token = NULL,
              claim_until = NULL, lease_until = now() + make_interval(secs => $4), updated_at = now(),
              room_sid = CASE WHEN room_sid = '' THEN ${len(args) if token is not None else 5} ELSE room_sid END
            WHERE room = $1 AND {condition}
            RETURNING payload_version, payload""",
        *args,
    )
    if row is None:
        return None
    return Stored(row["payload_version"], json.loads(row["payload"]))


async def owned(conn: Any, *, room: str, job_id: str) -> Stored | None:
    """The row this job already owns (a take-over whose reply was lost), or None."""
    row = await conn.fetchrow(
        f"SELECT payload_version, payload FROM {TABLE} WHERE room = $1 AND job_id = $2", room, job_id)
    return None if row is None else Stored(row["payload_version"], json.loads(row["payload"]))


async def forget_stale(conn: Any, *, room: str, room_sid: str) -> bool:
    """A new room instance under a reused name: delete the previous call's row (its room is
    gone, so nothing can resume it), unless a live claim is re-dispatching it (then a watcher
    proved it belongs to this instance). A row of the previous release is deleted only once its
    lease ran out (it may be a live call of that release in this very instance)."""
    if not room_sid:
        return False
    status = await conn.execute(
        f"""DELETE FROM {TABLE} WHERE room = $1 AND room_sid <> $2
              AND (claim_until IS NULL OR claim_until < now())
              AND (room_sid <> '' OR lease_until < now())""",
        room, room_sid,
    )
    return status.endswith(" 1")


async def lease_holder(conn: Any, *, room: str) -> tuple[str, float] | None:
    """(owner job id, seconds until its lease runs out) or None if the room has no row."""
    row = await conn.fetchrow(
        f"""SELECT job_id, EXTRACT(EPOCH FROM (lease_until - now()))::float8 AS left_s
            FROM {TABLE} WHERE room = $1""",
        room,
    )
    return None if row is None else (row["job_id"], row["left_s"])


async def abandon(conn: Any, *, room: str) -> bool:
    """The caller left while the agent was dead: forget the call (only if still unclaimed)."""
    status = await conn.execute(f"DELETE FROM {TABLE} WHERE room = $1 AND {_CLAIMABLE}", room)
    return status.endswith(" 1")


async def abandon_claimed(conn: Any, *, room: str, token: str) -> bool:
    """A watcher's own claim turned out to have nothing to resume: forget the call."""
    status = await conn.execute(f"DELETE FROM {TABLE} WHERE room = $1 AND claim_token = $2", room, token)
    return status.endswith(" 1")


async def sweep(conn: Any, *, retention_seconds: float) -> int:
    """Delete the rows of calls that ended without their job (the agent died and nobody resumed
    it): untouched for ``retention_seconds`` (a live job touches its row every heartbeat), or
    out of recoveries (``MAX_RECOVERIES_PER_CALL``) with lease and claim run out."""
    status = await conn.execute(
        f"""DELETE FROM {TABLE} WHERE updated_at < now() - make_interval(secs => $1)
              OR (recoveries >= $2 AND {_CLAIMABLE})""",
        float(retention_seconds), MAX_RECOVERIES_PER_CALL,
    )
    return int(status.split()[-1])
