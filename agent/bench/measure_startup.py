"""Measure the worker's start-up time to "registered" and its idle memory.

Runs the contract command (`python -m voice_agent start`, cwd agent/) against a local
`livekit-server --dev`, the same way the integration tests do, and prints:

- start-up: process start -> the worker_registered line (median of --runs starts), which
  includes imports, the forkserver boot and the prewarm of the idle job processes (the
  framework registers only once its idle processes are ready);
- idle memory once registered: the worker process, the forkserver, and one idle (prewarmed,
  Silero loaded) job process. RSS counts pages shared copy-on-write with the forkserver in
  every process; USS (pages only that process holds) is what one more job process really costs;
- with --session: the same for the job process that serves one call (a synthetic caller, and
  Gemini replaced by the test-only fake at its seam, since Gemini cannot be reached here).

Usage (from the repo root): agent/.venv/bin/python agent/bench/measure_startup.py [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

AGENT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(AGENT_DIR / "tests"))

from helpers import participant  # noqa: E402
from helpers.livekit_server import LiveKitServer, start_livekit_server  # noqa: E402
from helpers.worker_process import (  # noqa: E402
    WorkerProcess,
    contract_argv,
    start_worker,
    wait_until_registered,
    worker_env,
)

MIB = 1024 * 1024
SETTLE_SECONDS = 3.0


@dataclass
class Memory:
    rss_mib: float
    uss_mib: float

    @classmethod
    def of(cls, process: psutil.Process) -> Memory:
        info = process.memory_full_info()
        return cls(round(info.rss / MIB, 1), round(info.uss / MIB, 1))


@dataclass
class Run:
    seconds_to_registered: float
    worker: Memory
    forkserver: Memory
    idle_job_process: Memory
    idle_job_processes: int


def _forkserver(worker: psutil.Process) -> psutil.Process:
    for child in worker.children():
        if "multiprocessing.forkserver" in " ".join(child.cmdline()):
            return child
    raise RuntimeError("no forkserver child: did the framework change its job executor?")


def _start(server: LiveKitServer, workdir: Path, fake_gemini: bool) -> tuple[WorkerProcess, float]:
    env = worker_env(
        server, fake_gemini=fake_gemini, extra={"HOME": str(workdir), "TMPDIR": str(workdir)}
    )
    started = time.monotonic()
    worker = start_worker(contract_argv(), env, log_path=workdir / "worker.log")
    wait_until_registered(worker, timeout=120)
    return worker, time.monotonic() - started


def measure_idle(
    server: LiveKitServer, workdir: Path, fake_gemini: bool
) -> tuple[Run, WorkerProcess]:
    worker, seconds = _start(server, workdir, fake_gemini)
    time.sleep(SETTLE_SECONDS)
    process = psutil.Process(worker.pid)
    forkserver = _forkserver(process)
    idle = forkserver.children()
    if not idle:
        raise RuntimeError("no idle job process after registration")
    run = Run(
        seconds_to_registered=round(seconds, 2),
        worker=Memory.of(process),
        forkserver=Memory.of(forkserver),
        idle_job_process=Memory.of(idle[0]),
        idle_job_processes=len(idle),
    )
    return run, worker


async def _session_memory(server: LiveKitServer, worker: WorkerProcess) -> Memory:
    await participant.create_room(server, "bench-call")
    caller = await participant.join_as_caller(server, "bench-call", "bench-caller")
    try:
        await asyncio.to_thread(worker.wait_for_event, "session_started", 60, room="bench-call")
        await asyncio.wait_for(caller.agent_audio.wait(), 30)
        await asyncio.sleep(SETTLE_SECONDS)
        job_pid = worker.events("session_started")[-1]["pid"]
        return Memory.of(psutil.Process(job_pid))
    finally:
        await participant.delete_room(server, "bench-call")
        await caller.leave()


def _print_memory(label: str, memory: Memory, note: str = "") -> None:
    print(f"{label + ':':<26}RSS {memory.rss_mib:7.1f} MiB  USS {memory.uss_mib:7.1f} MiB  {note}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3, help="worker starts to time (median)")
    parser.add_argument("--session", action="store_true", help="also measure a job in a call")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="voice-agent-bench-") as tmp:
        root = Path(tmp)
        server = start_livekit_server(root / "livekit")
        runs: list[Run] = []
        session: Memory | None = None
        try:
            for index in range(args.runs):
                last = index == args.runs - 1
                workdir = root / f"worker-{index}"
                workdir.mkdir()
                # the production seam unless a call is measured (then Gemini must be faked)
                run, worker = measure_idle(server, workdir, fake_gemini=args.session and last)
                runs.append(run)
                try:
                    if args.session and last:
                        session = asyncio.run(_session_memory(server, worker))
                finally:
                    worker.stop()
        finally:
            server.stop()

    report = {
        "cpu_count": psutil.cpu_count(),
        "runs": [asdict(run) for run in runs],
        "median_seconds_to_registered": statistics.median(r.seconds_to_registered for r in runs),
        "session_job_process": asdict(session) if session else None,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"worker start-up to registered (median of {len(runs)}): "
        f"{report['median_seconds_to_registered']:.2f} s "
        f"(runs: {', '.join(f'{r.seconds_to_registered:.2f}' for r in runs)})"
    )
    last_run = runs[-1]
    _print_memory("idle worker process", last_run.worker)
    _print_memory("forkserver", last_run.forkserver)
    _print_memory(
        "one idle job process",
        last_run.idle_job_process,
        f"({last_run.idle_job_processes} kept warm)",
    )
    if session:
        _print_memory("job process in one call", session, "(Gemini replaced by the test fake)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
