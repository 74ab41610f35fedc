"""Timing and capacity rules across the workload's settings (DESIGN section 3).

Pure functions, one home for every number: config validation (`workload_problems`), the
AgentWorkload component (grace period, annotations, resources) and the policy pack all call
them, so a grace period or a safe HPA target is never computed twice.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from domain.settings import Problem, WorkloadSettings, setting_key
from domain.sizes import SIZES, AutopilotRejects, Resources, autopilot_normalise, autopilot_problems

# --- What the worker does after SIGTERM (livekit-agents 1.8.9, read in site-packages) --------
# cli/cli.py: the first SIGTERM runs server.drain(), i.e. the worker reports WS_FULL and waits
# for running jobs up to drain_timeout (worker.py: DRAIN_TIMEOUT = 3600); then server.aclose()
# closes the process pool, whose _main_task closes every job process *concurrently*
# (ipc/proc_pool.py: gather(proc.aclose() ...)). So the budget is that of one job process:
FRAMEWORK_DRAIN_TIMEOUT_S = 3600
# ipc/supervised_proc.py aclose(): wait for the ShutdownRequest ack up to close_timeout, which
# is ServerOptions.shutdown_process_timeout = 10.0 (worker.py), else kill the process.
SHUTDOWN_ACK_S = 10
# ipc/job_proc_lazy_main.py _shutdown_job(): wait for the entrypoint up to 15 s ...
ENTRYPOINT_EXIT_S = 15
# ... then AgentSession.aclose() up to _SESSION_ACLOSE_TIMEOUT = 60.0 ...
SESSION_CLOSE_S = 60
# ... then the on_session_end callback up to ServerOptions.session_end_timeout = 300.0, but only
# if the agent registers one. voice_agent registers none (agent/voice_agent/worker.py passes no
# on_session_end to rtc_session); tests/k8s/test_capacity.py fails if that changes, so this
# flag and the grace period cannot drift from the code.
SESSION_END_CALLBACK_S = 300
AGENT_HAS_SESSION_END_CALLBACK = False
# ipc/supervised_proc.py aclose() again: wait for the process to exit up to close_timeout.
PROCESS_EXIT_S = 10
# The worker's own close (HTTP and Prometheus servers, API client) and cli.py's 3 s signal
# escalation window; nothing in it has a timeout of its own, so a small fixed margin.
EXIT_MARGIN_S = 5
SHUTDOWN_BUDGET_S = (SHUTDOWN_ACK_S + ENTRYPOINT_EXIT_S + SESSION_CLOSE_S
                     + (SESSION_END_CALLBACK_S if AGENT_HAS_SESSION_END_CALLBACK else 0)
                     + PROCESS_EXIT_S + EXIT_MARGIN_S)

# --- Kubernetes and GKE clocks ------------------------------------------------------------------
# The HPA ignores ratios within 10% of the target (kube-controller-manager
# --horizontal-pod-autoscaler-tolerance, default 0.1), so pods can sit 10% above target for good.
HPA_TOLERANCE = 0.10
# Slack for floating-point results that are whole on paper (0.7 x 1400 is 979.999... in binary).
# Inputs are whole millicores and two-decimal thresholds, so real differences are at least
# 1e-5 (of a call, a millicore) and float error is below 1e-12: any slack between decides the same.
FLOAT_SLACK = 1e-9  # pragma: no mutate: 1.1e-9 or 0.9e-9 is as far from both bounds, no input tells them apart
# The HPA re-evaluates every 15 s (--horizontal-pod-autoscaler-sync-period).
HPA_SYNC_PERIOD_S = 15
# GKE-initiated evictions (GKE "Extend the run time of Autopilot Pods"): cluster-autoscaler
# scale-down honours the grace period up to 10 min, node auto-upgrades up to 1 h. Pods marked
# safe-to-evict "false" (extended duration) are left alone for up to 7 days. Spot Pods get 25 s.
AUTOSCALER_GRACE_CAP_S = 600
NODE_UPGRADE_GRACE_CAP_S = 3600
SPOT_GRACE_S = 25
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
# A new Autopilot node takes 80-120 s to boot (DESIGN 3.8); start-up to a registered worker is
# 4-6 s on 2 vCPUs (docs/agent.md, measured).
NODE_BOOT_S = 120
WORKER_START_S = 6

# --- Per-call figures, from measurement ---------------------------------------------------------
# agent/bench/capacity.py measured one worker under a real CPU quota and memory limit (the run's
# date, machine and command are in the file). Margins, because the bench's Gemini is a stand-in
# (its replies are short tones; real calls carry longer answers, interruptions, tool calls, a
# growing conversation in the client) and its CPU is not the node's:
MEASURED_FILE = Path(__file__).parent / "data" / "capacity-measured.json"
MEASURED = json.loads(MEASURED_FILE.read_text(encoding="utf-8"))
CPU_MARGIN = 1.5          # per call: x1.5, rounded up to 10m
MEMORY_MARGIN = 2.0       # per call: x2, rounded up to 16 MiB
BASE_MEMORY_MARGIN = 1.25  # worker + forkserver + idle process: x1.25, rounded up to 64 MiB
# The idle worker measures a few tens of millicores; a job process starting (fork, Silero VAD
# loaded in prewarm) takes a burst on top, so the base is never planned below 100m.
MIN_WORKER_BASE_CPU_M = 100


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


CPU_PER_SESSION_M = _round_up(MEASURED["cpu_m_per_call"] * CPU_MARGIN, 10)
WORKER_BASE_CPU_M = max(MIN_WORKER_BASE_CPU_M, _round_up(MEASURED["base_cpu_m"] * CPU_MARGIN, 10))
MEMORY_PER_SESSION_MI = _round_up(MEASURED["mem_mib_per_call"] * MEMORY_MARGIN, 16)
WORKER_BASE_MEMORY_MI = _round_up(MEASURED["base_mem_mib"] * BASE_MEMORY_MARGIN, 64)
# A job process is killed by the framework above this (AGENT_JOB_MEMORY_LIMIT_MB, livekit-agents
# 1.8.9 job_memory_limit_mb, PSS sampled every 5 s) and warned about above half of it. PSS counts
# a share of the forkserver's copy-on-write pages on top of the call's own memory, so the kill
# size is four planned calls: far above a healthy job, far below the pod's limit.
JOB_MEMORY_LIMIT_CALLS = 4
JOB_MEMORY_LIMIT_MI = JOB_MEMORY_LIMIT_CALLS * MEMORY_PER_SESSION_MI
JOB_MEMORY_WARN_MI = JOB_MEMORY_LIMIT_MI // 2


# How spare capacity is kept (k8s/spare_capacity.py): placeholder pods everywhere, or GKE's
# CapacityBuffer where the cluster runs GKE 1.35.2-gke.1842000 or later ("Configure capacity
# buffers", GKE docs).
SPARE_CAPACITY_MODES = ("placeholders", "capacityBuffer")

_key = setting_key


# ------------------------------------------------------------------------------------------------
# Timing


def termination_grace_seconds(drain_timeout_s: int, pre_stop_s: int = 0) -> int:
    """The kubelet counts preStop time inside the grace period, and SIGTERM (which starts the
    drain) arrives only after preStop; the job processes shut down after the drain. Our pods
    have no preStop (the worker drains on SIGTERM); the policy applies the same sum to any
    manifest that has one."""
    return pre_stop_s + drain_timeout_s + SHUTDOWN_BUDGET_S


# The longest drain whose grace period GKE node upgrades still honour in full: beyond it an
# upgrade kills the calls a drain was waiting for. The config's declared range stops here.
MAX_DRAIN_TIMEOUT_S = NODE_UPGRADE_GRACE_CAP_S - SHUTDOWN_BUDGET_S
# The longest call a drain can carry to its end: whole minutes within MAX_DRAIN_TIMEOUT_S.
MAX_SESSION_MINUTES = MAX_DRAIN_TIMEOUT_S // 60


def needs_extended_duration(max_session_minutes: int, grace_s: int) -> bool:
    """A call or a drain longer than the autoscaler's 10-minute cap must not be evicted by it."""
    return max_session_minutes * 60 > AUTOSCALER_GRACE_CAP_S or grace_s > AUTOSCALER_GRACE_CAP_S


