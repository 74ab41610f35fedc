"""Controlled TERM benchmark: runs every scenario of tests/term/scenarios.py once against a
real livekit-server and prints what a caller would notice.

    agent/.venv/bin/python agent/bench/term_bench.py

Numbers: time from SIGTERM until the replacement pod has taken a new call, calls lost per
scenario, time from the last call's end to the draining pod's exit.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from helpers.livekit_server import start_livekit_server  # noqa: E402
from term import scenarios  # noqa: E402

async def run_all(workdir: Path) -> None:
    server = start_livekit_server(workdir / "livekit")
    try:
        spec = scenarios.dev_spec(server, workdir)
        ours = spec.with_timing(drain_timeout=scenarios.SCALED_DRAIN_S)
        runs = [
            scenarios.rolling_replacement(server, workdir, ours),
            scenarios.drain_timeout(server, workdir, spec.with_timing(drain_timeout=8)),
            scenarios.wrapper_trap(server, workdir, scenarios.wrapped(spec, grace_s=12)),
            scenarios.seed_timing(server, workdir, scenarios.seed_000_spec(spec), call_s=20),
            scenarios.our_timing(server, workdir, ours, call_s=10),
        ]
        for run in runs:
            print((await run).summary(), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run_all(Path(tmp)))
