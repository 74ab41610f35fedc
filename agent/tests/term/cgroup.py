"""A pod's CPU cgroup for a worker process: its own CPU accounting and the container's CPU limit.

Why: livekit-agents 1.8.9 measures a worker's load from the cgroup files at the cgroup root it
sees (utils/hw/cpu.py: /sys/fs/cgroup/cpu.stat + cpu.max on cgroup v2,
/sys/fs/cgroup/cpuacct/cpuacct.usage + cpu/cpu.cfs_quota_us on v1). In a pod those are the
container's own, with the CPU limit as quota. A test process started plainly sees the host's
root cgroup instead, i.e. every other test's CPU: on a busy machine an idle worker reports
itself full, and self-hosted LiveKit never re-offers a room that arrived then. That, not the
agent, made the rolling scenario fail now and then.

So each worker runs in a cgroup of its own, with the Deployment's CPU limit as quota, and a
private mount namespace binds that cgroup's directory over the root the framework reads, as a
container runtime does. Needs root (cgroup and mount namespace); ``supported()`` says whether
this machine allows it.
"""

from __future__ import annotations

import functools
import os
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000

_V2 = (
    'mkdir -p "$G" && echo "$Q $P" > "$G/cpu.max" && echo $$ > "$G/cgroup.procs" '
    '&& mount --bind "$G" /sys/fs/cgroup && unset G Q P && exec "$@"'
)
_V1 = (
    'mkdir -p "$C" "$A" && echo "$P" > "$C/cpu.cfs_period_us" && echo "$Q" > "$C/cpu.cfs_quota_us" '
    '&& echo $$ > "$C/cgroup.procs" && echo $$ > "$A/cgroup.procs" '
    '&& mount --bind "$C" /sys/fs/cgroup/cpu && mount --bind "$A" /sys/fs/cgroup/cpuacct '
    '&& unset C A Q P && exec "$@"'
)


def _v2() -> bool:
    return (ROOT / "cgroup.controllers").exists() and "cpu" in (ROOT / "cgroup.subtree_control").read_text()


def _v1() -> bool:
    return (ROOT / "cpu" / "cpu.cfs_quota_us").exists() and (ROOT / "cpuacct" / "cpuacct.usage").exists()


def cpu_millis(limit: str) -> int:
    """A Kubernetes CPU quantity ("2", "1500m", "0.5") in millicores."""
    return int(limit[:-1]) if limit.endswith("m") else int(float(limit) * 1000)


class PodCgroup:
    """One cgroup per worker; ``argv()`` wraps a command so it execs inside it (same PID)."""

    def __init__(self, cpu_limit_millis: int) -> None:
        self.name = f"voice-agent-test-{uuid.uuid4().hex[:8]}"
        self.quota_us = cpu_limit_millis * PERIOD_US // 1000

    def paths(self) -> list[Path]:
        if _v2():
            return [ROOT / self.name]
        return [ROOT / "cpu" / self.name, ROOT / "cpuacct" / self.name]

    def env(self) -> dict[str, str]:
        if _v2():
            return {"G": str(ROOT / self.name), "Q": str(self.quota_us), "P": str(PERIOD_US)}
        cpu, acct = self.paths()
        return {"C": str(cpu), "A": str(acct), "Q": str(self.quota_us), "P": str(PERIOD_US)}

    def argv(self, command: Sequence[str]) -> list[str]:
        script = _V2 if _v2() else _V1
        assignments = [f"{k}={v}" for k, v in self.env().items()]
        return ["env", *assignments, "unshare", "--mount", "sh", "-c", script, "sh", *command]

    def remove(self) -> None:
        """rmdir once empty (the kernel refuses while a process is still inside)."""
        for path in self.paths():
            try:
                path.rmdir()
            except OSError:
                pass


@functools.cache
def supported() -> bool:
    if os.geteuid() != 0 or not (_v2() or _v1()):
        return False
    group = PodCgroup(1000)
    try:
        done = subprocess.run(group.argv(["true"]), capture_output=True, timeout=10)
        return done.returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    finally:
        group.remove()
