"""The pod cgroup every test worker runs in (helpers/pod_cgroup.py).

Guards against a worker whose load is the whole machine's CPU: the flake where an idle worker on
a busy machine read 0.99 and never took a call. Real cgroups where they count (this machine's
v1 hierarchies, as root); the parsing of mounts and the v2 layout against files written here,
each input stated."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import pod_cgroup
from helpers.pod_cgroup import (
    DEFAULT_CPU_LIMIT_MILLIS,
    MIN_CPU_LIMIT_MILLIS,
    WRAPPER_FAILED,
    Host,
    PodCgroup,
    PodCgroupError,
    cpu_millis,
)
from helpers.worker_process import start_worker

# What this machine's kernel shows (cgroup v1, cpu/cpuacct/memory mounted apart, a hybrid
# cgroup2 at unified), trimmed to the fields the parser reads: proc(5) mountinfo.
V1_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V1_PROC_CGROUP = "4:memory:/suite/a\n2:cpuacct:/\n1:cpu:/\n0::/\n"


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the agent tests run as root (workers get pod cgroups); running as euid "
                    f"{os.geteuid()}")


def _run_inside(group: PodCgroup, script: str, timeout: float = 60) -> str:
    """`script` (python) run in the group with the agent's interpreter; its stdout."""
    result = subprocess.run(group.argv([sys.executable, "-c", script]), capture_output=True, text=True,
                            timeout=timeout, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    return result.stdout


# ---- the real thing ------------------------------------------------------------------------------


def test_group_is_created_with_the_limit_as_quota_and_removed_after() -> None:
    _needs_root()
    group = PodCgroup.create(1500, 3 * 2**30)
    try:
        cpu, memory = group.dir_of("cpu"), group.dir_of("memory")
        assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "150000"
        assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
        assert int((memory / "memory.limit_in_bytes").read_text()) == 3 * 2**30
        # under the suite's own cgroups, so the machine's limits on the suite still hold
        own = dict(line.split(":", 2)[1:] for line in Path("/proc/self/cgroup").read_text().splitlines())
        assert memory.parent == Path("/sys/fs/cgroup/memory") / own["memory"].lstrip("/")
        assert group in pod_cgroup._LIVE
    finally:
        group.remove()
    assert not any(path.exists() for path in group.dirs())
    assert group not in pod_cgroup._LIVE
    group.remove()  # idempotent


def test_no_memory_limit_unless_asked() -> None:
    _needs_root()
    group = PodCgroup.create()
    try:
        assert group.cpu_limit_millis == DEFAULT_CPU_LIMIT_MILLIS
        assert int((group.dir_of("memory") / "memory.limit_in_bytes").read_text()) >= 2**62
    finally:
        group.remove()


def test_the_framework_inside_measures_the_group_not_the_machine() -> None:
    """livekit-agents' own monitor (utils/hw/cpu.py, the one the worker's load uses), run in the
    group while a busy loop outside it holds every core of the machine: it picks the v1 monitor,
    divides by the group's quota and sees only the group's CPU. Before, it read the machine's."""
    _needs_root()
    hogs = [subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 1)]
    group = PodCgroup.create(1500)
    try:
        out = _run_inside(group, (
            "from livekit.agents.utils.hw import get_cpu_monitor\n"
            "m = get_cpu_monitor()\n"
            "print(type(m).__name__, m.cpu_count(), max(m.cpu_percent(0.5) for _ in range(3)))\n"
            "print(open('/proc/self/cgroup').read())\n"
        ))
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        group.remove()
    first, cgroups = out.split("\n", 1)
    kind, cpus, busiest = first.split()
    assert (kind, float(cpus)) == ("CGroupV1CPUMonitor", 1.5)
    # the inside process sleeps while it measures: only its own few ms of CPU can count
    assert float(busiest) < 0.2, out
    # it sees its group as its cgroup root (cgroup namespace), as a container does
    paths = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in cgroups.splitlines() if line}
    assert paths["cpu"] == paths["cpuacct"] == paths["memory"] == "/", cgroups


def test_the_group_counts_what_runs_inside() -> None:
    """The other half: CPU used inside is in the group's accounting, as the framework reads it."""
    _needs_root()
    group = PodCgroup.create(1000)
    try:
        out = _run_inside(group, (
            "import time\n"
            "read = lambda: int(open('/sys/fs/cgroup/cpuacct/cpuacct.usage').read())\n"
            "before, cpu0 = read(), time.process_time()\n"
            "while time.process_time() - cpu0 < 0.3: pass\n"
            "print(read() - before, int((time.process_time() - cpu0) * 1e9))\n"
        ))
        used_by_group = int((group.dir_of("cpuacct") / "cpuacct.usage").read_text())
    finally:
        group.remove()
    seen, own = (int(v) for v in out.split())
    assert seen >= own * 0.95, out   # what the process burnt is in the file it reads
    assert used_by_group >= seen      # and that file is the group's (read from the host side)


