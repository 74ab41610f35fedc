"""The worker side of recovery: every worker watches for calls whose agent died, and exactly one
of them re-dispatches each such call.

Self-hosted livekit-server v1.13.5 never re-dispatches a dead worker's job
(pkg/service/agentservice.go drops its jobs; job migration is a no-op outside LiveKit Cloud), and
an agent that was SIGKILLed stays listed in its room for about 20 s until the server times its
connection out (measured with this harness). So each worker runs this loop:

1. rows whose lease ran out (database clock) and that no live claim covers;
2. RoomService: is a caller (any non-agent participant) still in the room? No: forget the call
   (nothing is re-dispatched). Another agent than the dead one present: someone serves it.
3. claim the row atomically (UPDATE ... WHERE lease and claim expired RETURNING): one winner;
4. remove the dead agent's lingering participant, then CreateDispatch with the claim token in
   the metadata; the new job takes the row over only with that token.

There is no leader and no inbound endpoint: any worker can do it, and PostgreSQL's row lock
decides. The watcher never acts while its own view of the database is younger than one lease:
after an outage every live job needs one heartbeat to renew the leases the outage let expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..logs import log_event
from . import store
from .checkpoints import Connect, connect
from .config import RecoverySettings
from .resume import CALLER_KINDS, alive_until, recovery_metadata
from .telemetry import RecoveryMetrics, default_recovery_metrics

logger = logging.getLogger("voice_agent.recovery")

AGENT_KIND = 4  # livekit.protocol.models.ParticipantInfo.AGENT
SWEEP_INTERVAL_SECONDS = 60.0
# An agent still listed in its room is removed only once it has given no sign of life (neither
# its database lease nor its room attribute, resume.LIVENESS_ATTRIBUTE) for this many leases
# more; an agent no longer listed is recovered as soon as its lease ran out.
# Why none: the two proofs fail apart. The lease is renewed by its own thread (checkpoints.py),
# so a stalled event loop (1.3-2.1 s measured at load 12-16, the evictions of stop 32) keeps
# it; the attribute is refreshed by the job's loop, so a pod whose own path to the database
# failed keeps that. Both lapse together only when the process is dead or gets no CPU at all
# for a whole lease (2 s in production). Being listed does not tell those apart: livekit-server
# v1.13.5 keeps a dead participant listed until its media transport fails
# (pkg/rtc/transport.go: iceDisconnectedTimeout 10 s + iceFailedTimeout 5 s) and
# disconnectCleanupDuration (pkg/rtc/participant.go, 5 s) more, about 20 s. A grace of one
# lease measured p50 3.85 -> 6.94 s on every SIGKILLed agent's recovery (docs/recovery.md), a
# price every crash pays for a freeze of the whole process nobody has observed.
PRESENT_AGENT_GRACE_LEASES = 0.0


def http_url(livekit_url: str) -> str:
    """RoomService and AgentDispatchService are Twirp over HTTP on the same host as signalling."""
    for ws, http in (("wss://", "https://"), ("ws://", "http://")):
        if livekit_url.startswith(ws):
            return http + livekit_url[len(ws):]
    return livekit_url


def silent_for(orphan: store.Orphan, attributes: Any, now: float) -> float:
    """How long an agent has given no sign of life: since the later of its lease's end
    (database clock) and the time its room attribute vouched until (Unix time, ``now``)."""
    return min(orphan.expired_s, now - alive_until(attributes))


def caller_participants(participants: list[Any]) -> list[Any]:
    """The callers among a room's participants (livekit.protocol ParticipantInfo)."""
    return [p for p in participants if int(p.kind) in CALLER_KINDS]


