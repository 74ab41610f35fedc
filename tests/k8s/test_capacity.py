"""The timing and capacity math (DESIGN section 3), and the framework facts it rests on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from k8s import capacity
from k8s.capacity import (
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
needs_agents = pytest.mark.skipif(AGENTS is None, reason="livekit-agents not installed (run scripts/setup-agent.sh)")


def _source(relative: str) -> str:
    assert AGENTS is not None
    return (AGENTS / relative).read_text()


@needs_agents
def test_framework_is_the_version_the_budget_was_read_from():
    assert re.search(r'__version__ = "1\.8\.9"', _source("version.py"))


@needs_agents
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


@needs_agents
def test_job_processes_are_closed_concurrently():
    """The budget is one job's, not one per job: the pool closes its processes in parallel."""
    assert "asyncio.gather(*[proc.aclose() for proc in self._executors])" in _source("ipc/proc_pool.py")


def test_session_end_callback_flag_matches_the_agent_code():
    """on_session_end (passed to AgentServer.rtc_session) adds up to 300 s to the shutdown;
    the flag, and with it the grace period, must say whether the agent registers one."""
    sources = " ".join(p.read_text() for p in (ROOT / "agent" / "voice_agent").glob("*.py"))
    registers = re.search(r"on_session_end\s*=|_session_end_fnc", sources) is not None
    assert registers == capacity.AGENT_HAS_SESSION_END_CALLBACK, (
        "agent/voice_agent registration of on_session_end changed; update AGENT_HAS_SESSION_END_CALLBACK in k8s/capacity.py")


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


def test_new_capacity_waits_for_a_node_unless_room_is_held():
    assert seconds_to_new_capacity(30, spare_pods=0) == 30 + 15 + 120 + 6
    assert seconds_to_new_capacity(60, spare_pods=1) == 60 + 15 + 6
    assert seconds_to_new_capacity(120, spare_pods=0) == 261  # seed 000's window