def test_a_process_holds_its_own_pid_inside_and_cleanup_kills_leftovers() -> None:
    _needs_root()
    group = PodCgroup.create()
    process = subprocess.Popen(group.argv(["sleep", "600"]))
    try:
        cmdline = Path(f"/proc/{process.pid}/cmdline")
        deadline = time.monotonic() + 10
        while cmdline.read_bytes().split(b"\0")[0] != b"sleep" and time.monotonic() < deadline:
            time.sleep(0.02)
        # the wrapper exec'd: the PID a test holds and signals is the command's, inside the group
        assert cmdline.read_bytes().split(b"\0")[0] == b"sleep"
        assert group.pids() == {process.pid}
        group.remove()
        assert process.wait(5) == -signal.SIGKILL
        assert not any(path.exists() for path in group.dirs())
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        group.remove()


def test_the_wrapper_never_runs_the_command_outside_its_group(tmp_path: Path) -> None:
    """A group gone before the start: the wrapper exits 97 with one line; the command never runs
    (no silent fallback to the machine's cgroup)."""
    _needs_root()
    group = PodCgroup.create()
    group.remove()
    marker = tmp_path / "ran"
    result = subprocess.run(group.argv(["touch", str(marker)]), capture_output=True, text=True, timeout=30)
    assert result.returncode == WRAPPER_FAILED
    assert f"pod cgroup: joining the group failed for {group.name}" in result.stderr
    assert not marker.exists()


def test_start_worker_puts_the_process_in_a_pod_cgroup_and_stop_removes_it(tmp_path: Path) -> None:
    _needs_root()
    script = "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us; exec sleep 600"
    worker = start_worker(["sh", "-c", script], {"PATH": os.environ["PATH"]}, log_path=tmp_path / "log",
                          cpu_limit_millis=2500)
    try:
        deadline = time.monotonic() + 10
        while not worker.raw_lines and time.monotonic() < deadline:
            time.sleep(0.02)
        assert worker.raw_lines[:1] == ["250000"]
        assert worker.pid in worker.cgroup.pids()
    finally:
        worker.stop(timeout=2)
    assert not any(path.exists() for path in worker.cgroup.dirs())


# ---- inputs and what this machine offers --------------------------------------------------------


@pytest.mark.parametrize(("limit", "ok"), [(MIN_CPU_LIMIT_MILLIS - 1, False), (MIN_CPU_LIMIT_MILLIS, True),
                                          (MIN_CPU_LIMIT_MILLIS + 1, True), (0, False), (1.5, False)])
def test_cpu_limit_at_its_lower_bound(limit, ok: bool) -> None:
    if not ok:
        with pytest.raises(PodCgroupError, match=rf"cpu_limit_millis={limit!r} is out of range: "
                                                 rf"allowed an integer >= {MIN_CPU_LIMIT_MILLIS}"):
            PodCgroup.create(limit)
        return
    _needs_root()
    group = PodCgroup.create(limit)
    try:
        assert (group.dir_of("cpu") / "cpu.cfs_quota_us").read_text().strip() == str(limit * 100)
    finally:
        group.remove()


@pytest.mark.parametrize("memory", [0, -1, 1.5])
def test_memory_limit_must_be_positive(memory) -> None:
    with pytest.raises(PodCgroupError, match=rf"memory_limit_bytes={memory!r} is out of range"):
        PodCgroup.create(1000, memory)


@pytest.mark.parametrize(("quantity", "millis"), [("2", 2000), ("1500m", 1500), ("0.5", 500), ("0.0005", 1)])
def test_kubernetes_cpu_quantities(quantity: str, millis: int) -> None:
    assert cpu_millis(quantity) == millis


def test_not_root_is_one_clear_error() -> None:
    host = Host(1000, V1_MOUNTINFO, V1_PROC_CGROUP)
    with pytest.raises(PodCgroupError, match=r"needs root: running as euid 1000; run the agent tests as root"):
        host.hierarchies()


def test_no_cgroup_filesystem_is_one_clear_error() -> None:
    host = Host(0, "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n", "0::/\n")
    with pytest.raises(PodCgroupError, match=r"no cgroup filesystem under /sys/fs/cgroup"):
        host.hierarchies()


def test_v1_without_cpuacct_is_one_clear_error() -> None:
    mountinfo = "\n".join(line for line in V1_MOUNTINFO.splitlines() if "cpuacct" not in line)
    with pytest.raises(PodCgroupError, match=r"cgroup v1: no mounted cpuacct controller"):
        Host(0, mountinfo, V1_PROC_CGROUP).hierarchies()


