"""Admission shares (CPU, memory, calls), the cgroup reading, and the settings' boundaries."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from voice_agent.admission import (
    AdmissionSettings,
    ContainerMemory,
    calls_load,
    load_function,
    memory_load,
    read_admission_settings,
)
from voice_agent.settings import SettingsError, load_settings

MIB = 2**20


@pytest.mark.parametrize("active, cap, load", [(0, 4, 0.0), (3, 4, 0.525), (4, 4, 0.7), (5, 4, 0.875), (9, 0, 0.0)])
def test_calls_share_reaches_the_threshold_at_the_cap(active, cap, load):
    assert calls_load(active, cap, 0.7) == pytest.approx(load)


@pytest.mark.parametrize("used, share_at_threshold", [(1471, False), (1472, True), (1473, True)])
def test_memory_share_is_full_when_one_kill_size_is_left(used, share_at_threshold):
    """2048 MiB limit, 576 MiB kill size: full at 1472 MiB of working set."""
    assert (memory_load(used, 2048, 576, 0.7) >= 0.7 - 1e-12) is share_at_threshold


def test_memory_share_without_a_limit_or_room():
    assert memory_load(5000, None, 576, 0.7) == 0.0
    assert memory_load(1, 500, 576, 0.7) == 1.0


def _files(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_reads_cgroup_v2_like_the_kubelet(tmp_path):
    root = _files(tmp_path, {"memory.current": str(900 * MIB), "memory.max": str(2048 * MIB),
                             "memory.stat": f"anon 1\ninactive_file {100 * MIB}\nactive_file 5\n"})
    assert ContainerMemory(root).read() == (800.0, 2048.0)
    (root / "memory.max").write_text("max\n")
    assert ContainerMemory(root).read() == (800.0, None)


def test_reads_cgroup_v1_like_the_kubelet(tmp_path):
    root = _files(tmp_path, {"memory/memory.usage_in_bytes": str(700 * MIB),
                             "memory/memory.limit_in_bytes": str(4096 * MIB),
                             "memory/memory.stat": f"cache 3\ntotal_inactive_file {200 * MIB}\n"})
    assert ContainerMemory(root).read() == (500.0, 4096.0)
    (root / "memory/memory.limit_in_bytes").write_text(str(9223372036854771712))  # v1 "no limit"
    assert ContainerMemory(root).read()[1] is None


# cgroup v1 writes "no limit" as PAGE_COUNTER_MAX pages in bytes, LONG_MAX rounded down to the page
# size (include/linux/page_counter.h and mm/memcontrol.c, Linux 6.1): 0x7FFFFFFFFFFFF000 with 4 KiB pages, 0x7FFFFFFFFFFF0000 with
# 64 KiB; every such value is >= 2**62, and no real limit comes near it.
@pytest.mark.parametrize("limit_bytes, unlimited", [
    (2**62 - 4096, False),  # just below the cut, page-aligned: a limit, however large
    (2**62, True),  # at the cut
    (2**62 + 4096, True),  # just above
    (0x7FFFFFFFFFFF0000, True),  # PAGE_COUNTER_MAX with 64 KiB pages
])
def test_a_cgroup_v1_limit_is_no_limit_from_2_to_the_62(tmp_path, limit_bytes, unlimited):
    root = _files(tmp_path, {"memory/memory.usage_in_bytes": str(700 * MIB),
                             "memory/memory.limit_in_bytes": str(limit_bytes),
                             "memory/memory.stat": "total_inactive_file 0\n"})
    assert ContainerMemory(root).read() == (700.0, None if unlimited else limit_bytes / MIB)


def test_the_load_is_the_scarcest_resource(tmp_path):
    root = _files(tmp_path, {"memory.current": str(1000 * MIB), "memory.max": str(2048 * MIB),
                             "memory.stat": "inactive_file 0\n"})
    settings = AdmissionSettings(max_calls=4, job_memory_limit_mb=576)
    seen = []
    fnc = load_function(settings, 0.7, cpu_load=lambda _server: 0.30, memory=ContainerMemory(root), on_shares=seen.append)
    server = SimpleNamespace(active_jobs=[object()] * 2)
    assert fnc(server) == pytest.approx(0.7 * 1000 / 1472)  # memory: 0.476 > calls 0.35 > cpu 0.30
    assert seen[-1].limiting() == "memory"
    server.active_jobs = [object()] * 4
    assert fnc(server) == pytest.approx(0.7) and seen[-1].limiting() == "calls"


def test_no_cgroup_files_leave_cpu_and_calls(tmp_path):
    fnc = load_function(AdmissionSettings(max_calls=2), 0.7, cpu_load=lambda _s: 0.1,
                        memory=ContainerMemory(tmp_path / "absent"))
    assert fnc(SimpleNamespace(active_jobs=[object()])) == pytest.approx(0.35)


@pytest.mark.parametrize("env, message", [
    ({"AGENT_MAX_CALLS": "1001"}, r"AGENT_MAX_CALLS=1001 is out of range: allowed 0\.\.1000"),
    ({"AGENT_MAX_CALLS": "-1"}, r"AGENT_MAX_CALLS=-1 is out of range: allowed 0\.\.1000"),
    ({"AGENT_MAX_CALLS": "four"}, r"AGENT_MAX_CALLS='four' is not an integer: allowed 0\.\.1000"),
    ({"AGENT_JOB_MEMORY_LIMIT_MB": "500", "AGENT_JOB_MEMORY_WARN_MB": "500"},
     r"AGENT_JOB_MEMORY_WARN_MB=500 is not below AGENT_JOB_MEMORY_LIMIT_MB=500"),
    # Autopilot's largest pod is 110 GiB: one MB more is out of range
    ({"AGENT_JOB_MEMORY_LIMIT_MB": "112641"}, r"AGENT_JOB_MEMORY_LIMIT_MB=112641 is out of range: allowed 0\.\.112640"),
    ({"AGENT_JOB_MEMORY_WARN_MB": "-1"}, r"AGENT_JOB_MEMORY_WARN_MB=-1 is out of range: allowed 0\.\.112640"),
    ({"AGENT_POD_NAME": "voice-agent-1"}, r"set both .* or neither"),
    ({"AGENT_POD_NAME": "Voice_Agent", "AGENT_POD_NAMESPACE": "x"}, r"AGENT_POD_NAME='Voice_Agent' is invalid"),
])
def test_bad_values_are_named_with_their_range(valid_env, env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings({**valid_env, **env})


@pytest.mark.parametrize("env, expected", [
    ({}, AdmissionSettings()),
    ({"AGENT_MAX_CALLS": "1000"}, AdmissionSettings(max_calls=1000)),
    ({"AGENT_MAX_CALLS": "0"}, AdmissionSettings(max_calls=0)),
    ({"AGENT_JOB_MEMORY_LIMIT_MB": "500", "AGENT_JOB_MEMORY_WARN_MB": "499"},
     AdmissionSettings(job_memory_limit_mb=500, job_memory_warn_mb=499)),
    ({"AGENT_JOB_MEMORY_LIMIT_MB": "112640", "AGENT_JOB_MEMORY_WARN_MB": "112639"},
     AdmissionSettings(job_memory_limit_mb=112640, job_memory_warn_mb=112639)),
    ({"AGENT_JOB_MEMORY_LIMIT_MB": "500", "AGENT_JOB_MEMORY_WARN_MB": "0"},
     AdmissionSettings(job_memory_limit_mb=500, job_memory_warn_mb=0)),       # no warning
    ({"AGENT_JOB_MEMORY_LIMIT_MB": "0", "AGENT_JOB_MEMORY_WARN_MB": "900"},
     AdmissionSettings(job_memory_limit_mb=0, job_memory_warn_mb=900)),       # no kill: any warning
])
def test_good_values(env, expected):
    problems: list[str] = []
    assert read_admission_settings(env, problems) == expected and problems == []


def test_framework_memory_monitor_is_what_the_comments_say():
    """The sampling interval and the kill message the comments and the runaway test rely on
    (livekit-agents 1.8.9 ipc/supervised_proc.py)."""
    import livekit.agents.ipc.supervised_proc as sp

    assert sp._MEMORY_MONITOR_INTERVAL == 5.0
    source = Path(sp.__file__).read_text()
    assert 'process exceeded memory limit, killing it' in source
    assert 'for metric in "pss", "uss", "rss"' in source
