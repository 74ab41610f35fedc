"""Run a test's worker as in a pod: cgroups of its own with a CPU limit, seen as its cgroup root.

Why every worker a test starts needs this. livekit-agents 1.8.9 computes a worker's load in
``utils/hw/cpu.py`` (``get_cpu_monitor``, used by ``worker._DefaultLoadCalc`` every 0.5 s,
averaged over 5 samples) from the cgroup files at the root the process sees:

- cgroup v2 (GKE Autopilot): chosen when ``/sys/fs/cgroup/cpu.stat`` exists; used CPU is
  ``cpu.stat`` ``usage_usec`` over the elapsed time, divided by ``cpu.max`` quota/period (the
  container's CPU limit, fractional: 500m reads as 0.5); ``cpu.max`` = ``max`` (no limit) divides
  by the node's CPU count.
- cgroup v1 (this test machine): chosen when ``/sys/fs/cgroup/cpu/cpu.cfs_quota_us`` or
  ``/sys/fs/cgroup/cpuacct/cpuacct.usage`` exists; used CPU is the ``cpuacct.usage`` delta over
  the NOMINAL 0.5 s interval (not the elapsed time), divided by ``max(quota / period, 1.0)``: a
  limit below 1 vCPU reads as 1 vCPU, and no quota (-1) reads as 2 CPUs whatever the machine.
- both: ``NUM_CPUS`` in the environment overrides the divisor (we never set it).

A process started plainly by a test sees the host's root cgroup, so its "load" is every
process on the machine: on a busy machine an idle worker reports 0.99, marks itself full, and
self-hosted livekit-server offers the room to nobody, once (the flaky
``test_explicit_dispatch[env]``). Before this module the TERM harness, the runbook test and the
runaway-job test each had a cgroup wrapper of their own and every other worker measured the
machine. A limit below 1 vCPU would read differently here (v1: as 1 vCPU) than on GKE (v2);
no test uses one. A container runtime instead puts the container in cgroups of its own
(CPU limit as CFS quota) inside a cgroup namespace, and mounts cgroupfs so that group is the
root. This module does the same for a test's process:

    group = PodCgroup.create(cpu_limit_millis=1000)   # mkdir + limits, or PodCgroupError
    argv = group.argv(["python", "-m", "voice_agent", "start"])   # joins, then execs (same PID)
    ...
    group.remove()   # kills whatever is left inside (as the runtime does), then rmdir

``argv`` joins the groups, ``unshare --cgroup --mount`` (cgroup namespace rooted at the group,
private mount namespace) and remounts each joined hierarchy there, so the framework's reads of
``/sys/fs/cgroup/...`` are the group's own files. On v1 the groups are cpu, cpuacct (the two the
framework reads) and memory (what voice_agent.admission reads); on v2 one group with cpu and
memory enabled by the parent. Groups are created under the cgroup the test process itself is in
(so whatever limits the machine puts on the suite still apply).

The group's CPU weight stays the kernel default (cpu.shares 1024, what the kubelet gives a
1-vCPU request: kuberuntime milliCPUToShares, 1024 per CPU); the quota is what the load divides by.

Needs root (mkdir in cgroupfs, namespaces). Nothing here falls back to the host's cgroup: any
failure is a ``PodCgroupError`` naming what is missing, and the wrapper exits 97 with a
``pod cgroup:`` line instead of running the command outside its group.
"""

from __future__ import annotations

import math
import os
import shlex
import signal
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
# The CFS period: kernel default, and what the kubelet uses (cpuCFSQuotaPeriod, 100 ms), so a
# limit of L millicores is a quota of L * 100 µs per period.
PERIOD_US = 100_000
# The kernel refuses a CFS quota below 1 ms (kernel/sched/core.c, min_cfs_quota_period), i.e.
# 10 millicores at a 100 ms period.
MIN_CPU_LIMIT_MILLIS = 10
# A test worker's CPU limit when the test does not run a rendered Deployment: 1 vCPU, the
# smallest agent pod the stacks size (k8s/sizes.py, size S). Tests that run a rendered
# Deployment use its resources.limits.cpu instead (term/kubelet.py).
DEFAULT_CPU_LIMIT_MILLIS = 1000
# Exit status of the wrapper when it cannot put the command in its group (never runs it then).
WRAPPER_FAILED = 97
NAME_PREFIX = "voice-agent-pod"
V1_CONTROLLERS = ("cpu", "cpuacct", "memory")
V2_CONTROLLERS = ("cpu", "memory")


