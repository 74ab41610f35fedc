"""The checkpoint table in PostgreSQL: schema, and every statement recovery runs against it.

One row per room. The row is owned by exactly one job (``job_id``); every write is fenced on
that owner, so a job that was given up for dead cannot overwrite its replacement's state.
Liveness is a lease in the database's own clock (``now()``), never a worker's clock, so clock
skew between pods cannot make a live call look dead.

Schema changes are additive only (two releases run side by side during a rollout, and the older
one keeps writing): new columns get defaults, nothing is renamed or dropped. ``migrate`` is
idempotent and serialised by an advisory lock, so every pod may run it at start.
"""

from __future__ import annotations

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
)

# A call whose replacements keep dying (a poison checkpoint, a model that always fails) is not
# re-dispatched forever: after this many recoveries it is left to the retention sweep.
MAX_RECOVERIES_PER_CALL = 5
# A lease or claim that has run out, in the database's clock.
_CLAIMABLE = "lease_until < now() AND (claim_until IS NULL OR claim_until < now())"


@dataclass(frozen=True)
class Orphan:
    """A room whose agent stopped renewing its lease."""

    room: str
    agent_identity: str
    agent_name: str


@dataclass(frozen=True)
class Claim:
    room: str
    token: str
    agent_identity: str
    agent_name: str
    recoveries: int


@dataclass(frozen=True)
class Stored:
    payload_version: int
    payload: dict[str, Any]


async def migrate(conn: Any) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        for statement in MIGRATIONS:
            await conn.execute(statement)


async def write(conn: Any, *, room: str, job_id: str, agent_identity: str, agent_name: str,
                version: int, payload: dict[str, Any], lease_seconds: float) -> bool:
    """Insert or update this job's checkpoint and renew its lease; False if another job owns it."""
    row = await conn.fetchrow(
        f"""INSERT INTO {TABLE} AS t
              (room, job_id, agent_identity, agent_name, payload_version, payload, lease_until)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, now() + make_interval(secs => $7))
            ON CONFLICT (room) DO UPDATE SET
              agent_identity = EXCLUDED.agent_identity, payload_version = EXCLUDED.payload_version,
              payload = EXCLUDED.payload, lease_until = EXCLUDED.lease_until, updated_at = now()
            WHERE t.job_id = EXCLUDED.job_id
            RETURNING 1""",
        room, job_id, agent_identity, agent_name, version, json.dumps(payload), lease_seconds,
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


async def remove(conn: Any, *, room: str, job_id: str) -> bool:
    """The call ended normally: nothing to recover (only the owner may remove it)."""
    status = await conn.execute(f"DELETE FROM {TABLE} WHERE room = $1 AND job_id = $2", room, job_id)
    return status.endswith(" 1")


async def orphans(conn: Any, limit: int = 50) -> list[Orphan]:
    rows = await conn.fetch(
        f"""SELECT room, agent_identity, agent_name FROM {TABLE}
            WHERE {_CLAIMABLE} AND recoveries < $2 ORDER BY lease_until LIMIT $1""",
        limit, MAX_RECOVERIES_PER_CALL,
    )
    return [Orphan(r["room"], r["agent_identity"], r["agent_name"]) for r in rows]


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
                    token: str | None, lease_seconds: float) -> Stored | None:
    """A new job becomes the row's owner and gets the stored state.

    With a claim token (a watcher's re-dispatch) only the job holding the current token wins: a
    late job from an expired claim gets None and must leave. Without one (LiveKit Cloud restarted
    the job, or a room name came back) the row is taken only once its lease has run out and no
    claim is live."""
    condition = "claim_token = $5" if token is not None else _CLAIMABLE
    args: list[Any] = [room, job_id, agent_identity, lease_seconds]
    if token is not None:
        args.append(token)
    row = await conn.fetchrow(
        f"""UPDATE {TABLE} SET job_id = $2, agent_identity = $3, claim_token = NULL,
              claim_until = NULL, lease_until = now() + make_interval(secs => $4), updated_at = now()
            WHERE room = $1 AND {condition}
            RETURNING payload_version, payload""",
        *args,
    )
    if row is None:
        return None
    return Stored(row["payload_version"], json.loads(row["payload"]))


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


async def sweep(conn: Any, *, retention_seconds: float) -> int:
    """Delete checkpoints not touched for ``retention_seconds`` (calls that never ended cleanly)."""
    status = await conn.execute(
        f"DELETE FROM {TABLE} WHERE updated_at < now() - make_interval(secs => $1)",
        float(retention_seconds),
    )
    return int(status.split()[-1])
