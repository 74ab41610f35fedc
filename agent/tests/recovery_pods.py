"""Harness for the crash-recovery scenarios and agent/bench/recovery.py: real livekit-server,
real PostgreSQL, real worker "pods" (each the contract command as PID 1 of its own PID namespace,
term/kubelet.py's Pod, so SIGKILL of PID 1 takes the whole pod the way a node loss or OOM kill
of the container does), and real rtc callers.

Only Gemini is replaced (fake_gemini on PYTHONPATH). Recovery timings are scaled down for the
tests (lease 1.5 s, watcher poll 0.25 s) and stated where used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from helpers.livekit_server import LiveKitServer
from helpers.participant import LOUD, Caller, join_as_caller, list_participant_kinds
from helpers.postgres import PostgresServer
from helpers.worker_process import PLAIN_CALL_IDS, contract_argv, wait_until_serving, worker_env
from term.kubelet import ContainerSpec, Pod

AGENT_KIND = 4
# generous: on the shared 2-core machine under other suites (load average 20-40 seen) a pod took
# more than 90 s to boot
REGISTER_TIMEOUT = 180.0
# scaled for tests: a dead job is noticed within lease + poll (production defaults 2 s / 0.25 s)
TEST_RECOVERY_ENV = {
    "AGENT_CHECKPOINT_LEASE_SECONDS": "1.5",
    "AGENT_RECOVERY_POLL_SECONDS": "0.25",
    "AGENT_RECOVERY_CLAIM_SECONDS": "10",
    "AGENT_CHECKPOINT_DB_TIMEOUT_SECONDS": "1",
    # the pod scenarios test recovery's timing and ownership; the envelope (Cloud KMS) is tested
    # against its stand-in in test_recovery_envelope.py
    "AGENT_RECOVERY_KMS_KEY": "none",
}
TABLE = "voice_agent_checkpoints"


def pod_env(server: LiveKitServer, pg: PostgresServer, extra: Mapping[str, str] | None = None,
            *, fake_gemini: bool = True) -> dict[str, str]:
    """fake_gemini=False: the real plugin, against the Live API stand-in whose env is in extra."""
    return worker_env(server, fake_gemini=fake_gemini,
                      extra={"AGENT_CHECKPOINT_DSN": pg.dsn, **TEST_RECOVERY_ENV, **PLAIN_CALL_IDS,
                             **(extra or {})})


def start_pod(env: Mapping[str, str], log_path: Path) -> Pod:
    spec = ContainerSpec(tuple(contract_argv()), dict(env), grace_seconds=30, pre_stop=None,
                         drain_timeout_seconds=20)
    host = {"PATH": env["PATH"], "PYTHONUNBUFFERED": "1"}
    return Pod(spec, env=host, log_path=log_path)


def wait_registered(*pods: Pod) -> None:
    """Registered, a job process warm, and reporting a load the server will dispatch to
    (helpers/worker_process.wait_until_serving says why registered alone is not enough: a
    booting pod's own load is near 1.0, and livekit-server v1.13.5 offers a room that arrives
    then to nobody, "worker not available", pkg/service/agentservice.go, and never again)."""
    for pod in pods:
        wait_until_serving(pod.worker, REGISTER_TIMEOUT)

def pod_serving(pods: Mapping[str, Pod], room: str) -> str | None:
    for name, pod in pods.items():
        if any(line.get("room") == room for line in pod.worker.events("job_accepted")):
            return name
    return None


def call_process(pod: Pod) -> psutil.Process:
    """The job process carrying a call: the only process of the pod holding UDP sockets
    (WebRTC media); idle prewarmed job processes have none."""
    for proc in psutil.Process(pod.pid1).children(recursive=True):
        try:
            if proc.net_connections(kind="udp"):
                return proc
        except psutil.Error:
            continue
    raise AssertionError("no job process with a media socket in the pod")


def events(pods: Mapping[str, Pod], event: str, **fields: Any) -> list[dict[str, Any]]:
    return [line for pod in pods.values() for line in pod.worker.events(event)
            if all(line.get(k) == v for k, v in fields.items())]


async def db_row(pg: PostgresServer, room: str) -> dict[str, Any] | None:
    import asyncpg

    conn = await asyncpg.connect(pg.dsn)
    try:
        row = await conn.fetchrow(f"SELECT job_id, payload, recoveries FROM {TABLE} WHERE room = $1", room)
    finally:
        await conn.close()
    if row is None:
        return None
    return {"job_id": row["job_id"], "payload": json.loads(row["payload"]), "recoveries": row["recoveries"]}


def item_ids(row: Mapping[str, Any] | None) -> list[str]:
    if not row:
        return []
    return [item["id"] for item in row["payload"]["chat_ctx"]["items"]]


async def wait_row(pg: PostgresServer, room: str, predicate, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with_suppressed = None
        try:
            last = await db_row(pg, room)
        except (OSError, Exception) as exc:  # the database may be down in a scenario
            with_suppressed = exc
        if last is not None and predicate(last):
            return last
        await asyncio.sleep(0.1 if with_suppressed is None else 0.5)
    raise AssertionError(f"checkpoint of {room}: {what} not seen within {timeout}s (last: {last})")


async def agents_in_room(server: LiveKitServer, room: str) -> list[str]:
    kinds = await list_participant_kinds(server, room)
    return [identity for identity, kind in kinds.items() if kind == AGENT_KIND]


@dataclass
class Trial:
    room: str
    killed: str
    seconds: float | None = None
    context_kept: bool = False
    agents_after: list[str] = field(default_factory=list)
    dispatches: int = 0
    # seconds after the SIGKILL at which each step of the recovery happened (the bench's
    # breakdown): "lease_end" from the row (database clock, same host), the others from the
    # pods' JSON log lines ("time")
    phases: dict[str, float] = field(default_factory=dict)


def _log_time(line: Mapping[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(line["time"]).replace("Z", "+00:00")).timestamp()


async def lease_until(pg: PostgresServer, room: str) -> float | None:
    """The row's lease end as Unix time (database clock), or None."""
    import asyncpg

    conn = await asyncpg.connect(pg.dsn)
    try:
        value = await conn.fetchval(
            f"SELECT EXTRACT(EPOCH FROM lease_until)::float8 FROM {TABLE} WHERE room = $1", room)
    finally:
        await conn.close()
    return value


