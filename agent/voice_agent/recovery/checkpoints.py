"""The job side of recovery: keep this call's lease and checkpoint in PostgreSQL, off the audio path.

Liveness and data are kept apart (docs/recovery.md):
- the LEASE says "this job is alive". A thread of its own (its own event loop, its own
  connection) renews it every ``heartbeat_seconds``, whatever happens to snapshots and whatever
  the job's event loop is doing: that loop stalls for seconds under load (pydantic schema
  generation and track setup at session start, 1.3-2.1 s measured at load 12-16), and a lease
  renewed on it lapsed then, so another pod's watcher evicted a live agent (issue 25). Only a
  database this job cannot reach, a job loop stalled past ``JOB_LOOP_STALL_LIMIT_SECONDS``, the
  job's end, or another job owning the row stops it.
- a SNAPSHOT is data. Session events only hand one to ``CheckpointWriter.submit`` (no I/O, no
  serialisation, never blocks); a second task encodes the newest one in a thread (latest wins)
  and writes it on its own connection. A snapshot that cannot be stored (not JSON, refused by
  PostgreSQL, a write that times out while the lease renews fine) is dropped with one
  ``checkpoint_dropped`` line (and the metric it feeds); the next snapshot replaces it.

Every database call is bounded; an unreachable database costs this call its checkpoint for now,
is logged once per outage (``checkpoint_unavailable`` / ``checkpoint_recovered``) and retried on
the next heartbeat with a fresh connection. Nothing here can raise into the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

# Imported here, not at first use: session.py (and so this module) is preloaded in the
# forkserver, so job processes share it; imported lazily it blocked a job's event loop for
# about a second under load (measured) and ate the take-over's time budget.
import asyncpg

from ..logs import log_event
from . import envelope, store
from .config import RecoverySettings
from .payload import PAYLOAD_VERSION, Checkpoint, ItemCache, UnstorableCheckpoint, encode

logger = logging.getLogger("voice_agent.recovery")

Connect = Callable[[str, float], Awaitable[Any]]
TAKE_OVER_ATTEMPTS = 2
# The lease thread renews only while the job's event loop still answers (it runs a no-op the
# thread posts every heartbeat): a loop stuck for good (a deadlock, a hung C call) is a dead
# call to its caller and must be recovered, not kept alive by a thread. 10 s is about five
# times the longest stall measured (2.1 s, session start at load 12-16), and well under
# livekit-agents 1.8.9's own verdict on such a process (ipc/proc_pool.py: a job that has not
# answered the supervisor's ping for ping_timeout=60 s is killed): a caller who has heard
# nothing for 10 s is better served by a replacement than by waiting for that.
JOB_LOOP_STALL_LIMIT_SECONDS = 10.0
# Failures that say "the database cannot be reached from here", not "this snapshot is bad".
_UNREACHABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.exceptions.CannotConnectNowError)


async def connect(dsn: str, timeout: float) -> Any:
    """One asyncpg connection (a job needs two: lease and data; a pool per process would idle)."""
    # statement_cache_size=0: safe behind any pooler; command_timeout bounds each statement
    return await asyncpg.connect(dsn, timeout=timeout, command_timeout=timeout,
                                 statement_cache_size=0)


class _Link:
    """One lazily (re)opened connection; ``statement_timeout`` is enforced by the server, so a
    statement given up here is also ended there (and releases the row lock it held) even when
    this side only dropped the connection."""

    def __init__(self, settings: RecoverySettings, connect_fn: Connect,
                 statement_timeout: float | None = None) -> None:
        self._settings, self._connect_fn = settings, connect_fn
        self._statement_timeout = statement_timeout
        self.conn: Any = None

    async def get(self) -> Any:
        if self.conn is None or self.conn.is_closed():
            timeout = self._settings.db_timeout_seconds
            conn = await asyncio.wait_for(self._connect_fn(self._settings.dsn, timeout), timeout)
            if self._statement_timeout is not None:
                try:
                    await asyncio.wait_for(conn.execute(
                        f"SET statement_timeout = {max(1, int(self._statement_timeout * 1000))}"), timeout)
                except BaseException:
                    with contextlib.suppress(Exception):
                        conn.terminate()
                    raise
            self.conn = conn
        return self.conn

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()


class CheckpointWriter:
    def __init__(self, settings: RecoverySettings, *, room: str, job_id: str,
                 agent_identity: str, agent_name: str, connect_fn: Connect = connect,
                 room_sid: str = "", callers: tuple[str, ...] = (),
                 sealer: envelope.CallEnvelope | envelope.PlaintextEnvelope | None = None,
                 stall_limit_seconds: float = JOB_LOOP_STALL_LIMIT_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        # the conversation is stored sealed with this call's data key (envelope.py)
        self._envelope = sealer or envelope.for_call(settings.kms_key, settings.kms_endpoint,
                                                     room=room, room_sid=room_sid)
        self._room, self._job_id = room, job_id
        self._room_sid, self._callers = room_sid, callers
        self._identity, self._agent_name = agent_identity, agent_name
        self._lease = _Link(settings, connect_fn)
        # a snapshot write holds the row's lock, which the lease renewal waits for: the server
        # ends any data statement after one heartbeat, so a slow write can never cost the lease
        self._write_timeout = min(settings.db_timeout_seconds, settings.heartbeat_seconds)
        self._data = _Link(settings, connect_fn, statement_timeout=self._write_timeout)
        self._latest: Checkpoint | None = None
        self._items = ItemCache()
        self._written: Checkpoint | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stall_limit = stall_limit_seconds
        self._clock = clock
        self._owner: asyncio.AbstractEventLoop | None = None  # the job's event loop
        self._thread: threading.Thread | None = None
        self._lease_loop_ref: asyncio.AbstractEventLoop | None = None  # the thread's own loop
        self._lease_wake: asyncio.Event | None = None
        self._stopping = threading.Event()
        self._loop_seen = 0.0  # clock() when the job's loop last ran the thread's no-op
        self._status_lock = threading.Lock()  # _unavailable/_recovered run on both sides
        self._failing = False
        self._failures = 0
        self._row = False  # this job has a row (taken over or written) whose lease it renews
        self._lease_ok = True
        self.fenced = False
        self.writes = 0
        self.renewals = 0
        self.dropped = 0

    # ----------------------------------------------------------------- called by the session
    def submit(self, checkpoint: Checkpoint) -> None:
        """Latest wins: replaces any snapshot not yet written. Never blocks, never raises."""
        self._latest = checkpoint
        self._wake.set()

    def set_callers(self, callers: tuple[str, ...]) -> None:
        self._callers = callers

    def start(self) -> None:
        """Start the lease thread and the snapshot task (on the job's running loop); idempotent."""
        if self._thread is None:
            self._owner = asyncio.get_running_loop()
            self._loop_seen = self._clock()
            self._tasks = [self._owner.create_task(self._data_loop(), name="voice_agent_checkpoints")]
            # daemon: the thread never holds the job process open; stop_lease (finish) joins it,
            # and it also ends by itself once the job's loop has stopped (a job that crashed
            # without finishing). The context copy keeps the job's log fields on its lines.
            self._thread = threading.Thread(target=contextvars.copy_context().run,
                                            args=(self._lease_thread,), name="voice_agent_lease",
                                            daemon=True)
            self._thread.start()

    @property
    def lease_thread(self) -> threading.Thread | None:
        return self._thread

    def may_adopt(self) -> bool:
        """A job without a claim token can prove it is the same call only with the room's SID
        and at least one caller it can show."""
        return bool(self._room_sid and self._callers)

    async def forget_stale(self) -> None:
        try:
            conn = await self._data.get()
            if await asyncio.wait_for(store.forget_stale(conn, room=self._room, room_sid=self._room_sid),
                                      self._settings.db_timeout_seconds):
                log_event("checkpoint_stale_forgotten",
                          "a previous call under this room name left a row; this call starts fresh",
                          room=self._room, job_id=self._job_id)
        except Exception as exc:  # noqa: BLE001
            self._data.close()
            self._unavailable("forget_stale", exc)

    async def take_over(self, token: str | None) -> store.Stored | None:
        """Become the owner of the room's row, returning what the previous job stored, opened
        (None when there is nothing to resume, the database is unreachable, another job won, or
        the row cannot be opened for this call: then this job owns the row and starts fresh)."""
        stored = await self._take_over_row(token)
        if stored is None:
            return None
        try:
            # bounded twice: each KMS request by the client's timeout, and the whole open here
            # (a token refresh plus the decrypt), so a hung KMS costs the caller seconds at most
            payload = await asyncio.wait_for(asyncio.to_thread(self._envelope.open, stored.payload),
                                             2 * envelope.KMS_TIMEOUT_SECONDS + 1)
        except Exception as exc:  # noqa: BLE001 - whatever fails, the call starts fresh
            reason = exc.reason if isinstance(exc, envelope.EnvelopeError) else (
                envelope.KMS_UNREACHABLE if isinstance(exc, asyncio.TimeoutError) else "other")
            log_event("checkpoint_unreadable",
                      "the stored checkpoint cannot be opened for this call; starting fresh",
                      level=logging.WARNING, room=self._room, job_id=self._job_id, reason=reason,
                      error=f"{type(exc).__name__}: {exc}"[:200])
            return None
        return store.Stored(stored.payload_version, payload)

    async def _take_over_row(self, token: str | None) -> store.Stored | None:
        # the one read that decides whether the caller keeps the conversation: worth a second
        # attempt (a new connection) before starting without it. The first attempt's UPDATE
        # may have committed although its reply timed out: then the token is spent and this
        # job already owns the row, so a retry first reads what it owns.
        for attempt in range(TAKE_OVER_ATTEMPTS):
            try:
                conn = await self._data.get()
                timeout = self._settings.db_timeout_seconds
                stored = None
                if attempt:
                    stored = await asyncio.wait_for(
                        store.owned(conn, room=self._room, job_id=self._job_id), timeout)
                if stored is None:
                    stored = await asyncio.wait_for(
                        store.take_over(conn, room=self._room, job_id=self._job_id,
                                        agent_identity=self._identity, token=token,
                                        lease_seconds=self._settings.lease_seconds,
                                        room_sid=self._room_sid, callers=self._callers),
                        timeout)
                self._row = self._row or stored is not None
                return stored
            except Exception as exc:  # noqa: BLE001 - a dead database must not stop the call
                self._data.close()
                self._unavailable("take_over", exc)
        return None

    async def lease_holder(self) -> tuple[str, float] | None:
        try:
            conn = await self._data.get()
            return await asyncio.wait_for(store.lease_holder(conn, room=self._room),
                                          self._settings.db_timeout_seconds)
        except Exception as exc:  # noqa: BLE001
            self._data.close()
            self._unavailable("lease_holder", exc)
            return None

    async def finish(self, *, ended_normally: bool) -> None:
        """Stop writing; unless the agent died, delete the checkpoint (nothing is left to recover)."""
        await self.stop_lease()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if ended_normally and not self.fenced:
            try:
                conn = await self._data.get()
                await asyncio.wait_for(store.remove(conn, room=self._room, job_id=self._job_id),
                                       self._settings.db_timeout_seconds)
            except Exception as exc:  # noqa: BLE001 - the sweep removes it later
                self._unavailable("remove", exc)
        self._data.close()  # the lease's connection belongs to the thread, which closed it

    # ----------------------------------------------------------------- liveness
    async def stop_lease(self) -> None:
        """End the lease thread and wait for it (a renewal in flight is bounded by the database
        timeout); from then on nothing renews this job's lease."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._wake_lease()
        # joined off the job's loop: a renewal in flight takes at most a connect and two
        # statements, each bounded by db_timeout_seconds
        await asyncio.to_thread(thread.join, 3 * self._settings.db_timeout_seconds + self._settings.heartbeat_seconds)

    def _wake_lease(self) -> None:
        loop, wake = self._lease_loop_ref, self._lease_wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the thread's loop already closed
                loop.call_soon_threadsafe(wake.set)

    def _lease_thread(self) -> None:
        """The thread's body: its own event loop (asyncpg connections belong to one loop)."""
        asyncio.run(self._lease_loop())

    def _job_ended(self) -> bool:
        """The job's loop stopped (the job ended, or crashed without finishing the writer)."""
        owner = self._owner
        return owner is None or owner.is_closed() or not owner.is_running()

    def _job_loop_stuck(self) -> bool:
        """The job's loop has not run the thread's last no-op for longer than the stall limit."""
        return self._clock() - self._loop_seen > self._stall_limit

    def _seen(self) -> None:
        """On the job's loop: it runs."""
        self._loop_seen = self._clock()

    async def _lease_loop(self) -> None:
        """Renew this job's lease every heartbeat, whatever the snapshots or the job's loop do."""
        self._lease_wake = asyncio.Event()
        self._lease_loop_ref = asyncio.get_running_loop()
        stuck = False
        try:
            while not (self.fenced or self._stopping.is_set() or self._job_ended()):
                with contextlib.suppress(RuntimeError):  # the job's loop closed meanwhile
                    self._owner.call_soon_threadsafe(self._seen)  # type: ignore[union-attr]
                # a stuck loop pauses renewal, it does not end it: a loop that comes back renews
                # again (and finds itself fenced if a replacement took the row meanwhile)
                now_stuck = self._job_loop_stuck()
                if now_stuck and not stuck:
                    log_event("job_loop_stuck",
                              "the job's event loop stopped running: its lease is not renewed",
                              level=logging.WARNING, room=self._room, job_id=self._job_id,
                              stall_limit_seconds=self._stall_limit)
                stuck = now_stuck
                if self._row and not stuck:
                    await self._renew_once()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._lease_wake.wait(), self._settings.heartbeat_seconds)
        finally:
            self._lease.close()

    async def _renew_once(self) -> None:
        timeout = self._settings.db_timeout_seconds
        try:
            conn = await self._lease.get()
            renewed = await asyncio.wait_for(
                store.renew(conn, room=self._room, job_id=self._job_id,
                            lease_seconds=self._settings.lease_seconds), timeout)
            if not renewed:
                holder = await asyncio.wait_for(store.lease_holder(conn, room=self._room), timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            self._lease_ok = False
            self._lease.close()
            self._unavailable("renew", exc)
            return
        self._lease_ok = True
        self._recovered()
        if renewed:
            self.renewals += 1
        elif holder is not None and holder[0] != self._job_id:
            self._fence()
        else:
            # the row was swept or abandoned while we were unreachable: the next snapshot
            # writes it again (and a dropped one must not leave the call without a row); the
            # snapshot state belongs to the job's loop, so it is reset there
            self._row = False
            with contextlib.suppress(RuntimeError):
                self._owner.call_soon_threadsafe(self._row_lost)  # type: ignore[union-attr]

    def _row_lost(self) -> None:
        self._row = False
        self._written = None
        self._wake.set()

    # ----------------------------------------------------------------- data
    async def _data_loop(self) -> None:
        while not self.fenced:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.heartbeat_seconds)
            self._wake.clear()
            latest = self._latest
            if latest is None or latest is self._written:
                continue
            await self._store(latest)

    async def _store(self, checkpoint: Checkpoint) -> None:
        try:
            text = await asyncio.to_thread(self._seal, checkpoint)
        except UnstorableCheckpoint as exc:
            self._drop(checkpoint, "not_json", exc)
            return
        except envelope.EnvelopeError as exc:
            # KMS down or denying: this snapshot is not stored in the clear instead; the next one
            # asks KMS again (the data key is wrapped once per call, then cached)
            self._drop(checkpoint, exc.reason, exc)
            return
        try:
            conn = await self._data.get()
            ok = await asyncio.wait_for(
                store.write(conn, room=self._room, job_id=self._job_id,
                            agent_identity=self._identity, agent_name=self._agent_name,
                            version=PAYLOAD_VERSION, payload_json=text,
                            lease_seconds=self._settings.lease_seconds,
                            room_sid=self._room_sid, callers=self._callers),
                self._write_timeout + 0.5)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            self._data.close()
            if isinstance(exc, _UNREACHABLE) or not self._lease_ok:
                self._unavailable("write", exc)  # the database, not the snapshot: kept for later
            else:
                slow = isinstance(exc, (asyncio.TimeoutError, asyncpg.QueryCanceledError))
                reason = "timeout" if slow else "refused"
                self._drop(checkpoint, reason, exc)
            return
        if not ok:
            self._fence()
            return
        self._written = checkpoint
        self._row = True
        self.writes += 1
        self._recovered()

    def _seal(self, checkpoint: Checkpoint) -> str:
        """In the writer's thread: the row's JSON, sealed with the call's data key."""
        return self._envelope.seal(encode(checkpoint, self._items))

    def _drop(self, checkpoint: Checkpoint, reason: str, exc: BaseException) -> None:
        if self._latest is checkpoint:
            self._written = checkpoint  # not retried; the next snapshot replaces it
        self.dropped += 1
        log_event("checkpoint_dropped",
                  "a snapshot could not be stored and was dropped; the call and its lease go on",
                  level=logging.WARNING, room=self._room, job_id=self._job_id, reason=reason,
                  error=f"{type(exc).__name__}: {exc}"[:200])

    def _fence(self) -> None:
        with self._status_lock:  # the lease thread and the snapshot task both fence
            first, self.fenced = not self.fenced, True
        if first:
            log_event("checkpoint_fenced",
                      "another job owns this room's checkpoint; this job stops writing it",
                      level=logging.WARNING, room=self._room, job_id=self._job_id)

    def _unavailable(self, what: str, exc: BaseException) -> None:
        with self._status_lock:
            self._failures += 1
            first, self._failing = not self._failing, True
        if first:
            log_event("checkpoint_unavailable",
                      "checkpoint database unavailable: the call goes on without a checkpoint",
                      level=logging.WARNING, room=self._room, job_id=self._job_id,
                      operation=what, error=f"{type(exc).__name__}: {exc}"[:300])

    def _recovered(self) -> None:
        with self._status_lock:
            was, failures = self._failing, self._failures
            if was:
                self._failing, self._failures = False, 0
        if was:
            log_event("checkpoint_recovered", "checkpoint database reachable again",
                      room=self._room, job_id=self._job_id, failed_attempts=failures)
