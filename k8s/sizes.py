"""T-shirt sizes for agent pods, and the Autopilot rules every size must satisfy.

Anchors (DESIGN 3.9): LiveKit measured about 3.8 cores / 2.8 GB for 30 sessions with VAD and
suggests 4 cores / 8 GB per server for 10-25 jobs; seed 002 claims 0.16-0.25 core per session;
seed 000 claims 200-300m per session with bursts during turn-taking. With Gemini Live doing
speech in the cloud, the agent's own CPU goes to Silero VAD, resampling and WebRTC, so we plan
for ~0.15 core per session plus a core-quarter for the worker, and keep memory generous
because every job is its own process (see agent/bench for our own measurement).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Autopilot general-purpose compute class (GKE "Resource requests in Autopilot", 2026).
MIN_CPU_M, MIN_MEM_MI = 250, 512            # without bursting
MIN_CPU_M_BURST, MIN_MEM_MI_BURST = 50, 52  # with bursting
CPU_STEP_M = 250                            # CPU rounded up to 0.25 vCPU without bursting
MAX_CPU_M, MAX_MEM_MI = 30_000, 110 * 1024
MIN_GIB_PER_VCPU, MAX_GIB_PER_VCPU = 1.0, 6.5
# With bursting the CPU limit may exceed the request; memory limit stays equal to the request
# because a memory overcommit ends in an OOM kill, which is a dropped call.
BURST_CPU_LIMIT_FACTOR = 2


@dataclass(frozen=True)
class Size:
    cpu_m: int          # request, millicores
    memory_mi: int      # request, MiB
    sessions: int       # planned concurrent sessions per pod

    def limits(self, bursting: bool) -> tuple[int, int]:
        """(cpu_m, memory_mi) limits. Without bursting Autopilot sets limit = request anyway,
        so we write it down rather than let the platform change it silently."""
        return (self.cpu_m * BURST_CPU_LIMIT_FACTOR if bursting else self.cpu_m, self.memory_mi)


SIZES: dict[str, Size] = {
    "S": Size(cpu_m=1000, memory_mi=2048, sessions=4),
    "M": Size(cpu_m=2000, memory_mi=4096, sessions=10),
    "L": Size(cpu_m=4000, memory_mi=8192, sessions=20),
}


def autopilot_problems(cpu_m: int, memory_mi: int, bursting: bool) -> list[str]:
    """Reasons Autopilot would raise (and bill) or reject these requests; empty when valid."""
    problems = []
    min_cpu, min_mem = (MIN_CPU_M_BURST, MIN_MEM_MI_BURST) if bursting else (MIN_CPU_M, MIN_MEM_MI)
    if cpu_m < min_cpu:
        problems.append(f"CPU request {cpu_m}m is below the Autopilot minimum {min_cpu}m and would be raised silently")
    if memory_mi < min_mem:
        problems.append(f"memory request {memory_mi}Mi is below the Autopilot minimum {min_mem}Mi and would be raised silently")
    if not bursting and cpu_m % CPU_STEP_M:
        rounded = math.ceil(cpu_m / CPU_STEP_M) * CPU_STEP_M
        problems.append(f"CPU request {cpu_m}m is not a multiple of {CPU_STEP_M}m; Autopilot rounds it up to {rounded}m")
    if cpu_m > MAX_CPU_M or memory_mi > MAX_MEM_MI:
        problems.append(f"requests {cpu_m}m / {memory_mi}Mi exceed the Autopilot maximum {MAX_CPU_M}m / {MAX_MEM_MI}Mi and are rejected")
    if cpu_m > 0:
        ratio = (memory_mi / 1024) / (cpu_m / 1000)
        if not MIN_GIB_PER_VCPU <= ratio <= MAX_GIB_PER_VCPU:
            problems.append(f"memory:CPU ratio {ratio:.2f} GiB per vCPU is outside Autopilot's {MIN_GIB_PER_VCPU}..{MAX_GIB_PER_VCPU}; Autopilot raises one side")
    return problems