def test_v1_hierarchies_under_the_callers_own_groups() -> None:
    found = Host(0, V1_MOUNTINFO, V1_PROC_CGROUP).hierarchies()
    assert [(h.mount_point, h.own, h.mount_command()) for h in found] == [
        (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup/cpu"), "mount -t cgroup -o cpu cgroup /sys/fs/cgroup/cpu"),
        (Path("/sys/fs/cgroup/cpuacct"), Path("/sys/fs/cgroup/cpuacct"),
         "mount -t cgroup -o cpuacct cgroup /sys/fs/cgroup/cpuacct"),
        (Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup/memory/suite/a"),
         "mount -t cgroup -o memory cgroup /sys/fs/cgroup/memory"),
    ]


def test_v1_cpu_and_cpuacct_mounted_together_are_one_group() -> None:
    """The usual systemd layout: cpu,cpuacct co-mounted; remounted with both or the kernel says EBUSY."""
    mountinfo = ("32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
                 "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
    found = Host(0, mountinfo, "4:memory:/\n2:cpu,cpuacct:/user.slice\n").hierarchies()
    assert [(h.own, h.mount_command()) for h in found] == [
        (Path("/sys/fs/cgroup/cpu,cpuacct/user.slice"),
         "mount -t cgroup -o cpu,cpuacct cgroup /sys/fs/cgroup/cpu,cpuacct"),
        (Path("/sys/fs/cgroup/memory"), "mount -t cgroup -o memory cgroup /sys/fs/cgroup/memory"),
    ]


def _v2_host(tmp_path: Path, subtree: str) -> Host:
    """A unified hierarchy as GKE nodes have, at a directory of ours; the suite in /suite."""
    own = tmp_path / "suite"
    own.mkdir()
    (own / "cgroup.subtree_control").write_text(subtree + "\n")
    return Host(0, f"41 31 0:38 / {tmp_path} rw - cgroup2 cgroup2 rw\n", "0::/suite\n", root=tmp_path)


def test_v2_group_writes_cpu_max_and_memory_max(tmp_path: Path) -> None:
    group = PodCgroup.create(750, 2**30, host=_v2_host(tmp_path, "cpu memory pids"))
    try:
        (path,) = group.dirs()
        assert path.parent == tmp_path / "suite"
        assert (path / "cpu.max").read_text() == "75000 100000"
        assert (path / "memory.max").read_text() == str(2**30)
        assert group.hierarchies[0].mount_command() == f"mount -t cgroup2 cgroup2 {tmp_path}"
    finally:
        for f in path.iterdir():
            f.unlink()
        group.remove()
    assert not path.exists()


@pytest.mark.parametrize(("subtree", "missing"), [("memory", "cpu"), ("cpu", "memory"), ("", "cpu, memory")])
def test_v2_without_delegated_controllers_is_one_clear_error(tmp_path: Path, subtree: str, missing: str) -> None:
    with pytest.raises(PodCgroupError, match=rf"cgroup v2: the {missing} controller is not enabled for the "
                                             rf"children of {tmp_path}/suite"):
        PodCgroup.create(1000, host=_v2_host(tmp_path, subtree))


def test_a_hybrid_host_is_v1() -> None:
    """cgroup2 mounted beside v1 (at /sys/fs/cgroup/unified, no controllers) is not what the
    framework reads (it looks for /sys/fs/cgroup/cpu.stat): v1 it is."""
    assert {h.version for h in Host(0, V1_MOUNTINFO, V1_PROC_CGROUP).hierarchies()} == {1}


def test_groups_of_a_dead_session_are_swept_with_what_runs_inside() -> None:
    """A session killed before its cleanup leaves its workers running in their groups; the next
    session removes them. A live session's groups (this one's) stay."""
    _needs_root()
    dead_pid = subprocess.Popen(["true"])  # a PID that has exited
    dead_pid.wait()
    mine = PodCgroup.create()
    orphan = dataclasses.replace(mine, name=f"{pod_cgroup.NAME_PREFIX}-{dead_pid.pid}-deadbeef")
    orphan._write_limits()
    left = subprocess.Popen(orphan.argv(["sleep", "600"]))
    try:
        deadline = time.monotonic() + 10
        while left.pid not in orphan.pids() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert orphan.name in pod_cgroup.sweep_orphans()
        assert left.wait(5) == -signal.SIGKILL
        assert not any(path.exists() for path in orphan.dirs())
        assert all(path.exists() for path in mine.dirs())
    finally:
        if left.poll() is None:
            left.kill()
            left.wait()
        orphan.remove()
        mine.remove()