def seconds_to_new_capacity(scale_up_window_s: int, spare_pods: int) -> int:
    """Worst case from a sustained rise above the HPA target to a new worker taking calls: the
    scale-up window, one HPA sync, a node boot unless a placeholder pod holds room, the start."""
    node = 0 if spare_pods > 0 else NODE_BOOT_S
    return scale_up_window_s + HPA_SYNC_PERIOD_S + node + WORKER_START_S


# ------------------------------------------------------------------------------------------------
# Load: the worker divides CPU used by the container's CPU *limit* (livekit-agents
# utils/hw/cpu.py reads cgroup cpu.max); the HPA divides by the CPU *request*.


def worker_load_at_target(target_percent: float, cpu_request_m: float, cpu_limit_m: float,
                          tolerance: float = HPA_TOLERANCE) -> float:
    """The worker's load when the HPA has only just not scaled: used = target x request x (1 + tolerance)."""
    return target_percent / 100 * (1 + tolerance) * cpu_request_m / cpu_limit_m


def max_safe_target(load_threshold: float, cpu_request_m: float, cpu_limit_m: float,
                    tolerance: float = HPA_TOLERANCE) -> int:
    """Largest whole-percent HPA target whose load, tolerance included, stays below the threshold."""
    target = int(load_threshold / (1 + tolerance) * cpu_limit_m / cpu_request_m * 100)
    while target > 1 and worker_load_at_target(target, cpu_request_m, cpu_limit_m, tolerance) >= load_threshold:
        target -= 1
    return target


