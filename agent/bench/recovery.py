"""Crash-recovery benchmark: kill the agent serving a call, again and again, measure what the
caller notices; then inject faults that must never cost a live call its agent nor hand one
caller's conversation to another.

    agent/.venv/bin/python agent/bench/recovery.py [--trials 10] [--job-kills 0]
        [--fault-trials 20] [--production-timing]

Real livekit-server, real PostgreSQL (its own cluster in a temp dir), three worker pods (each
the contract command as PID 1 of its own PID namespace; SIGKILL of PID 1 takes the whole pod),
each reaching the database through its own relay (recovery_pods.DbPath, standing in for its
Auth Proxy sidecar), rtc callers; Gemini faked (tests/fake_gemini). Recovery timings as in the
tests (tests/recovery_pods.py: lease 1.5 s, poll 0.25 s), or with --production-timing the
defaults (lease 2 s, poll 0.25 s).

Ordinary trials: a new call is answered and checkpointed, its pod (or, for the first
--job-kills, only its job process) is SIGKILLed (a replacement pod is started at once, as a
ReplicaSet would), and the clock runs from the SIGKILL to the first audio frame of the
replacement agent the caller hears.

Fault trials, in turn (a live call watched for four leases unless said otherwise):
- refuse: PostgreSQL refuses the call's snapshots (SQLSTATE 22P05, what U+0000 gives);
- slow: the call's snapshot writes never finish in time;
- own-path: the serving pod's own path to the database is cut (the database is fine for others);
- db-down: the database is down for everyone;
- reused: the agent of a call dies, the caller leaves, the room is deleted, and another caller
  opens a room of the same name: the new call must start fresh (no session_resumed there).

One line per trial, then ONE JSON object last:
{"trials", "recovered", "context_kept", "seconds_p50", "seconds_p95", "duplicates",
 "fault_trials", "live_agents_evicted", "cross_call_adoptions"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

import recovery_pods as rp  # noqa: E402
from helpers.livekit_server import start_livekit_server  # noqa: E402
from helpers.participant import delete_room, join_as_caller  # noqa: E402
from helpers.postgres import start_postgres  # noqa: E402

PODS = ("a", "b", "c")
FAULTS = ("refuse", "slow", "own-path", "db-down", "reused")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return round(ordered[index], 3)


class Bench:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.server = start_livekit_server(workdir / "livekit")
        self.pg = start_postgres()
        self.paths: dict[str, rp.DbPath] = {}
        self.pods: dict[str, rp.Pod] = {}
        self.started = 0
        self.lease = float(rp.TEST_RECOVERY_ENV.get("AGENT_CHECKPOINT_LEASE_SECONDS", "3"))

    def start_pod(self, name: str) -> None:
        self.paths[name] = rp.DbPath(self.pg)
        env = rp.pod_env(self.server, self.pg, {"AGENT_CHECKPOINT_DSN": self.paths[name].dsn})
        self.pods[name] = rp.start_pod(env, self.workdir / f"{name}-{self.started}.log")
        self.started += 1

    async def replace_dead_pods(self) -> None:
        for name, pod in list(self.pods.items()):
            if not pod.running():
                self.start_pod(name)
                await asyncio.to_thread(rp.wait_registered, self.pods[name])

    def close(self) -> None:
        for pod in self.pods.values():
            pod.kill()
        self.pg.destroy()
        self.server.stop()

    # ------------------------------------------------------------------ ordinary trials
    async def ordinary(self, index: int, whole_pod: bool) -> rp.Trial:
        room = f"bench-{index}"
        caller, _, before = await rp.answered_call(self.server, self.pg, self.pods, room)
        try:
            return await rp.kill_and_measure(self.server, self.pg, self.pods, caller, room, before,
                                             whole_pod=whole_pod)
        finally:
            await caller.leave()

    # ------------------------------------------------------------------ fault trials
    async def fault(self, index: int, kind: str) -> dict[str, object]:
        """Returns {"kind", "evicted": bool, "adopted": int, "duplicates": int}."""
        if kind == "reused":
            return await self._reused(index)
        prefix = {"refuse": rp.REFUSE_PREFIX, "slow": rp.SLOW_PREFIX}.get(kind, "fault-")
        room = f"{prefix}{kind}-{index}"
        # the call's first row is let through; its later snapshots (the greeting's) are refused
        # or stall, so wait for the agent's voice and the row, not for the greeting in it
        caller = await join_as_caller(self.server, room, f"caller-{room}")
        try:
            await asyncio.wait_for(caller.agent_audio.wait(), 60)
            await rp.wait_row(self.pg, room, lambda r: True, 60.0, "a row")
            serving = rp.pod_serving(self.pods, room)
            agents = tuple(sorted(await rp.agents_in_room(self.server, room)))
            if kind == "own-path":
                self.paths[serving].cut()
            elif kind == "db-down":
                await asyncio.to_thread(self.pg.stop)
            try:
                seen = await rp.watch_agents(self.server, room, 4 * self.lease)
            finally:
                if kind == "own-path":
                    self.paths[serving].restore()
                elif kind == "db-down":
                    await asyncio.to_thread(self.pg.start)
            # watchers trust the database again one lease after it is back: watch on
            seen |= await rp.watch_agents(self.server, room, 2 * self.lease)
        finally:
            await caller.leave()
        dispatched = len(rp.events(self.pods, "recovery_dispatched", room=room))
        evicted = seen != {agents} or dispatched > 0
        # whether the fault was felt: a dropped snapshot, or the database unreachable
        felt = len(rp.events(self.pods, "checkpoint_dropped", room=room)
                   + rp.events(self.pods, "checkpoint_unavailable", room=room))
        return {"kind": kind, "evicted": evicted, "adopted": 0, "felt": felt,
                "duplicates": sum(max(0, len(s) - 1) for s in seen)}

    async def _reused(self, index: int) -> dict[str, object]:
        room = f"fault-reused-{index}"
        caller, serving, _ = await rp.answered_call(self.server, self.pg, self.pods, room)
        pod = self.pods[serving]
        os.kill(rp.call_process(pod).pid, signal.SIGKILL)  # the agent dies mid-call
        await caller.leave()  # ... and its caller hangs up
        await delete_room(self.server, room)
        # another caller opens a room of the same name (per-user rooms, SIP rules)
        other = await join_as_caller(self.server, room, f"other-caller-{index}")
        try:
            await asyncio.wait_for(other.agent_audio.wait(), 60)
            seen = await rp.watch_agents(self.server, room, 2 * self.lease)
        finally:
            await other.leave()
        adopted = len(rp.events(self.pods, "session_resumed", room=room))
        return {"kind": "reused", "evicted": False, "adopted": adopted,
                "duplicates": sum(max(0, len(s) - 1) for s in seen)}


async def run(trials: int, job_kills: int, fault_trials: int, workdir: Path) -> dict[str, object]:
    bench = Bench(workdir)
    results: list[rp.Trial] = []
    faults: list[dict[str, object]] = []
    try:
        for name in PODS:
            bench.start_pod(name)
        await asyncio.to_thread(rp.wait_registered, *bench.pods.values())
        for index in range(trials):
            try:
                trial = await bench.ordinary(index, whole_pod=index >= job_kills)
            except Exception as exc:  # noqa: BLE001 - a trial that broke counts as not recovered
                print(f"trial {index + 1}: failed: {type(exc).__name__}: {exc}"[:500], flush=True)
                trial = rp.Trial(room=f"bench-{index}", killed="?")
            results.append(trial)
            print(f"trial {index + 1}: killed {trial.killed}, recovered in "
                  f"{'-' if trial.seconds is None else f'{trial.seconds:.2f} s'}, context kept "
                  f"{trial.context_kept}, agents after {len(trial.agents_after)}, dispatches "
                  f"{trial.dispatches}, phases {json.dumps(trial.phases)}", flush=True)
            await bench.replace_dead_pods()
        if fault_trials:
            await rp.install_snapshot_faults(bench.pg)
        for index in range(fault_trials):
            kind = FAULTS[index % len(FAULTS)]
            try:
                outcome = await bench.fault(index, kind)
            except Exception as exc:  # noqa: BLE001 - reported; not a fault trial that ran
                outcome = {"kind": kind, "evicted": False, "adopted": 0, "duplicates": 0,
                           "error": f"{type(exc).__name__}: {exc}"[:300]}
            faults.append(outcome)
            print(f"fault {index + 1}: {json.dumps(outcome)}", flush=True)
            await bench.replace_dead_pods()
    finally:
        bench.close()
    seconds = [t.seconds for t in results if t.seconds is not None]
    return {
        "trials": len(results),
        "recovered": len(seconds),
        "context_kept": sum(t.context_kept for t in results),
        "seconds_p50": percentile(seconds, 0.5),
        "seconds_p95": percentile(seconds, 0.95),
        "duplicates": sum(max(0, len(t.agents_after) - 1) + max(0, t.dispatches - 1) for t in results)
        + sum(int(f["duplicates"]) for f in faults),
        # only trials that ran to the end count (a call no agent answered, e.g. every worker
        # above its load threshold, is printed with its error and left out)
        "fault_trials": sum("error" not in f for f in faults),
        "live_agents_evicted": sum(bool(f["evicted"]) for f in faults),
        "cross_call_adoptions": sum(int(f["adopted"]) for f in faults),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--production-timing", action="store_true",
                        help="use the production lease and poll defaults instead of the tests' scaled ones")
    parser.add_argument("--job-kills", type=int, default=0,
                        help="how many of the first trials kill only the call's job process")
    parser.add_argument("--fault-trials", type=int, default=20,
                        help=f"fault trials, taking turns over {', '.join(FAULTS)}")
    args = parser.parse_args()
    if args.trials < 0 or not 0 <= args.job_kills <= args.trials or args.fault_trials < 0:
        parser.error(f"--trials and --fault-trials must be >= 0 and --job-kills in 0..{args.trials}")
    with tempfile.TemporaryDirectory(prefix="recovery-bench-") as tmp:
        if args.production_timing:
            for key in ("AGENT_CHECKPOINT_LEASE_SECONDS", "AGENT_RECOVERY_POLL_SECONDS"):
                rp.TEST_RECOVERY_ENV.pop(key)
        summary = asyncio.run(run(args.trials, args.job_kills, args.fault_trials, Path(tmp)))
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