def recovery_phases(pods: Mapping[str, Pod], room: str, killed_wall: float,
                    lease_end: float | None) -> dict[str, float]:
    """Where a recovery's seconds went, each step as seconds after the SIGKILL."""
    phases: dict[str, float] = {}
    if lease_end is not None:
        phases["lease_end"] = lease_end - killed_wall
    for event, key in (("recovery_dispatched", "dispatched"), ("job_accepted", "job_accepted"),
                       ("session_resumed", "resumed")):
        later = [t for t in (_log_time(line) for line in events(pods, event, room=room)) if t > killed_wall]
        if later:
            phases[key] = min(later) - killed_wall
    return {k: round(v, 3) for k, v in phases.items()}


def listen_for_new_agent(caller: Caller, old_agents: set[str]) -> asyncio.Event:
    """Set on the first loud audio frame from an agent not in ``old_agents`` (the dead agent's
    last buffered frames must not count as the replacement speaking)."""
    from livekit import rtc

    heard = asyncio.Event()

    async def count(track: rtc.Track) -> None:
        stream = rtc.AudioStream(track)
        try:
            async for event in stream:
                if max(abs(sample) for sample in event.frame.data) > LOUD:
                    heard.set()
                    return
        finally:
            await stream.aclose()

    def on_track(track: rtc.Track, _pub: Any, participant: rtc.RemoteParticipant) -> None:
        if (track.kind == rtc.TrackKind.KIND_AUDIO and participant.identity not in old_agents
                and participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT):
            caller._tasks.append(asyncio.ensure_future(count(track)))

    caller.room.on("track_subscribed", on_track)
    return heard


async def answered_call(server: LiveKitServer, pg: PostgresServer, pods: Mapping[str, Pod],
                        room: str, timeout: float = 60.0) -> tuple[Caller, str, dict[str, Any]]:
    """A caller in ``room`` whose agent has spoken and whose checkpoint holds the greeting."""
    caller = await join_as_caller(server, room, f"caller-{room}")
    await asyncio.wait_for(caller.agent_audio.wait(), timeout)
    row = await wait_row(pg, room, lambda r: len(item_ids(r)) >= 1, timeout, "a first item")
    name = pod_serving(pods, room)
    assert name is not None, f"no pod logged job_accepted for {room}"
    return caller, name, row