def admission_cpu_m(resources: Resources, load_threshold: float) -> float:
    """CPU in use when the worker stops taking calls (reports WS_FULL)."""
    return load_threshold * resources.cpu_limit_m


def cpu_calls_per_pod(resources: Resources, load_threshold: float) -> int:
    """Calls a pod takes before its CPU share reaches the threshold, at the planned CPU per call."""
    spare = admission_cpu_m(resources, load_threshold) - WORKER_BASE_CPU_M
    return max(0, math.floor(spare / CPU_PER_SESSION_M + FLOAT_SLACK))


def memory_calls_per_pod(resources: Resources) -> int:
    """Calls a pod takes while one more job could still grow to its kill size under the memory
    limit: the worker's memory share (agent/voice_agent/admission.py) is full beyond that."""
    room = resources.memory_limit_mi - JOB_MEMORY_LIMIT_MI - WORKER_BASE_MEMORY_MI
    return max(0, math.floor(room / MEMORY_PER_SESSION_MI))


def sessions_per_pod(resources: Resources, load_threshold: float) -> int:
    """The pod's call cap (AGENT_MAX_CALLS): the smaller of what its CPU and its memory carry."""
    return min(cpu_calls_per_pod(resources, load_threshold), memory_calls_per_pod(resources))


def pod_limited_by(resources: Resources, load_threshold: float) -> str:
    """Which resource runs out first as calls arrive: "cpu" or "memory"."""
    return "memory" if memory_calls_per_pod(resources) < cpu_calls_per_pod(resources, load_threshold) else "cpu"


def memory_needed_mi(sessions: int) -> int:
    """A pod at `sessions` calls with one job at its kill size: what the memory limit must hold."""
    return WORKER_BASE_MEMORY_MI + sessions * MEMORY_PER_SESSION_MI + JOB_MEMORY_LIMIT_MI


def calls_target(w: WorkloadSettings) -> float:
    """The HPA's average active calls per pod: hpaTargetCallsPercent of the pod's call cap."""
    cap = sessions_per_pod(workload_resources(w), w.load_threshold)
    return cap * w.hpa.target_calls_percent / 100


def calls_at_trigger(target: float, tolerance: float = HPA_TOLERANCE) -> float:
    """Average calls per pod when the HPA has only just not scaled (10 % tolerance)."""
    return target * (1 + tolerance)


# The largest whole percent of the cap whose trigger, tolerance included, stays below the cap:
# cap x p / 100 x (1 + tolerance) < cap  <=>  p < 100 / (1 + tolerance), whatever the cap (90).
MAX_SAFE_CALLS_PERCENT = math.ceil(100 / (1 + HPA_TOLERANCE)) - 1


def workload_resources(w: WorkloadSettings) -> Resources:
    """The chosen size in the stack's bursting mode: what the Deployment declares."""
    return SIZES[w.size].resources(w.cpu_bursting)


# ------------------------------------------------------------------------------------------------
# Config validation. Each function returns the problems of one rule; every message names the
# key, the value with its numbers, what breaks, and the fix.