class RecoveryWatcher:
    def __init__(self, settings: RecoverySettings, *, livekit_url: str, api_key: str,
                 api_secret: str, metrics: RecoveryMetrics | None = None,
                 connect_fn: Connect = connect, redispatch: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock  # Unix time, compared with the agents' liveness attribute
        self._grace = PRESENT_AGENT_GRACE_LEASES * settings.lease_seconds
        # off (LiveKit Cloud restarts jobs itself): only the retention sweep runs
        self._redispatch = redispatch
        self._url, self._key, self._secret = http_url(livekit_url), api_key, api_secret
        self._metrics = metrics or default_recovery_metrics()
        self._connect_fn = connect_fn
        self._conn: Any = None
        self._healthy_since: float | None = None
        self._last_sweep = 0.0
        self._failing = False
        self._lk: Any = None

    async def run(self) -> None:
        period = self._settings.poll_seconds if self._redispatch else SWEEP_INTERVAL_SECONDS
        try:
            while True:
                await self.poll_once()
                await asyncio.sleep(period)
        finally:
            await self.aclose()

    async def poll_once(self) -> int:
        """One pass; returns how many calls were re-dispatched. Never raises (logs instead)."""
        try:
            conn = await self._connection()
            if not self._redispatch:
                await self._sweep_if_due(conn)
                self._db_ok()
                return 0
            orphans = await asyncio.wait_for(store.orphans(conn), self._settings.db_timeout_seconds)
            self._db_ok()
            await self._sweep_if_due(conn)
            if not orphans or not self._db_trusted():
                return 0
            dispatched = 0
            for orphan in orphans:
                try:
                    dispatched += await self._recover(conn, orphan)
                except Exception as exc:  # noqa: BLE001 - e.g. LiveKit API down: next pass
                    if conn.is_closed():
                        raise
                    self._metrics.recoveries.labels(result="failed").inc()
                    log_event("recovery_failed", "could not examine a call whose agent died",
                              level=logging.WARNING, room=orphan.room,
                              error=f"{type(exc).__name__}: {exc}"[:300])
            return dispatched
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the watcher must outlive any outage
            await self._db_failed(exc)
            return 0

    async def _recover(self, conn: Any, orphan: store.Orphan) -> int:
        instance = await self._room(orphan.room)
        participants = await self._participants(orphan.room) if instance is not None else []
        # callers as livekit-agents 1.8.9 counts them: standard, SIP, connector (an egress
        # recording the room or an ingress is not someone to come back for)
        callers = caller_participants(participants)
        agents = {p.identity for p in participants if p.kind == AGENT_KIND}
        timeout = self._settings.db_timeout_seconds
        if callers and not self._same_call(orphan, instance, callers):
            callers = []  # the name now belongs to another call: nothing of this one to resume
        if not callers:
            if await asyncio.wait_for(store.abandon(conn, room=orphan.room), timeout):
                self._metrics.recoveries.labels(result="abandoned").inc()
                log_event("recovery_abandoned", "agent died and the caller left: call forgotten",
                          room=orphan.room, dead_agent=orphan.agent_identity)
            return 0
        if agents - {orphan.agent_identity}:
            self._metrics.recoveries.labels(result="skipped_agent_present").inc()
            return 0
        dead = next((p for p in participants if p.identity == orphan.agent_identity), None)
        if dead is not None and silent_for(orphan, dead.attributes, self._clock()) < self._grace:
            # the lease ran out but the agent is still in the room and vouches for itself
            # there: its own path to the database failed, not the agent
            # (docs/recovery.md, liveness)
            self._metrics.recoveries.labels(result="skipped_agent_alive").inc()
            return 0
        token = uuid.uuid4().hex
        won = await asyncio.wait_for(
            store.claim(conn, room=orphan.room, token=token,
                        claim_seconds=self._settings.claim_seconds), timeout)
        if won is None:
            self._metrics.recoveries.labels(result="lost_race").inc()
            return 0
        try:
            if orphan.agent_identity in agents:
                await self._remove_participant(orphan.room, orphan.agent_identity)
            dispatch_id = await self._dispatch(won.room, won.agent_name, token)
            # livekit-server creates the room a dispatch names if it does not exist: a call's
            # room that closed between the check above and the dispatch comes back empty
            again = await self._room(orphan.room)
            if again is not None and again.sid != instance.sid:
                await self._undo(orphan.room, dispatch_id)
                if await asyncio.wait_for(store.abandon_claimed(conn, room=orphan.room, token=token), timeout):
                    self._metrics.recoveries.labels(result="abandoned").inc()
                    log_event("recovery_abandoned", "the call's room closed while it was re-dispatched",
                              room=orphan.room, dead_agent=orphan.agent_identity)
                return 0
        except Exception as exc:  # noqa: BLE001 - the claim expires and any watcher retries
            self._metrics.recoveries.labels(result="failed").inc()
            log_event("recovery_failed", "re-dispatch failed; retried when the claim expires",
                      level=logging.WARNING, room=orphan.room, error=f"{type(exc).__name__}: {exc}"[:300])
            return 0
        self._metrics.recoveries.labels(result="dispatched").inc()
        log_event("recovery_dispatched", "call whose agent died re-dispatched", room=orphan.room,
                  dead_agent=orphan.agent_identity, dispatch_id=dispatch_id,
                  agent_name=won.agent_name, recoveries=won.recoveries)
        return 1

    async def job_exited(self, room: str, job_id: str) -> bool:
        """This worker saw the process of job ``job_id`` exit (RecoveryRuntime says how it
        knows): end the job's lease now, and remove its agent, which livekit-server keeps
        listed for about 20 s and whose room attribute still vouches for up to a lease, so
        that the next pass of any watcher recovers the call instead of waiting a lease for
        both proofs of life to lapse. True if a lease was ended. Never raises: anything that
        fails leaves the lease to run out by itself, as without this."""
        timeout = self._settings.db_timeout_seconds
        conn: Any = None
        try:
            conn = await asyncio.wait_for(self._connect_fn(self._settings.dsn, timeout), timeout)
            identity = await asyncio.wait_for(store.end_lease(conn, room=room, job_id=job_id), timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the lease runs out by itself
            log_event("job_lease_end_failed", "could not end the lease of a job whose process exited",
                      level=logging.WARNING, room=room, job_id=job_id,
                      error=f"{type(exc).__name__}: {exc}"[:300])
            return False
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.terminate()
        if identity is None:
            return False  # no row of this job: ended normally, or another job took it over
        if self._redispatch:
            try:
                await self._remove_participant(room, identity)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - recovered once its room attribute lapses
                log_event("recovery_failed", "could not remove the agent of a job whose process exited",
                          level=logging.WARNING, room=room, error=f"{type(exc).__name__}: {exc}"[:300])
        log_event("job_lease_ended", "the call's job process exited: its lease ended at once",
                  room=room, job_id=job_id, dead_agent=identity)
        return True

    @staticmethod
    def _same_call(orphan: store.Orphan, instance: Any, callers: list[Any]) -> bool:
        """The room under this name is the row's call: the same instance (SID) with one of the
        same callers; a row of the previous release (no SID) only if the room existed before the
        row was written (a room created later is a reused name)."""
        if not orphan.room_sid:
            created = instance.creation_time_ms / 1000 or float(instance.creation_time)
            return 0 < created <= orphan.created_at
        if instance.sid != orphan.room_sid:
            return False
        if not orphan.callers:
            return True  # the agent died before a caller was recorded: the instance decides
        present = {store.caller_hash(orphan.room_sid, p.identity) for p in callers}
        return bool(present & set(orphan.callers))

    # ----------------------------------------------------------------- LiveKit server API
    async def _room(self, room: str) -> Any:
        """The live room instance under this name, or None."""
        from livekit import api

        response = await self._api().room.list_rooms(api.ListRoomsRequest(names=[room]))
        rooms = [r for r in response.rooms if r.name == room]
        return rooms[0] if rooms else None

    def _api(self) -> Any:
        if self._lk is None:
            from livekit import api

            self._lk = api.LiveKitAPI(url=self._url, api_key=self._key, api_secret=self._secret)
        return self._lk

    async def _participants(self, room: str) -> list[Any]:
        from livekit import api

        try:
            response = await self._api().room.list_participants(api.ListParticipantsRequest(room=room))
        except api.TwirpError as exc:
            if exc.code == api.TwirpErrorCode.NOT_FOUND:
                return []  # the room is gone: everyone left
            raise
        return list(response.participants)

    async def _remove_participant(self, room: str, identity: str) -> None:
        from livekit import api

        # the dead agent lingers until the server times out its connection (about 20 s)
        with contextlib.suppress(api.TwirpError):
            await self._api().room.remove_participant(
                api.RoomParticipantIdentity(room=room, identity=identity))

    async def _undo(self, room: str, dispatch_id: str) -> None:
        """Take back a dispatch that re-created a closed room, and that empty room with it."""
        from livekit import api

        with contextlib.suppress(api.TwirpError):
            await self._api().agent_dispatch.delete_dispatch(dispatch_id, room)
        participants = await self._participants(room)
        if not caller_participants(participants):
            with contextlib.suppress(api.TwirpError):
                await self._api().room.delete_room(api.DeleteRoomRequest(room=room))

    async def _dispatch(self, room: str, agent_name: str, token: str) -> str:
        from livekit import api

        dispatch = await self._api().agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(agent_name=agent_name, room=room,
                                           metadata=recovery_metadata(token)))
        return str(dispatch.id)

    # ----------------------------------------------------------------- database health
    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            timeout = self._settings.db_timeout_seconds
            conn = await asyncio.wait_for(self._connect_fn(self._settings.dsn, timeout), timeout)
            try:
                await asyncio.wait_for(store.migrate(conn), max(timeout, 10.0))
            except BaseException:
                conn.terminate()
                raise
            self._conn = conn
        return self._conn

    def _db_ok(self) -> None:
        if self._healthy_since is None:
            self._healthy_since = time.monotonic()
        if self._failing:
            self._failing = False
            log_event("recovery_watcher_recovered", "recovery watcher reaches the database again")

    def _db_trusted(self) -> bool:
        """Leases that ran out while this watcher could not see the database may belong to live
        calls that could not renew them either: act only after one full lease of health."""
        return (self._healthy_since is not None
                and time.monotonic() - self._healthy_since >= self._settings.lease_seconds)

    async def _db_failed(self, exc: BaseException) -> None:
        self._healthy_since = None
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.terminate()
        if not self._failing:
            self._failing = True
            log_event("recovery_watcher_unavailable", "recovery watcher cannot work: no re-dispatch",
                      level=logging.WARNING, error=f"{type(exc).__name__}: {exc}"[:300])

    async def _sweep_if_due(self, conn: Any) -> None:
        if time.monotonic() - self._last_sweep < SWEEP_INTERVAL_SECONDS:
            return
        self._last_sweep = time.monotonic()
        swept = await asyncio.wait_for(
            store.sweep(conn, retention_seconds=self._settings.retention_seconds),
            self._settings.db_timeout_seconds)
        if swept:
            log_event("checkpoints_swept", "old checkpoints deleted", count=swept)

    async def aclose(self) -> None:
        if self._lk is not None:
            with contextlib.suppress(Exception):
                await self._lk.aclose()
            self._lk = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.terminate()
            self._conn = None
