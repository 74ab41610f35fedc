"""Admission: the load a worker reports to LiveKit counts everything that can kill a pod.

livekit-agents 1.8.9 reports ``load_fnc(worker)`` every 0.5 s (worker.py, UPDATE_LOAD_INTERVAL)
and marks the worker full (WS_FULL) once it reaches ``load_threshold``; livekit-server routes no
job to a worker at or above its ``agents.target_load``. The default load is CPU only (used / the
container's CPU limit, utils/hw/cpu.py). Memory is not counted, so a pod can take calls until
the container is OOM-killed, taking every call with it (DESIGN 7.6).

Our load is the largest of three shares, each scaled so that "full" lands on the threshold:

- cpu:    the framework's own CPU load, unchanged;
- calls:  threshold x active jobs / AGENT_MAX_CALLS (the per-pod cap domain/capacity.py derives
          from the pod's size and the measured cost of a call);
- memory: threshold x working set / (memory limit - AGENT_JOB_MEMORY_LIMIT_MB): full while one
          more job could still grow to the size at which the framework kills it.

A runaway job is stopped by the framework itself: with ``job_memory_limit_mb`` set, each job
process is sampled every 5 s (ipc/supervised_proc.py, _MEMORY_MONITOR_INTERVAL; PSS, else USS,
else RSS) and killed once above it, so the other calls of the pod go on.

The settings half of this module imports nothing of livekit: ``settings.load_settings`` reads it
before the framework is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .env_declarations import SERVICE_ACCOUNT_DIR, VARIABLES, default_of, landed, read_variables

CGROUP = Path("/sys/fs/cgroup")
# Each variable's default, range and why: env_declarations.py (group "admission").
_DECLARED = tuple(v for v in VARIABLES if v.group == "admission")


@dataclass(frozen=True)
class AdmissionSettings:
    """What the worker counts before it takes another call (docs/workload.md, Admission)."""

    max_calls: int = default_of("AGENT_MAX_CALLS")
    job_memory_limit_mb: int = default_of("AGENT_JOB_MEMORY_LIMIT_MB")
    job_memory_warn_mb: int = default_of("AGENT_JOB_MEMORY_WARN_MB")
    pod_name: str = ""
    """AGENT_POD_NAME and AGENT_POD_NAMESPACE, set together: the worker keeps the pod's
    deletion cost (deletion_cost.py). Empty = it does not."""
    pod_namespace: str = ""
    kube_credentials_dir: str = SERVICE_ACCOUNT_DIR

    def public_fields(self) -> dict[str, object]:
        return {
            "max_calls": self.max_calls,
            "job_memory_limit_mb": self.job_memory_limit_mb,
            "job_memory_warn_mb": self.job_memory_warn_mb,
            "pod_name": self.pod_name,
            "pod_namespace": self.pod_namespace,
        }


def read_admission_settings(env: Mapping[str, str], problems: list[str]) -> AdmissionSettings:
    """Parse the admission variables; append one line per bad value to problems."""
    before = len(problems)
    values = read_variables(env, problems, _DECLARED)
    limit, warn = values["AGENT_JOB_MEMORY_LIMIT_MB"], values["AGENT_JOB_MEMORY_WARN_MB"]
    if limit and warn is not None and warn >= limit:
        problems.append(
            f"AGENT_JOB_MEMORY_WARN_MB={warn} is not below AGENT_JOB_MEMORY_LIMIT_MB={limit}: the "
            "warning must come before the kill; lower it or set it to 0")
    name, namespace = values["AGENT_POD_NAME"], values["AGENT_POD_NAMESPACE"]
    if None not in (name, namespace) and bool(name) != bool(namespace):
        problems.append(
            f"AGENT_POD_NAME={name!r} and AGENT_POD_NAMESPACE={namespace!r}: set both (from the downward "
            "API, to keep the pod's deletion cost) or neither")
    if len(problems) > before:
        return AdmissionSettings()
    return AdmissionSettings(**landed(values, _DECLARED, "admission"))


# ---- the three shares -----------------------------------------------------------------------


def calls_load(active_calls: int, max_calls: int, threshold: float) -> float:
    """Reaches the threshold exactly when the pod holds its cap of calls."""
    if max_calls <= 0:
        return 0.0
    return threshold * active_calls / max_calls


def memory_load(working_set_mib: float, limit_mib: float | None, reserve_mib: float,
                threshold: float) -> float:
    """Reaches the threshold when less than one job's kill size is left under the limit."""
    if limit_mib is None:
        return 0.0
    room = limit_mib - reserve_mib
    if room <= 0:
        return 1.0
    return threshold * working_set_mib / room


@dataclass(frozen=True)
class ContainerMemory:
    """The container's memory as the OOM killer and the kubelet see it, from the cgroup root
    the process sees (a container's own): working set = usage - inactive file pages."""

    root: Path = CGROUP

    def read(self) -> tuple[float, float | None]:
        """(working set MiB, limit MiB or None when unlimited)."""
        v2 = self.root / "memory.current"
        if v2.exists():
            usage = int(v2.read_text())
            limit_raw = (self.root / "memory.max").read_text().strip()
            inactive = _stat(self.root / "memory.stat", "inactive_file")
            limit = None if limit_raw == "max" else int(limit_raw)
        else:
            mem = self.root / "memory"
            usage = int((mem / "memory.usage_in_bytes").read_text())
            inactive = _stat(mem / "memory.stat", "total_inactive_file")
            limit = int((mem / "memory.limit_in_bytes").read_text())
            # v1 reports "no limit" as a huge page-aligned number (PAGE_COUNTER_MAX)
            limit = None if limit >= 2**62 else limit
        return (usage - inactive) / 2**20, None if limit is None else limit / 2**20


def _stat(path: Path, key: str) -> int:
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


@dataclass(frozen=True)
class Shares:
    cpu: float
    memory: float
    calls: float

    def load(self) -> float:
        return max(self.cpu, self.memory, self.calls)

    def limiting(self) -> str:
        return max(("cpu", self.cpu), ("memory", self.memory), ("calls", self.calls), key=lambda kv: kv[1])[0]


def admission_shares(settings: AdmissionSettings, threshold: float, cpu: float, active_calls: int,
                     memory: tuple[float, float | None]) -> Shares:
    working_set, limit = memory
    return Shares(
        cpu=cpu,
        memory=memory_load(working_set, limit, settings.job_memory_limit_mb, threshold),
        calls=calls_load(active_calls, settings.max_calls, threshold),
    )


def load_function(settings: AdmissionSettings, threshold: float,
                  cpu_load: Callable[[Any], float] | None = None,
                  memory: ContainerMemory | None = None,
                  on_shares: Callable[[Shares], None] | None = None) -> Callable[[Any], float]:
    """The ``load_fnc`` for AgentServer (it passes the server; run in an executor thread)."""
    if cpu_load is None:
        from livekit.agents.worker import _DefaultLoadCalc

        # the framework's default CPU load (0.5 s samples, 2.5 s moving average)
        cpu_load = _DefaultLoadCalc.get_load
    reader = memory or ContainerMemory()

    def load(server: Any) -> float:
        try:
            mem = reader.read()
        except (OSError, ValueError):
            mem = (0.0, None)  # no cgroup memory files (not in a container): CPU and calls only
        shares = admission_shares(settings, threshold, cpu_load(server), len(server.active_jobs), mem)
        if on_shares is not None:
            on_shares(shares)
        return shares.load()

    return load