def cpu_millis(quantity: str) -> int:
    """A Kubernetes CPU quantity ("2", "1500m", "0.5") in millicores (Kubernetes rounds a
    finer quantity up to 1m)."""
    if quantity.endswith("m"):
        return int(quantity[:-1])
    return math.ceil(float(quantity) * 1000)


class PodCgroupError(RuntimeError):
    """A worker cannot get a pod's cgroup here; the message says what is missing and the fix."""


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy the pod group lives in."""

    version: int                  # 1 or 2
    controllers: tuple[str, ...]  # v1: the mount's super options (its controllers, e.g. ("cpu",))
    mount_point: Path             # where the host mounted it
    own: Path                     # the test process's own cgroup directory in it

    def mount_command(self) -> str:
        """What mounts this hierarchy afresh (at the cgroup namespace's root) in the wrapper;
        v1 needs the same controller set as the host's mount, or the kernel refuses (EBUSY)."""
        mp = shlex.quote(str(self.mount_point))
        if self.version == 2:
            return f"mount -t cgroup2 cgroup2 {mp}"
        return f"mount -t cgroup -o {shlex.quote(','.join(self.controllers))} cgroup {mp}"


@dataclass(frozen=True)
class Host:
    """What the pod group is built from: the mounts and the caller's own cgroups."""

    euid: int
    mountinfo: str      # /proc/self/mountinfo
    proc_cgroup: str    # /proc/self/cgroup
    root: Path = ROOT   # where the framework looks (a v2 hierarchy counts only when mounted here)

    @classmethod
    def this(cls) -> "Host":
        return cls(os.geteuid(), Path("/proc/self/mountinfo").read_text(), Path("/proc/self/cgroup").read_text())

    def hierarchies(self) -> list[Hierarchy]:
        """The hierarchies a pod group needs: cpu, cpuacct, memory (v1) or the unified one (v2).

        v1 wins when the cpu controller is mounted as v1 (a hybrid host such as this one mounts
        cgroup2 at /sys/fs/cgroup/unified with no controllers; the framework reads v1 then)."""
        if self.euid != 0:
            raise PodCgroupError(
                f"a test worker runs in a pod cgroup of its own (its CPU load must be its own, not "
                f"the machine's), which needs root: running as euid {self.euid}; run the agent "
                f"tests as root (CI does)"
            )
        own = _own_cgroups(self.proc_cgroup)
        v1: dict[str, Hierarchy] = {}
        v2: Hierarchy | None = None
        for mount_point, root, fstype, options in _cgroup_mounts(self.mountinfo):
            if fstype == "cgroup2":
                if mount_point == self.root and v2 is None:
                    v2 = Hierarchy(2, (), mount_point, _own_dir(mount_point, root, own.get("")))
                continue
            controllers = tuple(o for o in options if o not in ("rw", "ro"))
            for controller in (c for c in controllers if c in V1_CONTROLLERS):
                # a hierarchy can be mounted twice (e.g. cpu,cpuacct plus symlinks): first wins
                v1.setdefault(controller, Hierarchy(1, controllers, mount_point,
                                                    _own_dir(mount_point, root, _own_path(own, controller))))
        if "cpu" in v1:
            missing = [c for c in V1_CONTROLLERS if c not in v1]
            if missing:
                raise PodCgroupError(
                    f"cgroup v1: no mounted {', '.join(missing)} controller (mounted: "
                    f"{', '.join(sorted(v1))}); the agent's load needs cpu and cpuacct, its "
                    f"admission memory"
                )
            unique: dict[Path, Hierarchy] = {}
            for controller in V1_CONTROLLERS:
                unique.setdefault(v1[controller].mount_point, v1[controller])
            return list(unique.values())
        if v2 is not None:
            enabled = (v2.own / "cgroup.subtree_control").read_text().split()
            missing = [c for c in V2_CONTROLLERS if c not in enabled]
            if missing:
                raise PodCgroupError(
                    f"cgroup v2: the {', '.join(missing)} controller is not enabled for the children "
                    f"of {v2.own} (cgroup.subtree_control: {' '.join(enabled) or 'empty'}); enable it "
                    f"with `echo +{missing[0]} > {v2.own}/cgroup.subtree_control` (the group itself "
                    f"must then hold no processes) or run the tests in a delegated cgroup"
                )
            return [v2]
        raise PodCgroupError(
            f"no cgroup filesystem under {self.root} (neither cgroup v1 cpu nor cgroup v2 is mounted); "
            f"a test worker cannot get a CPU limit of its own here"
        )


def _cgroup_mounts(mountinfo: str) -> list[tuple[Path, str, str, list[str]]]:
    """(mount point, root inside the hierarchy, fstype, super options) of every cgroup mount."""
    found = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        found.append((Path(fields[4]), fields[3], tail[0], tail[2].split(",")))
    return found


def _own_cgroups(proc_cgroup: str) -> dict[str, str]:
    """Controllers (sorted, comma-joined; "" for v2) -> the process's cgroup path."""
    own = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            own[",".join(sorted(c for c in parts[1].split(",") if c))] = parts[2]
    return own


def _own_path(own: dict[str, str], controller: str) -> str | None:
    return next((path for key, path in own.items() if controller in key.split(",")), None)


def _own_dir(mount_point: Path, mount_root: str, own: str | None) -> Path:
    """Our cgroup's directory under a mount whose root is `mount_root` in the hierarchy."""
    own = own or "/"
    relative = os.path.relpath(own, mount_root) if own.startswith(mount_root) else "."
    return mount_point if relative == "." else mount_point / relative


@dataclass(frozen=True)
class PodCgroup:
    """A pod's cgroups for one test process (create with ``PodCgroup.create``)."""

    name: str
    cpu_limit_millis: int
    memory_limit_bytes: int | None
    hierarchies: tuple[Hierarchy, ...]

    @classmethod
    def create(cls, cpu_limit_millis: int = DEFAULT_CPU_LIMIT_MILLIS, memory_limit_bytes: int | None = None,
               *, host: Host | None = None) -> "PodCgroup":
        """Make the group and write its limits (no memory limit by default: the group only
        accounts, as a pod without one). Raises PodCgroupError; never returns a partial group."""
        if not isinstance(cpu_limit_millis, int) or cpu_limit_millis < MIN_CPU_LIMIT_MILLIS:
            raise PodCgroupError(
                f"cpu_limit_millis={cpu_limit_millis!r} is out of range: allowed an integer >= "
                f"{MIN_CPU_LIMIT_MILLIS} (the kernel's smallest CFS quota, 1 ms per 100 ms period)"
            )
        if memory_limit_bytes is not None and (not isinstance(memory_limit_bytes, int) or memory_limit_bytes <= 0):
            raise PodCgroupError(
                f"memory_limit_bytes={memory_limit_bytes!r} is out of range: allowed None (no limit) "
                f"or a positive integer"
            )
        hierarchies = tuple((host or Host.this()).hierarchies())
        group = cls(f"{NAME_PREFIX}-{os.getpid()}-{uuid.uuid4().hex[:8]}", cpu_limit_millis,
                    memory_limit_bytes, hierarchies)
        try:
            group._write_limits()
        except OSError as error:
            group.remove()
            raise PodCgroupError(f"cannot create the pod cgroup {group.name}: {error}") from error
        _LIVE.add(group)
        return group

    @property
    def quota_us(self) -> int:
        return self.cpu_limit_millis * PERIOD_US // 1000

    def dirs(self) -> list[Path]:
        return [h.own / self.name for h in self.hierarchies]

    def dir_of(self, controller: str) -> Path:
        """The group's directory in the hierarchy holding `controller` (v2: the one group)."""
        for h in self.hierarchies:
            if h.version == 2 or controller in h.controllers:
                return h.own / self.name
        raise KeyError(controller)

    def _write_limits(self) -> None:
        for path in self.dirs():
            path.mkdir()
        if self.hierarchies[0].version == 2:
            group = self.dirs()[0]
            (group / "cpu.max").write_text(f"{self.quota_us} {PERIOD_US}")
            if self.memory_limit_bytes is not None:
                (group / "memory.max").write_text(str(self.memory_limit_bytes))
            return
        cpu = self.dir_of("cpu")
        (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(self.quota_us))
        if self.memory_limit_bytes is not None:
            (self.dir_of("memory") / "memory.limit_in_bytes").write_text(str(self.memory_limit_bytes))

    def argv(self, command: Sequence[str]) -> list[str]:
        """``command`` wrapped so it runs inside the group, seeing it as its cgroup root.

        The wrapper execs (no fork), so the PID a test holds is the command's own and signals
        reach it directly. The remount runs in the private mount namespace (unshare's default
        propagation is private): the host's mounts stay untouched."""
        join = " && ".join(f"echo $$ > {shlex.quote(str(d / 'cgroup.procs'))}" for d in self.dirs())
        remount = " && ".join(f"umount {shlex.quote(str(h.mount_point))} && {h.mount_command()}"
                              for h in self.hierarchies)
        def fail(step: str) -> str:
            return f"{{ echo 'pod cgroup: {step} failed for {self.name}' >&2; exit {WRAPPER_FAILED}; }}"

        inner = f'{remount} || {fail("remounting the cgroup filesystem")}; exec "$@"'
        outer = (f'{join} || {fail("joining the group")}; '
                 f'exec unshare --cgroup --mount sh -c {shlex.quote(inner)} sh "$@"')
        return ["sh", "-c", outer, "sh", *command]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.dirs():
            try:
                found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
            except FileNotFoundError:
                pass
        return found

    def remove(self, timeout: float = 10.0) -> None:
        """Kill what is still inside (as a container runtime does when the container ends),
        wait until the group is empty, then remove it. Idempotent; raises if it cannot."""
        deadline = time.monotonic() + timeout
        while (left := self.pids()) and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        problems = []
        for path in reversed(self.dirs()):
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError as error:
                problems.append(f"{path}: {error}")
        _LIVE.discard(self)
        if problems:
            raise PodCgroupError(f"cannot remove the pod cgroup (processes {sorted(self.pids())} "
                                 f"left): {'; '.join(problems)}")


# Groups this process created and has not removed yet: the agent suite's conftest removes them
# at the end of the session, whatever a test forgot.
_LIVE: set[PodCgroup] = set()


def remove_all() -> None:
    for group in list(_LIVE):
        group.remove()


def sweep_orphans(host: Host | None = None) -> list[str]:
    """Remove the pod groups of test sessions that are gone (their creator's PID, in the name,
    no longer runs): a session killed before its cleanup leaves its workers running in them.
    Kills what is inside, as remove() does. Returns the names removed."""
    hierarchies = tuple((host or Host.this()).hierarchies())
    names = {path.name for h in hierarchies for path in h.own.glob(f"{NAME_PREFIX}-*-*") if path.is_dir()}
    removed = []
    for name in sorted(names):
        creator = name[len(NAME_PREFIX) + 1:].split("-", 1)[0]
        if not creator.isdigit() or Path(f"/proc/{creator}").exists():
            continue
        PodCgroup(name, DEFAULT_CPU_LIMIT_MILLIS, None, hierarchies).remove()
        removed.append(name)
    return removed