def _size_problems(w: WorkloadSettings, r: Resources) -> list[Problem]:
    mode = "with" if w.cpu_bursting else "without"
    reasons = autopilot_problems(r.cpu_request_m, r.memory_request_mi, w.cpu_bursting)
    try:
        applied = autopilot_normalise(r, w.cpu_bursting)
    except AutopilotRejects as err:
        applied, reasons = r, reasons or [str(err)]
    if applied != r and not reasons:
        reasons = [f"Autopilot would run {applied} instead of the declared {r}"]
    return [Problem(_key("agentSize"), w.size, f"{reason} ({mode} bursting); pick a size that is valid as declared")
            for reason in reasons]


def _drain_covers_calls(w: WorkloadSettings) -> list[Problem]:
    longest = w.max_session_minutes * 60
    if w.drain_timeout_seconds >= longest:
        return []
    return [Problem(
        _key("drainTimeoutSeconds"), w.drain_timeout_seconds,
        f"is shorter than maxSessionMinutes = {w.max_session_minutes} ({longest} s): every rollout and scale-down would "
        f"cut the longest calls after {w.drain_timeout_seconds} s; raise drainTimeoutSeconds to at least {longest} "
        f"(at most {MAX_DRAIN_TIMEOUT_S}) or lower maxSessionMinutes to {w.drain_timeout_seconds // 60} or less")]


def _hpa_deadlock(w: WorkloadSettings, r: Resources) -> list[Problem]:
    load = worker_load_at_target(w.hpa.target_cpu_utilization, r.cpu_request_m, r.cpu_limit_m)
    if load < w.load_threshold:
        return []
    safe = max_safe_target(w.load_threshold, r.cpu_request_m, r.cpu_limit_m)
    return [Problem(
        _key("hpaTargetCpuUtilization"), w.hpa.target_cpu_utilization,
        f"at this target each pod's worker load reaches {load:.2f} (target x request/limit x 1.1 tolerance, "
        f"request {r.cpu_request_m}m, limit {r.cpu_limit_m}m) >= loadThreshold {w.load_threshold}: pods report full "
        f"before the HPA adds any, and new callers wait; use at most {safe}")]


def _admission_within_request(w: WorkloadSettings, r: Resources) -> list[Problem]:
    used = admission_cpu_m(r, w.load_threshold)
    if used <= r.cpu_request_m + FLOAT_SLACK:
        return []
    most = math.floor(r.cpu_request_m / r.cpu_limit_m * 100) / 100
    return [Problem(
        _key("loadThreshold"), w.load_threshold,
        f"with cpuBursting the worker takes calls until it uses {used:.0f}m (loadThreshold x CPU limit {r.cpu_limit_m}m), "
        f"more than the {r.cpu_request_m}m the pod is guaranteed: at a busy hour the node has no spare CPU and every "
        f"call on the pod stutters; use a loadThreshold of at most {most}")]


def _room_for_a_call(w: WorkloadSettings, r: Resources) -> list[Problem]:
    if sessions_per_pod(r, w.load_threshold) >= 1:
        return []
    needed = (WORKER_BASE_CPU_M + CPU_PER_SESSION_M) / r.cpu_limit_m
    return [Problem(
        _key("loadThreshold"), w.load_threshold,
        f"a pod of size {w.size} reports itself full at {admission_cpu_m(r, w.load_threshold):.0f}m, below the worker's base "
        f"{WORKER_BASE_CPU_M}m plus one call's {CPU_PER_SESSION_M}m: it would never take a call; raise loadThreshold "
        f"to at least {math.ceil(needed * 100) / 100} or pick a larger agentSize")]


def _calls_target_before_full(w: WorkloadSettings, r: Resources) -> list[Problem]:
    cap = sessions_per_pod(r, w.load_threshold)
    if cap < 1:
        return []  # _room_for_a_call reports it
    if w.hpa.target_calls_percent <= MAX_SAFE_CALLS_PERCENT:
        return []
    trigger = calls_at_trigger(cap * w.hpa.target_calls_percent / 100)
    return [Problem(
        _key("hpaTargetCallsPercent"), w.hpa.target_calls_percent,
        f"puts the HPA's calls target at {cap * w.hpa.target_calls_percent / 100:g} of a {cap}-call cap; with the 10 % "
        f"tolerance it scales only above {trigger:g} calls per pod, when every pod already refuses calls "
        f"(AGENT_MAX_CALLS = {cap}); use at most {MAX_SAFE_CALLS_PERCENT}")]