async def kill_and_measure(server: LiveKitServer, pg: PostgresServer, pods: Mapping[str, Pod],
                           caller: Caller, room: str, before: dict[str, Any], *, whole_pod: bool,
                           timeout: float = 45.0) -> Trial:
    """SIGKILL the serving pod (its PID namespace) or only the call's job process; seconds run
    from the signal to the replacement agent's first audio heard by the caller."""
    name = pod_serving(pods, room)
    assert name is not None
    pod = pods[name]
    victim = pod.pid1 if whole_pod else call_process(pod).pid
    old_agents = set(await agents_in_room(server, room))
    replacement_audio = listen_for_new_agent(caller, old_agents)
    # read before the kill: the dead job's worker may end the lease at once (a renewal between
    # this read and the kill only moves the real end later)
    lease_end = await lease_until(pg, room)
    killed_at, killed_wall = time.monotonic(), time.time()
    os.kill(victim, signal.SIGKILL)
    trial = Trial(room=room, killed=name if whole_pod else f"{name}/job")
    if whole_pod:
        await asyncio.to_thread(pod.worker.process.wait, 10)
    try:
        await asyncio.wait_for(replacement_audio.wait(), timeout)
        trial.seconds = time.monotonic() - killed_at
    except asyncio.TimeoutError:
        return trial
    old_ids = item_ids(before)
    try:
        after = await wait_row(pg, room, lambda r: r["job_id"] != before["job_id"]
                               and set(old_ids) <= set(item_ids(r)), 15.0, "the old items under a new job")
        trial.context_kept = bool(after)
    except AssertionError:
        trial.context_kept = False
    # a duplicate would join within the claim window; look once the dust has settled
    await asyncio.sleep(2.0)
    trial.agents_after = await agents_in_room(server, room)
    trial.dispatches = len(events(pods, "recovery_dispatched", room=room))
    trial.phases = recovery_phases(pods, room, killed_wall, lease_end)
    trial.phases["first_audio"] = round(trial.seconds, 3)
    return trial


class DbPath:
    """One pod's own path to PostgreSQL, like its Cloud SQL Auth Proxy sidecar: a TCP relay on
    loopback that a test can cut (the listener refuses, every open connection is dropped) while
    the database stays healthy for every other pod, and restore."""

    def __init__(self, pg: PostgresServer) -> None:
        import socket
        import threading

        self._target = ("127.0.0.1", pg.port)
        self._cut = threading.Event()
        self._conns: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.dsn = pg.dsn.replace(f":{pg.port}/", f":{self.port}/")
        self._thread = threading.Thread(target=self._run, name="db-path", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
            self._ready.set()
            async with server:
                await server.serve_forever()

        with contextlib.suppress(Exception):
            self._loop.run_until_complete(serve())

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut.is_set():
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._conns.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    if self._cut.is_set():
                        break
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._conns.difference_update({writer, up_writer})

    def cut(self) -> None:
        self._cut.set()

        def drop() -> None:
            for conn in list(self._conns):
                conn.transport.abort()

        self._loop.call_soon_threadsafe(drop)

    def restore(self) -> None:
        self._cut.clear()


# ---------------------------------------------------------------- faults (tests and bench)
# What makes PostgreSQL refuse or stall one call's snapshots, by room-name prefix, while every
# other statement (the lease renewal included: it leaves the payload alone) goes through.
# 22P05 is the SQLSTATE of the U+0000 refusal seen with a real transcript.
REFUSE_PREFIX = "fault-refuse-"
SLOW_PREFIX = "fault-slow-"
SNAPSHOT_FAULTS = f"""
CREATE OR REPLACE FUNCTION voice_agent_snapshot_fault() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.payload IS NOT DISTINCT FROM OLD.payload THEN
    RETURN NEW;
  END IF;
  IF NEW.room LIKE '{REFUSE_PREFIX}%' AND TG_OP = 'UPDATE' THEN
    RAISE EXCEPTION 'unsupported Unicode escape sequence' USING ERRCODE = '22P05';
  END IF;
  IF NEW.room LIKE '{SLOW_PREFIX}%' AND TG_OP = 'UPDATE' THEN
    PERFORM pg_sleep(30);
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS voice_agent_snapshot_fault ON {TABLE};
CREATE TRIGGER voice_agent_snapshot_fault BEFORE INSERT OR UPDATE ON {TABLE}
  FOR EACH ROW EXECUTE FUNCTION voice_agent_snapshot_fault();
"""


async def install_snapshot_faults(pg: PostgresServer) -> None:
    """Once the agents created the table (the first row is an INSERT, always let through)."""
    import asyncpg

    conn = await asyncpg.connect(pg.dsn)
    try:
        await conn.execute(SNAPSHOT_FAULTS)
    finally:
        await conn.close()


async def watch_agents(server: LiveKitServer, room: str, seconds: float) -> set[tuple[str, ...]]:
    """Every distinct set of agents seen in ``room`` over ``seconds`` (sampled every 0.25 s)."""
    seen: set[tuple[str, ...]] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(tuple(sorted(await agents_in_room(server, room))))
        await asyncio.sleep(0.25)
    return seen
