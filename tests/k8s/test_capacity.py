"""The timing and capacity math (DESIGN section 3), and the framework facts it rests on."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from domain import capacity
from domain.capacity import (
    AUTOSCALER_GRACE_CAP_S,
    SHUTDOWN_BUDGET_S,
    max_safe_target,
    needs_extended_duration,
    seconds_to_new_capacity,
    termination_grace_seconds,
    worker_load_at_target,
)

ROOT = Path(__file__).resolve().parents[2]


def _livekit_agents_dir() -> Path | None:
    """livekit-agents lives in the agent's venv, never in the infra one (DESIGN 2)."""
    for venv in (ROOT / "agent" / ".venv", Path("/tmp/venv-agent")):
        found = sorted(venv.glob("lib/python3*/site-packages/livekit/agents"))
        if found:
            return found[0]
    return None


AGENTS = _livekit_agents_dir()


def _source(relative: str) -> str:
    """The framework's own file. Without the agent venv these tests fail rather than skip: the
    shutdown budget and the grace period rest on what they read, and a skip would hide a drift."""
    assert AGENTS is not None, "livekit-agents is not installed in agent/.venv: run scripts/setup-agent.sh"
    return (AGENTS / relative).read_text()


def test_framework_is_the_version_the_budget_was_read_from():
    assert re.search(r'__version__ = "1\.8\.9"', _source("version.py"))


@pytest.mark.parametrize("relative, pattern, constant", [
    ("worker.py", r"^DRAIN_TIMEOUT = (\d+)", "FRAMEWORK_DRAIN_TIMEOUT_S"),
    ("worker.py", r"shutdown_process_timeout: float = ([\d.]+)", "SHUTDOWN_ACK_S"),
    ("worker.py", r"shutdown_process_timeout: float = ([\d.]+)", "PROCESS_EXIT_S"),
    ("worker.py", r"session_end_timeout: float = ([\d.]+)", "SESSION_END_CALLBACK_S"),
    ("ipc/job_proc_lazy_main.py", r"_SESSION_ACLOSE_TIMEOUT = ([\d.]+)", "SESSION_CLOSE_S"),
    ("ipc/job_proc_lazy_main.py", r"wait_for\(asyncio\.shield\(job_entry_task\), timeout=(\d+)\)", "ENTRYPOINT_EXIT_S"),
])
def test_shutdown_budget_parts_match_livekit_agents(relative, pattern, constant):
    """If an upgrade of livekit-agents moves a timeout, the grace period must move with it."""
    found = re.search(pattern, _source(relative), re.MULTILINE)
    assert found, f"{pattern!r} not found in livekit/agents/{relative}"
    assert float(found.group(1)) == getattr(capacity, constant)


def test_job_processes_are_closed_concurrently():
    """The budget is one job's, not one per job: the pool closes its processes in parallel."""
    assert "asyncio.gather(*[proc.aclose() for proc in self._executors])" in _source("ipc/proc_pool.py")


def test_session_end_callback_flag_matches_the_agent_code():
    """on_session_end (passed to AgentServer.rtc_session) adds up to 300 s to the shutdown;
    the flag, and with it the grace period, must say whether the agent registers one."""
    sources = " ".join(p.read_text() for p in (ROOT / "agent" / "voice_agent").glob("*.py"))
    registers = re.search(r"on_session_end\s*=|_session_end_fnc", sources) is not None
    assert registers == capacity.AGENT_HAS_SESSION_END_CALLBACK, (
        "agent/voice_agent registration of on_session_end changed; update AGENT_HAS_SESSION_END_CALLBACK in domain/capacity.py")


def test_shutdown_budget_adds_up():
    assert SHUTDOWN_BUDGET_S == 10 + 15 + 60 + 10 + 5 == 100


@pytest.mark.parametrize("pre_stop, drain, grace", [(0, 900, 1000), (0, 2700, 2800), (120, 3600, 3820)])
def test_grace_counts_pre_stop_drain_and_shutdown(pre_stop, drain, grace):
    assert termination_grace_seconds(pre_stop, drain) == grace


@pytest.mark.parametrize("minutes, grace, needed", [
    (10, 600, False), (10, 601, True), (11, 500, True), (45, 2800, True)])
