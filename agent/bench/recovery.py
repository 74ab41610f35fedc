"""Crash-recovery benchmark: SIGKILL the pod serving a call, again and again, and measure what
the caller notices.

    agent/.venv/bin/python agent/bench/recovery.py [--trials 10] [--job-kills 0]

Real livekit-server, real PostgreSQL (its own cluster in a temp dir), three worker pods (each
the contract command as PID 1 of its own PID namespace; SIGKILL of PID 1 takes the whole pod),
rtc callers; Gemini faked. Recovery timings as in the tests (tests/recovery_pods.py: lease
1.5 s, watcher poll 0.25 s), or with --production-timing the defaults (lease 3 s, poll 0.5 s). Each trial: a new
call is answered and its greeting checkpointed, the serving pod is killed (a replacement pod
is started at once, as a ReplicaSet would), and the clock runs from the SIGKILL to the first
audio frame of the replacement agent the caller hears.

One line per trial, then ONE JSON object last:
{"trials", "recovered", "context_kept", "seconds_p50", "seconds_p95", "duplicates"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

import recovery_pods as rp  # noqa: E402
from helpers.livekit_server import start_livekit_server  # noqa: E402
from helpers.postgres import start_postgres  # noqa: E402

PODS = ("a", "b", "c")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return round(ordered[index], 3)


async def run(trials: int, job_kills: int, workdir: Path) -> dict[str, object]:
    server = start_livekit_server(workdir / "livekit")
    pg = start_postgres()
    pods = {name: rp.start_pod(rp.pod_env(server, pg), workdir / f"{name}-0.log") for name in PODS}
    results: list[rp.Trial] = []
    try:
        await asyncio.to_thread(rp.wait_registered, *pods.values())
        for index in range(trials):
            room = f"bench-{index}"
            whole_pod = index >= job_kills
            caller, _, before = await rp.answered_call(server, pg, pods, room)
            try:
                trial = await rp.kill_and_measure(server, pg, pods, caller, room, before, whole_pod=whole_pod)
            finally:
                await caller.leave()
            results.append(trial)
            print(f"trial {index + 1}: killed {trial.killed}, recovered in "
                  f"{'-' if trial.seconds is None else f'{trial.seconds:.2f} s'}, context kept "
                  f"{trial.context_kept}, agents after {len(trial.agents_after)}, dispatches "
                  f"{trial.dispatches}", flush=True)
            for name, pod in list(pods.items()):
                if not pod.running():
                    pods[name] = rp.start_pod(rp.pod_env(server, pg), workdir / f"{name}-{index + 1}.log")
                    await asyncio.to_thread(rp.wait_registered, pods[name])
    finally:
        for pod in pods.values():
            pod.kill()
        pg.destroy()
        server.stop()
    seconds = [t.seconds for t in results if t.seconds is not None]
    return {
        "trials": len(results),
        "recovered": len(seconds),
        "context_kept": sum(t.context_kept for t in results),
        "seconds_p50": percentile(seconds, 0.5),
        "seconds_p95": percentile(seconds, 0.95),
        "duplicates": sum(max(0, len(t.agents_after) - 1) + max(0, t.dispatches - 1) for t in results),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--production-timing", action="store_true",
                        help="use the production lease and poll defaults instead of the tests' scaled ones")
    parser.add_argument("--job-kills", type=int, default=0,
                        help="how many of the first trials kill only the call's job process")
    args = parser.parse_args()
    if args.trials < 1 or not 0 <= args.job_kills <= args.trials:
        parser.error(f"--trials must be >= 1 and --job-kills in 0..{args.trials}")
    with tempfile.TemporaryDirectory(prefix="recovery-bench-") as tmp:
        if args.production_timing:
            for key in ("AGENT_CHECKPOINT_LEASE_SECONDS", "AGENT_RECOVERY_POLL_SECONDS"):
                rp.TEST_RECOVERY_ENV.pop(key)
        summary = asyncio.run(run(args.trials, args.job_kills, Path(tmp)))
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
