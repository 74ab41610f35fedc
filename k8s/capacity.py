"""Timing and capacity rules across the workload's settings (DESIGN section 3).

Pure functions: config validation, the AgentWorkload component and the policy pack all use
them, so a number like the shutdown budget has one home.
"""

from __future__ import annotations

from infra.config import PROJECT, Problem, WorkloadSettings
from k8s.sizes import SIZES, autopilot_problems

# After drain_timeout the worker asks each job process to stop and kills it after
# shutdown_process_timeout = 10 s (livekit-agents 1.8.9 worker.py); a session's own close may
# take up to 60 s (AgentSession close). Ten more seconds cover the HTTP server and exit.
SHUTDOWN_PROCESS_TIMEOUT_S = 10
SESSION_CLOSE_S = 60
EXIT_MARGIN_S = 10
SHUTDOWN_BUDGET_S = SHUTDOWN_PROCESS_TIMEOUT_S + SESSION_CLOSE_S + EXIT_MARGIN_S

# The HPA ignores ratios within 10% of the target (kube-controller-manager
# --horizontal-pod-autoscaler-tolerance default 0.1), so pods can sit 10% above target for good.
HPA_TOLERANCE = 0.10
# Cluster-autoscaler scale-down honours terminationGracePeriodSeconds only up to 10 min; node
# auto-upgrades up to 1 h (GKE "Autopilot Pod termination" docs).
AUTOSCALER_GRACE_CAP_S = 600
NODE_UPGRADE_GRACE_CAP_S = 3600


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


def termination_grace_seconds(pre_stop_s: int, drain_timeout_s: int) -> int:
    """The kubelet counts preStop time inside the grace period, so both add up."""
    return pre_stop_s + drain_timeout_s + SHUTDOWN_BUDGET_S


def worker_load_at_target(target_percent: float, cpu_request_m: float, cpu_limit_m: float,
                          tolerance: float = HPA_TOLERANCE) -> float:
    """The worker's load (CPU used / CPU limit, livekit-agents utils/hw/cpu.py reads cpu.max)
    when the HPA has just not scaled: used = target x request x (1 + tolerance)."""
    return target_percent / 100 * (1 + tolerance) * cpu_request_m / cpu_limit_m


def max_safe_target(load_threshold: float, cpu_request_m: float, cpu_limit_m: float,
                    tolerance: float = HPA_TOLERANCE) -> int:
    """Largest whole-percent HPA target whose load, tolerance included, stays below the threshold."""
    target = int(load_threshold / (1 + tolerance) * cpu_limit_m / cpu_request_m * 100)
    while target > 1 and worker_load_at_target(target, cpu_request_m, cpu_limit_m, tolerance) >= load_threshold:
        target -= 1
    return target


def needs_extended_duration(max_session_minutes: int, grace_s: int) -> bool:
    """Sessions longer than the autoscaler's 10-minute cap must not be evicted by it."""
    return max_session_minutes * 60 > AUTOSCALER_GRACE_CAP_S or grace_s > AUTOSCALER_GRACE_CAP_S


def workload_problems(w: WorkloadSettings) -> list[Problem]:
    problems: list[Problem] = []
    size = SIZES[w.size]
    cpu_limit, _ = size.limits(w.cpu_bursting)
    for reason in autopilot_problems(size.cpu_m, size.memory_mi, w.cpu_bursting):
        problems.append(Problem(_key("agentSize"), w.size, f"{reason}; pick a size that is valid as declared"))
    grace = termination_grace_seconds(w.pre_stop_seconds, w.drain_timeout_seconds)
    if grace > NODE_UPGRADE_GRACE_CAP_S:
        problems.append(Problem(
            _key("drainTimeoutSeconds"), w.drain_timeout_seconds,
            f"grace = preStop {w.pre_stop_seconds} + drain {w.drain_timeout_seconds} + shutdown {SHUTDOWN_BUDGET_S} = {grace} s, "
            f"but GKE node upgrades honour at most {NODE_UPGRADE_GRACE_CAP_S} s; lower drainTimeoutSeconds to "
            f"{NODE_UPGRADE_GRACE_CAP_S - SHUTDOWN_BUDGET_S - w.pre_stop_seconds} or less"))
    if w.drain_timeout_seconds < w.max_session_minutes * 60:
        problems.append(Problem(
            _key("drainTimeoutSeconds"), w.drain_timeout_seconds,
            f"is shorter than maxSessionMinutes = {w.max_session_minutes} ({w.max_session_minutes * 60} s): a rollout would cut "
            f"the longest calls; raise drainTimeoutSeconds to at least {w.max_session_minutes * 60}"))
    load = worker_load_at_target(w.hpa.target_cpu_utilization, size.cpu_m, cpu_limit)
    if load >= w.load_threshold:
        safe = max_safe_target(w.load_threshold, size.cpu_m, cpu_limit)
        problems.append(Problem(
            _key("hpaTargetCpuUtilization"), w.hpa.target_cpu_utilization,
            f"at this target each pod's worker load reaches {load:.2f} (target x request/limit x 1.1 tolerance) >= "
            f"loadThreshold {w.load_threshold}: pods report full before the HPA adds any; use at most {safe}"))
    if w.hpa.scale_down_window_seconds <= w.hpa.scale_up_window_seconds:
        problems.append(Problem(
            _key("hpaScaleDownWindowSeconds"), w.hpa.scale_down_window_seconds,
            f"must be longer than hpaScaleUpWindowSeconds = {w.hpa.scale_up_window_seconds}: capacity should arrive fast "
            "and leave slowly, because every removed pod drains live calls"))
    if w.spot_pods:
        problems.append(Problem(
            _key("spotPods"), True,
            "Spot Pods get 25 s to stop whatever the grace period says, which cuts live calls; set it to false"))
    return problems