def test_extended_duration_above_the_autoscaler_cap(minutes, grace, needed):
    assert AUTOSCALER_GRACE_CAP_S == 600
    assert needs_extended_duration(minutes, grace) is needed


def test_seed_000_target_deadlocks_without_bursting():
    """75 % of a request equal to the limit, plus the 10 % tolerance: load 0.825 >= 0.7."""
    assert worker_load_at_target(75, 1000, 1000) == pytest.approx(0.825)
    assert max_safe_target(0.7, 1000, 1000) == 63


@pytest.mark.parametrize("threshold, cpu_request, limit", [(0.7, 1000, 1000), (0.7, 1000, 1400), (0.5, 2000, 2000), (0.9, 500, 2000)])
def test_max_safe_target_is_the_largest_safe_whole_percent(threshold, cpu_request, limit):
    safe = max_safe_target(threshold, cpu_request, limit)
    assert worker_load_at_target(safe, cpu_request, limit) < threshold
    assert worker_load_at_target(safe + 1, cpu_request, limit) >= threshold


@pytest.mark.parametrize("target", [2, 3, 63])
def test_a_target_whose_load_equals_the_threshold_is_not_safe(target):
    """Safe means below the threshold: at a threshold equal to a target's load (tolerance
    included) that target is one too many; just above it, it is safe; just below, it is not."""
    at = worker_load_at_target(target, 1000, 1000)
    assert max_safe_target(at, 1000, 1000) == target - 1
    assert max_safe_target(at - 1e-6, 1000, 1000) == target - 1
    assert max_safe_target(at + 1e-6, 1000, 1000) == target


def test_the_safe_target_never_goes_below_one_percent():
    """An HPA target is a whole percent of at least 1 (autoscaling/v2 rejects an averageUtilization
    <= 0): when even 1 % reaches the threshold, the advice is 1, never 0."""
    assert max_safe_target(worker_load_at_target(1, 1000, 1000), 1000, 1000) == 1


def test_new_capacity_waits_for_a_node_unless_room_is_held():
    assert seconds_to_new_capacity(30, spare_pods=0) == 30 + 15 + 120 + 6
    assert seconds_to_new_capacity(60, spare_pods=1) == 60 + 15 + 6
    assert seconds_to_new_capacity(120, spare_pods=0) == 261  # seed 000's window


# ------------------------------------------------------------------------------------------------
# Per-call figures from the committed benchmark output, the call cap, the calls target.

from tooling.plan import evaluate  # noqa: E402
from domain.config import parse_stack_config  # noqa: E402
from domain.stackfiles import load_stack_values  # noqa: E402
from k8s.scaling import calls_quantity  # noqa: E402
from domain.settings import ConfigError  # noqa: E402
from domain.sizes import SIZES, Resources  # noqa: E402


def test_planning_figures_are_the_measurement_with_its_margins():
    """Guards against constants typed in again: they are read from the benchmark's output."""
    m = capacity.MEASURED
    assert {"date", "machine", "command"} <= set(m) and "agent/bench/capacity.py" in m["command"]
    assert capacity.CPU_PER_SESSION_M == capacity._round_up(m["cpu_m_per_call"] * 1.5, 10)
    assert capacity.MEMORY_PER_SESSION_MI == capacity._round_up(m["mem_mib_per_call"] * 2.0, 16)
    assert capacity.WORKER_BASE_MEMORY_MI == capacity._round_up(m["base_mem_mib"] * 1.25, 64)
    assert capacity.WORKER_BASE_CPU_M == max(100, capacity._round_up(m["base_cpu_m"] * 1.5, 10))
    # every repeat's cost fits inside the planned figure
    for run in m["repeats"]:
        assert run["cpu_m_per_call"] < capacity.CPU_PER_SESSION_M
        assert run["mem_mib_per_call"] < capacity.MEMORY_PER_SESSION_MI
    # the measured saturation (between the last unthrottled N and the first throttled one, per
    # vCPU) is above what a 1-vCPU pod admits at 0.7: admission comes before the pod runs out
    one_vcpu = Resources(1000, 2048, 1000, 2048)
    assert capacity.cpu_calls_per_pod(one_vcpu, 0.7) <= m["calls_at_quality_limit_per_vcpu"]


def test_job_kill_size_is_far_above_a_call_and_warned_before():
    assert capacity.JOB_MEMORY_LIMIT_MI == 4 * capacity.MEMORY_PER_SESSION_MI
    assert capacity.JOB_MEMORY_WARN_MI < capacity.JOB_MEMORY_LIMIT_MI


