"""Wall time of the offline plan per stack: 5 runs each in fresh processes, median printed."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5


def time_plan(stack: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tooling.plan", "--stack", stack, "--out", out], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    for stack in ("dev", "prod"):
        times = [time_plan(stack) for _ in range(RUNS)]
        print(f"plan {stack}: median {statistics.median(times):.2f} s over {RUNS} runs "
              f"(min {min(times):.2f}, max {max(times):.2f})")


if __name__ == "__main__":
    main()