def _scale_down_slower(w: WorkloadSettings) -> list[Problem]:
    h = w.hpa
    if h.scale_down_window_seconds > h.scale_up_window_seconds:
        return []
    return [Problem(
        _key("hpaScaleDownWindowSeconds"), h.scale_down_window_seconds,
        f"must be longer than hpaScaleUpWindowSeconds = {h.scale_up_window_seconds}: capacity should arrive fast "
        "and leave slowly, because every removed pod drains live calls and the HPA flaps otherwise; "
        f"raise it above {h.scale_up_window_seconds} (300 or more is usual)")]


def _warning_before_the_end(w: WorkloadSettings) -> list[Problem]:
    longest = w.max_session_minutes * 60
    if w.call.warning_seconds < longest:
        return []
    return [Problem(
        _key("callWarningSeconds"), w.call.warning_seconds,
        f"must be below maxSessionMinutes = {w.max_session_minutes} ({longest} s): the caller is warned this long before "
        f"the end, so the warning would come before the call starts; use at most {longest - 1}")]


def _fallback_differs(w: WorkloadSettings) -> list[Problem]:
    c = w.call
    same_place = c.gemini_fallback_location in ("", w.vertex_location)
    same_model = c.gemini_fallback_model in ("", w.gemini_model)
    if not (c.gemini_fallback_location or c.gemini_fallback_model) or not (same_place and same_model):
        return []
    key = "geminiFallbackLocation" if c.gemini_fallback_location else "geminiFallbackModel"
    return [Problem(
        _key(key), c.gemini_fallback_location or c.gemini_fallback_model,
        f"names what the primary already is (vertexLocation = {w.vertex_location}, geminiModel = {w.gemini_model}): "
        "the fallback would fail the way the primary did; name another region or model, or leave both empty")]


def _conversation_text_needs_debug(w: WorkloadSettings) -> list[Problem]:
    if not w.call.log_conversation_text or w.log_level == "DEBUG":
        return []
    return [Problem(
        _key("logConversationText"), True,
        f"puts conversation text in DEBUG lines only, but agentLogLevel = {w.log_level} drops them: "
        "set agentLogLevel to DEBUG (dev only) or leave logConversationText false")]


def _server_routes_until_full(w: WorkloadSettings) -> list[Problem]:
    """livekit-server assigns no job to a worker whose reported load is at or above its
    agents.target_load (v1.13.5 pkg/agent/config.go), whatever the worker's own threshold says;
    the capacity math here assumes the worker's threshold is the one that stops calls."""
    target = w.dispatch.livekit_target_load
    if w.load_threshold <= target:
        return []
    return [Problem(
        _key("loadThreshold"), w.load_threshold,
        f"is above livekitTargetLoad = {target}: the LiveKit server stops routing calls to a worker at load {target}, "
        f"so calls per pod, the HPA target and admission would all be computed for a load no worker reaches; "
        f"lower loadThreshold to {target} or set the server's agents.target_load (and livekitTargetLoad) higher")]


def workload_problems(w: WorkloadSettings) -> list[Problem]:
    """Cross-setting rules of the agent workload; parse_stack_config raises them together."""
    if w.size not in SIZES:
        return []  # reported by the single-value check of agentSize
    r = workload_resources(w)
    return [
        *_size_problems(w, r),
        *_drain_covers_calls(w),
        *_hpa_deadlock(w, r),
        *_admission_within_request(w, r),
        *_room_for_a_call(w, r),
        *_calls_target_before_full(w, r),
        *_scale_down_slower(w),
        *_server_routes_until_full(w),
        *_warning_before_the_end(w),
        *_fallback_differs(w),
        *_conversation_text_needs_debug(w),
    ]


# ------------------------------------------------------------------------------------------------
# What a stack's settings add up to, for people (the offline plan prints it).


def capacity_summary(w: WorkloadSettings) -> dict[str, int | str]:
    """Calls per pod, the fleet's range, and how long a spike waits for new capacity."""
    r = workload_resources(w)
    per_pod = sessions_per_pod(r, w.load_threshold)
    return {
        "calls_per_pod": per_pod,
        "pod_limited_by": pod_limited_by(r, w.load_threshold),
        "min_pods": w.hpa.min_replicas,
        "max_pods": w.hpa.max_replicas,
        "calls_at_min_pods": per_pod * w.hpa.min_replicas,
        "calls_at_max_pods": per_pod * w.hpa.max_replicas,
        "seconds_to_new_capacity": seconds_to_new_capacity(w.hpa.scale_up_window_seconds, w.spare_capacity_pods),
        "grace_seconds": termination_grace_seconds(w.drain_timeout_seconds),
    }