def _room_for(calls: int) -> int:
    """The memory limit at which exactly `calls` calls fit next to one runaway job."""
    return capacity.WORKER_BASE_MEMORY_MI + capacity.JOB_MEMORY_LIMIT_MI + calls * capacity.MEMORY_PER_SESSION_MI


@pytest.mark.parametrize("delta, calls", [(-1, 2), (0, 3), (1, 3)])
def test_memory_call_cap_boundary(delta, calls):
    assert capacity.memory_calls_per_pod(Resources(4000, 0, 4000, _room_for(3) + delta)) == calls


def test_the_cap_is_the_smaller_of_cpu_and_memory():
    plenty_cpu = Resources(8000, _room_for(2), 8000, _room_for(2))
    assert capacity.sessions_per_pod(plenty_cpu, 0.7) == 2 and capacity.pod_limited_by(plenty_cpu, 0.7) == "memory"
    for size in SIZES.values():
        assert capacity.pod_limited_by(size.resources(False), 0.7) == "cpu"


@pytest.mark.parametrize("cap, percent, fires_before_full", [
    (7, 90, True),    # 6.3 x 1.1 = 6.93 < 7
    (7, 91, False),   # 6.37 x 1.1 = 7.007: every pod refuses calls before the HPA acts
    (4, 90, True), (4, 91, False), (1, 90, True), (1, 91, False),
])
def test_calls_target_fires_before_the_cap(cap, percent, fires_before_full):
    assert (capacity.calls_at_trigger(cap * percent / 100) < cap) is fires_before_full
    assert capacity.MAX_SAFE_CALLS_PERCENT == 90


def test_config_refuses_a_calls_target_at_the_cap():
    with pytest.raises(ConfigError, match=r"hpaTargetCallsPercent = 91: puts the HPA's calls target at 6\.37 of a "
                                          r"7-call cap; .* above 7\.007 calls per pod, .*AGENT_MAX_CALLS = 7\); use at most 90"):
        evaluate("prod", {"gke-voice-agents:hpaTargetCallsPercent": "91"})
    assert evaluate("prod", {"gke-voice-agents:hpaTargetCallsPercent": "90"}).resources


@pytest.mark.parametrize("value", ["9", "101"])
def test_calls_target_is_a_percent_from_10_to_100(value):
    with pytest.raises(ConfigError, match=rf"hpaTargetCallsPercent = {value}: must be from 10 to 100 %"):
        evaluate("prod", {"gke-voice-agents:hpaTargetCallsPercent": value})


@pytest.mark.parametrize("percent, target", [(10, 0.7), (50, 3.5), (90, 6.3)])
def test_the_calls_target_is_its_percent_of_the_pods_cap(percent, target):
    """The fixture prod stack's pod (size M) takes 7 calls; the HPA aims at percent of them, and
    renders that in milli-calls."""
    values = load_stack_values("prod")
    w = parse_stack_config("prod", values.config, values.secret_keys).workload
    w = dataclasses.replace(w, hpa=dataclasses.replace(w.hpa, target_calls_percent=percent))
    assert capacity.sessions_per_pod(capacity.workload_resources(w), w.load_threshold) == 7
    assert capacity.calls_target(w) == pytest.approx(target)
    assert calls_quantity(capacity.calls_target(w)) == f"{round(target * 1000)}m"


@pytest.mark.parametrize(("calls", "percent", "refused"), [(1, 90, False), (1, 91, True), (2, 91, True), (0, 91, False)])
def test_a_one_call_pod_is_held_to_the_same_safe_percent(calls, percent, refused):
    """A pod that takes a single call is the tightest case (91 % x 1.1 = 1.001 calls before the HPA
    acts); a pod with no room for a call is reported by the room check instead."""
    values = load_stack_values("prod")
    w = parse_stack_config("prod", values.config, values.secret_keys).workload
    w = dataclasses.replace(w, hpa=dataclasses.replace(w.hpa, target_calls_percent=percent))
    r = Resources(8000, _room_for(calls), 8000, _room_for(calls))
    assert capacity.sessions_per_pod(r, w.load_threshold) == calls
    assert bool(capacity._calls_target_before_full(w, r)) is refused
