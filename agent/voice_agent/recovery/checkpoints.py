"""The job side of recovery: keep this call's checkpoint and lease in PostgreSQL, off the audio path.

Session events only hand a snapshot to ``CheckpointWriter.submit`` (no I/O, never blocks); one
background task per call writes the newest snapshot (latest wins: a snapshot superseded while
the database was slow is simply never written) and renews the lease in between. Every database
call is bounded by ``db_timeout_seconds``; a failure costs this call its checkpoint for now, is
logged once per outage (``checkpoint_unavailable`` / ``checkpoint_recovered``) and retried on the
next heartbeat with a fresh connection. Nothing here can raise into the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

# Imported here, not at first use: session.py (and so this module) is preloaded in the
# forkserver, so job processes share it; imported lazily it blocked a job's event loop for
# about a second under load (measured) and ate the take-over's time budget.
import asyncpg

from ..logs import log_event
from . import store
from .config import RecoverySettings
from .payload import PAYLOAD_VERSION, Checkpoint

logger = logging.getLogger("voice_agent.recovery")

Connect = Callable[[str, float], Awaitable[Any]]
TAKE_OVER_ATTEMPTS = 2


async def connect(dsn: str, timeout: float) -> Any:
    """One asyncpg connection (a job needs one; a pool per process would idle)."""
    # statement_cache_size=0: safe behind any pooler; command_timeout bounds each statement
    return await asyncpg.connect(dsn, timeout=timeout, command_timeout=timeout,
                                 statement_cache_size=0)


class CheckpointWriter:
    def __init__(self, settings: RecoverySettings, *, room: str, job_id: str,
                 agent_identity: str, agent_name: str, connect_fn: Connect = connect) -> None:
        self._settings = settings
        self._room, self._job_id = room, job_id
        self._identity, self._agent_name = agent_identity, agent_name
        self._connect_fn = connect_fn
        self._conn: Any = None
        self._latest: Checkpoint | None = None
        self._written: Checkpoint | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._failures = 0
        self.fenced = False
        self.writes = 0

    # ----------------------------------------------------------------- called by the session
    def submit(self, checkpoint: Checkpoint) -> None:
        """Latest wins: replaces any snapshot not yet written. Never blocks, never raises."""
        self._latest = checkpoint
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="voice_agent_checkpoints")

    async def take_over(self, token: str | None) -> store.Stored | None:
        """Become the owner of the room's row, returning what the previous job stored (None when
        there is nothing to resume, the database is unreachable, or another job won)."""
        # the one read that decides whether the caller keeps the conversation: worth a second
        # attempt (a new connection) before starting without it
        for _ in range(TAKE_OVER_ATTEMPTS):
            try:
                conn = await self._connection()
                return await asyncio.wait_for(
                    store.take_over(conn, room=self._room, job_id=self._job_id,
                                    agent_identity=self._identity, token=token,
                                    lease_seconds=self._settings.lease_seconds),
                    self._settings.db_timeout_seconds)
            except Exception as exc:  # noqa: BLE001 - a dead database must not stop the call
                await self._failed("take_over", exc)
        return None

    async def lease_holder(self) -> tuple[str, float] | None:
        try:
            conn = await self._connection()
            return await asyncio.wait_for(store.lease_holder(conn, room=self._room),
                                          self._settings.db_timeout_seconds)
        except Exception as exc:  # noqa: BLE001
            await self._failed("lease_holder", exc)
            return None

    async def finish(self, *, ended_normally: bool) -> None:
        """Stop writing; on a normal end delete the checkpoint (nothing is left to recover)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if ended_normally and not self.fenced:
            try:
                conn = await self._connection()
                await asyncio.wait_for(store.remove(conn, room=self._room, job_id=self._job_id),
                                       self._settings.db_timeout_seconds)
            except Exception as exc:  # noqa: BLE001 - the sweep removes it later
                await self._failed("remove", exc)
        await self._close()

    # ----------------------------------------------------------------- the background task
    async def _run(self) -> None:
        while not self.fenced:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.heartbeat_seconds)
            self._wake.clear()
            try:
                await self._write_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                await self._failed("write", exc)
            else:
                self._recovered()

    async def _write_once(self) -> None:
        conn = await self._connection()
        timeout = self._settings.db_timeout_seconds
        latest = self._latest
        if latest is not None and latest is not self._written:
            ok = await asyncio.wait_for(self._write(conn, latest), timeout)
            if ok:
                self._written = latest
                self.writes += 1
        else:
            ok = await asyncio.wait_for(
                store.renew(conn, room=self._room, job_id=self._job_id,
                            lease_seconds=self._settings.lease_seconds), timeout)
            if not ok and latest is None:
                return  # a new call before its first snapshot: there is no row to renew yet
            if not ok:
                # the row was swept or abandoned while we were unreachable: write it again
                ok = await asyncio.wait_for(self._write(conn, latest), timeout)
        if not ok:
            self.fenced = True
            log_event("checkpoint_fenced",
                      "another job owns this room's checkpoint; this job stops writing it",
                      level=logging.WARNING, room=self._room, job_id=self._job_id)

    def _write(self, conn: Any, checkpoint: Checkpoint) -> Awaitable[bool]:
        return store.write(conn, room=self._room, job_id=self._job_id,
                           agent_identity=self._identity, agent_name=self._agent_name,
                           version=PAYLOAD_VERSION, payload=checkpoint.to_payload(),
                           lease_seconds=self._settings.lease_seconds)

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncio.wait_for(
                self._connect_fn(self._settings.dsn, self._settings.db_timeout_seconds),
                self._settings.db_timeout_seconds)
        return self._conn

    async def _failed(self, what: str, exc: BaseException) -> None:
        self._failures += 1
        await self._close()  # a timed-out statement leaves the connection unusable
        if not self._failing:
            self._failing = True
            log_event("checkpoint_unavailable",
                      "checkpoint database unavailable: the call goes on without a checkpoint",
                      level=logging.WARNING, room=self._room, job_id=self._job_id,
                      operation=what, error=f"{type(exc).__name__}: {exc}"[:300])

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log_event("checkpoint_recovered", "checkpoint database reachable again",
                      room=self._room, job_id=self._job_id, failed_attempts=self._failures)
            self._failures = 0

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()
