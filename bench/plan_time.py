"""Wall time of the offline plan against its import floor, per stack.

The floor is what no plan can avoid: a fresh interpreter importing exactly the Pulumi SDK
modules (pulumi, pulumi_gcp, pulumi_kubernetes and their submodules) that the plan of that stack
loads. Everything above it is our own work: reading settings, declaring resources, rendering,
policy. Plan and floor run as alternating pairs in fresh processes (so a busy moment hits both),
5 pairs by default; medians are printed with the machine's load, and the last line is JSON:
{"stacks": {stack: {"plan_s", "floor_s", "ratio"}}, "pairs": N, "load_1min": F}.

    .venv/bin/python bench/plan_time.py            # both stacks
    .venv/bin/python bench/plan_time.py --pairs 9 --stack prod
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SDK_PREFIXES = ("pulumi", "pulumi_gcp", "pulumi_kubernetes", "pulumi_random")

_LIST_SDK_MODULES = """
import os, sys
from tooling import plan
plan.evaluate(sys.argv[1])
# pulumi's lazy_import leaves never-used submodules in sys.modules as LazyLoader stubs (their
# type is importlib.util._LazyModule until first use): only modules actually executed count.
import types
names = sorted(n for n, m in list(sys.modules.items())
               if n.split('.')[0] in {prefixes!r} and type(m) is types.ModuleType)
sys.stdout.write('\\n'.join(names)); sys.stdout.flush(); os._exit(0)
"""


def sdk_modules(stack: str) -> list[str]:
    """The SDK modules one evaluation of the stack leaves in sys.modules."""
    code = _LIST_SDK_MODULES.format(prefixes=set(SDK_PREFIXES))
    done = subprocess.run([sys.executable, "-c", code, stack], cwd=ROOT, check=True, capture_output=True, text=True)
    return done.stdout.split()


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(stack: str, pairs: int) -> dict[str, float]:
    floor_code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    floor_argv = [sys.executable, "-c", floor_code, *sdk_modules(stack)]
    plan_times, floor_times = [], []
    with tempfile.TemporaryDirectory() as out:
        plan_argv = [sys.executable, "-m", "tooling.plan", "--stack", stack, "--out", out]
        for _ in range(pairs):
            plan_times.append(timed(plan_argv))
            floor_times.append(timed(floor_argv))
    plan_s, floor_s = statistics.median(plan_times), statistics.median(floor_times)
    print(f"plan {stack}: median {plan_s:.2f} s (min {min(plan_times):.2f}, max {max(plan_times):.2f}); "
          f"import floor {floor_s:.2f} s (min {min(floor_times):.2f}); ratio {plan_s / floor_s:.2f}")
    return {"plan_s": round(plan_s, 3), "floor_s": round(floor_s, 3), "ratio": round(plan_s / floor_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--stack", action="append", choices=("dev", "prod"))
    args = parser.parse_args()
    stacks = args.stack or ["dev", "prod"]
    load = os.getloadavg()[0]
    results = {stack: measure(stack, args.pairs) for stack in stacks}
    print(json.dumps({"stacks": results, "pairs": args.pairs, "load_1min": round(load, 2)}))


if __name__ == "__main__":
    main()
