"""T-shirt sizes for agent pods, and what Autopilot does to any requests and limits.

Per-call figures come from our own measurement (agent/bench/capacity.py, committed output in
domain/data/capacity-measured.json, margins in domain/capacity.py): one worker under a 1-vCPU quota
costs about 116-144m and 66 MiB per call on top of a base of about 21m and 535 MiB (worker,
forkserver, one idle process), and its CPU saturates (quota throttling) between 6 and 8 calls.
Planned: 180m and 144 MiB per call, 100m and 704 MiB of base, and room for one runaway job at its
kill size (576 MiB). Upstream anchors, per concurrent voice session (DESIGN 3.9): LiveKit's load
test about 3.8 cores / 2.8 GB for 30 sessions with VAD (~130m, ~95 MB), seed 002 0.16 core and
50 MB, seed 000 200-300m with bursts. The measurement sits among them.

Sessions per pod are derived from those figures, never typed in (domain/capacity.py):
`sessions_per_pod`, the smaller of what CPU and memory carry; CPU runs out first in every size. The table below gives requests; limits follow from the bursting mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Autopilot general-purpose compute class ("Resource requests in Autopilot", GKE docs, 2026;
# DESIGN 3.7). Requests below a minimum are raised silently and billed; above a maximum the
# Pod is rejected.
MIN_CPU_M, MIN_MEM_MI = 250, 512            # clusters without bursting
MIN_CPU_M_BURST, MIN_MEM_MI_BURST = 50, 52  # clusters with bursting (GKE >= 1.30.2, cgroup v2)
CPU_STEP_M = 250                            # CPU rounded up to 0.25 vCPU without bursting
MAX_CPU_M, MAX_MEM_MI = 30_000, 110 * 1024
MIN_GIB_PER_VCPU, MAX_GIB_PER_VCPU = 1.0, 6.5

# With bursting, the CPU limit is this multiple of the request. Not 2x: the worker admits calls
# until CPU used / CPU *limit* reaches load_threshold (0.7), so a 2x limit would have it take
# calls up to 1.4x the CPU the pod is guaranteed. At a busy hour the node's spare CPU is gone
# and every call on the pod stutters. 1.4 x 0.7 = 0.98: admission stays within the request,
# and the 40 % above it is room for short spikes (a job process starting, a burst of speech).
# domain/capacity.py checks the same bound for any configured load threshold.
BURST_CPU_LIMIT_FACTOR = 1.4


class AutopilotRejects(ValueError):
    """Requests above the compute class maximum: Autopilot refuses the Pod outright."""


@dataclass(frozen=True)
class Resources:
    """Requests and limits of the agent container, in millicores and MiB."""

    cpu_request_m: int
    memory_request_mi: int
    cpu_limit_m: int
    memory_limit_mi: int

    def requests(self) -> dict[str, str]:
        return {"cpu": f"{self.cpu_request_m}m", "memory": f"{self.memory_request_mi}Mi"}

    def limits(self) -> dict[str, str]:
        return {"cpu": f"{self.cpu_limit_m}m", "memory": f"{self.memory_limit_mi}Mi"}


@dataclass(frozen=True)
class Size:
    """A T-shirt size: requests, valid on Autopilot with and without bursting."""

    cpu_m: int      # CPU request, millicores
    memory_mi: int  # memory request, MiB

    def resources(self, bursting: bool) -> Resources:
        """What the Deployment declares. Memory limit = request in both modes: memory over the
        request is not guaranteed either, and running out of it is an OOM kill, i.e. dropped
        calls, not a slower call."""
        cpu_limit = round(self.cpu_m * BURST_CPU_LIMIT_FACTOR) if bursting else self.cpu_m
        return Resources(self.cpu_m, self.memory_mi, cpu_limit, self.memory_mi)

    def limits(self, bursting: bool) -> tuple[int, int]:
        """(cpu_m, memory_mi) limits."""
        r = self.resources(bursting)
        return r.cpu_limit_m, r.memory_limit_mi


# 2 GiB per vCPU: inside Autopilot's 1..6.5 GiB per vCPU, and enough for the calls each size
# admits plus one runaway job at its kill size (checked in tests/k8s/test_sizes.py); 1 GiB per
# vCPU would not hold S's base and one job's kill size. Calls per pod at the default load
# threshold 0.7, from k8s/capacity.sessions_per_pod (the worker's AGENT_MAX_CALLS):
#        request        no bursting (limit = request)   bursting (CPU limit 1.4x)
#   S    1000m / 2 GiB  3 calls                         4 calls
#   M    2000m / 4 GiB  7 calls                         10 calls
#   L    4000m / 8 GiB  15 calls                        21 calls
# L sits at LiveKit's "4 cores for 10-25 jobs"; S is the smallest pod that still carries a few
# calls next to the worker's own base load.
SIZES: dict[str, Size] = {
    "S": Size(cpu_m=1000, memory_mi=2048),
    "M": Size(cpu_m=2000, memory_mi=4096),
    "L": Size(cpu_m=4000, memory_mi=8192),
}


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def autopilot_normalise(declared: Resources, bursting: bool) -> Resources:
    """The requests and limits Autopilot would actually run for `declared`.

    Without bursting: CPU rounded up to 250m, minimums 250m / 512 MiB, limits forced to the
    requests. With bursting: minimums 50m / 52 MiB, limits kept (never below the requests).
    Either way, a CPU:memory ratio outside 1:1..1:6.5 is fixed by raising the smaller side.
    Raises AutopilotRejects above the maximums.
    """
    min_cpu, min_mem = (MIN_CPU_M_BURST, MIN_MEM_MI_BURST) if bursting else (MIN_CPU_M, MIN_MEM_MI)
    cpu = max(declared.cpu_request_m, min_cpu)
    mem = max(declared.memory_request_mi, min_mem)
    if not bursting:
        cpu = _round_up(cpu, CPU_STEP_M)
    if mem < cpu / 1000 * MIN_GIB_PER_VCPU * 1024:
        mem = math.ceil(cpu / 1000 * MIN_GIB_PER_VCPU * 1024)
    if mem > cpu / 1000 * MAX_GIB_PER_VCPU * 1024:
        cpu = math.ceil(mem / 1024 / MAX_GIB_PER_VCPU * 1000)
        if not bursting:
            cpu = _round_up(cpu, CPU_STEP_M)
    if cpu > MAX_CPU_M or mem > MAX_MEM_MI:
        raise AutopilotRejects(f"requests {cpu}m / {mem}Mi exceed the Autopilot maximum {MAX_CPU_M}m / {MAX_MEM_MI}Mi")
    if not bursting:
        return Resources(cpu, mem, cpu, mem)
    return Resources(cpu, mem, max(declared.cpu_limit_m, cpu), max(declared.memory_limit_mi, mem))


def autopilot_problems(cpu_m: int, memory_mi: int, bursting: bool) -> list[str]:
    """Reasons Autopilot would raise (and bill) or reject these requests; empty when valid.

    The policy pack calls this on rendered containers, config validation on the chosen size.
    """
    problems = []
    min_cpu, min_mem = (MIN_CPU_M_BURST, MIN_MEM_MI_BURST) if bursting else (MIN_CPU_M, MIN_MEM_MI)
    if cpu_m < min_cpu:
        problems.append(f"CPU request {cpu_m}m is below the Autopilot minimum {min_cpu}m and would be raised silently")
    if memory_mi < min_mem:
        problems.append(f"memory request {memory_mi}Mi is below the Autopilot minimum {min_mem}Mi and would be raised silently")
    if not bursting and cpu_m % CPU_STEP_M:
        rounded = _round_up(cpu_m, CPU_STEP_M)
        problems.append(f"CPU request {cpu_m}m is not a multiple of {CPU_STEP_M}m; Autopilot rounds it up to {rounded}m")
    if cpu_m > MAX_CPU_M or memory_mi > MAX_MEM_MI:
        problems.append(f"requests {cpu_m}m / {memory_mi}Mi exceed the Autopilot maximum {MAX_CPU_M}m / {MAX_MEM_MI}Mi and are rejected")
    if cpu_m > 0:
        ratio = (memory_mi / 1024) / (cpu_m / 1000)
        if not MIN_GIB_PER_VCPU <= ratio <= MAX_GIB_PER_VCPU:
            problems.append(f"memory:CPU ratio {ratio:.2f} GiB per vCPU is outside Autopilot's {MIN_GIB_PER_VCPU}..{MAX_GIB_PER_VCPU}; Autopilot raises one side")
    return problems
