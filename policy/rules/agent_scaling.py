"""Agent rules about capacity: limits and requests as Autopilot applies them, the HPA against
the worker's load threshold and call cap, scale-down pace, and a runaway job's memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from domain.capacity import FLOAT_SLACK, HPA_TOLERANCE, max_safe_target, worker_load_at_target
from domain.sizes import autopilot_problems
from policy.quantities import cpu_millicores, memory_mib
from policy.rules.agent_pod import AgentPod, agent_pods
from policy.rules.base import HPA, Context, Finding, Resource, as_number, prop, unless

# autoscaling/v2 defaults (Kubernetes HPA docs): scale-up window 0 s, scale-down 300 s.
HPA_DEFAULT_UP_WINDOW_S, HPA_DEFAULT_DOWN_WINDOW_S = 0, 300
# Autopilot ephemeral-storage request range (GKE "Resource requests in Autopilot"); domain/sizes.py
# covers CPU and memory only.
MIN_EPHEMERAL_MI, MAX_EPHEMERAL_MI = 10, 10 * 1024


def _cpu_limit(pod: AgentPod, ctx: Context) -> list[str]:
    return unless(prop(pod.container, "resources", "limits", "cpu") is not None,
                   "no CPU limit: the worker computes its load against the node's CPU count and over-accepts calls")


def _hpa_for(resources: list[Resource], pod: AgentPod) -> list[Resource]:
    deployment_names = {r.props.get("metadata", {}).get("name") for r in resources if r.name == pod.name}
    return [r for r in resources if r.type == HPA and prop(r.props, "spec", "scaleTargetRef", "name") in deployment_names]


@dataclass(frozen=True)
class CpuTarget:
    """An HPA's CPU target as a percentage of the request, however the HPA states it."""

    percent: float
    average_value_m: float | None = None  # set when the HPA targets absolute CPU per pod

    def describe(self, request_m: float) -> str:
        if self.average_value_m is None:
            return f"{as_number(self.percent)}% of a {request_m:.0f}m request"
        return f"{self.average_value_m:.0f}m per pod ({self.percent:.0f}% of a {request_m:.0f}m request)"

    def fix(self, safe_percent: int, request_m: float) -> str:
        if self.average_value_m is None:
            return f"use a target of at most {safe_percent}%"
        return f"use an averageValue of at most {safe_percent * request_m / 100:.0f}m"


def _cpu_target(hpa: Resource, request_m: float) -> CpuTarget | None:
    """Resource and ContainerResource CPU metrics, as Utilization or AverageValue. An
    AverageValue target is absolute CPU per pod and deadlocks the same way a percentage does."""
    for metric in prop(hpa.props, "spec", "metrics", default=[]):
        source = prop(metric, "resource") or prop(metric, "containerResource") or {}
        if prop(source, "name") != "cpu":
            continue
        utilization = prop(source, "target", "averageUtilization")
        if utilization is not None:
            return CpuTarget(float(utilization))
        average = cpu_millicores(prop(source, "target", "averageValue"))
        if average is not None:
            return CpuTarget(average / request_m * 100, average)
    return None


def _scale_up_tolerance(hpa: Resource) -> float:
    """The tolerance the HPA applies before scaling up. A per-HPA `behavior.scaleUp.tolerance`
    (Kubernetes 1.33+, behind the HPAConfigurableTolerance feature) only counts when it is
    larger than the cluster-wide 10%: where the feature is off, the field is ignored."""
    configured = prop(hpa.props, "spec", "behavior", "scaleUp", "tolerance")
    if configured is None:
        return HPA_TOLERANCE
    # A Kubernetes quantity ("0.05" or "50m"); milli-units over 1000 give the fraction.
    return max(HPA_TOLERANCE, cpu_millicores(configured) / 1000)


def _hpa_below_load_threshold(resources: list[Resource], ctx: Context) -> list[Finding]:
    findings = []
    for pod in agent_pods(resources):
        request = cpu_millicores(prop(pod.container, "resources", "requests", "cpu"))
        limit = cpu_millicores(prop(pod.container, "resources", "limits", "cpu"))
        if not ctx.bursting and request:
            limit = request  # Autopilot without bursting forces limit = request
        if not request or not limit:
            continue  # agent-cpu-limit and agent-autopilot-resources report these
        for hpa in _hpa_for(resources, pod):
            target = _cpu_target(hpa, request)
            if target is None:
                continue
            tolerance = _scale_up_tolerance(hpa)
            load = worker_load_at_target(target.percent, request, limit, tolerance)
            if load >= pod.load_threshold:
                safe = max_safe_target(pod.load_threshold, request, limit, tolerance)
                findings.append((hpa.name,
                                 f"HPA target {target.describe(request)} with a {limit:.0f}m effective limit puts each "
                                 f"worker at load {load:.2f} (with the {tolerance:.0%} HPA tolerance) >= load_threshold "
                                 f"{as_number(pod.load_threshold)}: every pod reports full before the HPA scales, and new callers wait; "
                                 f"{target.fix(safe, request)}"))
    return findings


# The agent's active-calls gauge as the Custom Metrics Stackdriver Adapter names it (k8s/scaling.py).
CALLS_METRIC_PART = "voice_agent_active_sessions"


def _calls_target(hpa: Resource) -> float | None:
    """The HPA's average active calls per pod, if it scales on them (a quantity: "4200m" = 4.2)."""
    for metric in prop(hpa.props, "spec", "metrics", default=[]):
        if metric.get("type") != "Pods" or CALLS_METRIC_PART not in str(prop(metric, "pods", "metric", "name", default="")):
            continue
        value = cpu_millicores(prop(metric, "pods", "target", "averageValue"))
        if value is not None:
            return value / 1000
    return None


def _hpa_calls_below_cap(resources: list[Resource], ctx: Context) -> list[Finding]:
    findings = []
    for pod in agent_pods(resources):
        cap = int(pod.env.get("AGENT_MAX_CALLS", "0") or 0)
        if cap <= 0:
            continue
        for hpa in _hpa_for(resources, pod):
            target = _calls_target(hpa)
            if target is None:
                continue
            tolerance = _scale_up_tolerance(hpa)
            trigger = target * (1 + tolerance)
            if trigger >= cap - FLOAT_SLACK:  # a target of cap / 1.1 written out may land a hair below
                findings.append((hpa.name, f"HPA calls target {as_number(round(target, 3))} per pod acts only above "
                                           f"{as_number(round(trigger, 3))} (with the {tolerance:.0%} tolerance), but each worker "
                                           f"refuses calls at AGENT_MAX_CALLS = {cap}: every pod is full before the HPA scales; "
                                           f"use a target below {as_number(round(cap / (1 + tolerance), 2))}"))
    return findings


def _job_memory_limit(pod: AgentPod, ctx: Context) -> list[str]:
    """A runaway job must be killed before it takes the container (and every call) with it."""
    raw = pod.env.get("AGENT_JOB_MEMORY_LIMIT_MB", "0") or "0"
    job = float(raw)
    if job <= 0:
        return ["AGENT_JOB_MEMORY_LIMIT_MB is not set: one job's memory blow-up can OOM-kill the container, i.e. "
                "every call on the pod (livekit-agents kills a job only above job_memory_limit_mb)"]
    limit = memory_mib(prop(pod.container, "resources", "limits", "memory"))
    if limit is not None and job >= limit:
        return [f"AGENT_JOB_MEMORY_LIMIT_MB {as_number(job)} is not below the container's memory limit {as_number(limit)} MiB: "
                "the container is OOM-killed before the framework kills the job"]
    return []


def _scale_down_slower(resources: list[Resource], ctx: Context) -> list[Finding]:
    findings = []
    for hpa in (r for r in resources if r.type == HPA):
        up = prop(hpa.props, "spec", "behavior", "scaleUp", "stabilizationWindowSeconds", default=HPA_DEFAULT_UP_WINDOW_S)
        down = prop(hpa.props, "spec", "behavior", "scaleDown", "stabilizationWindowSeconds", default=HPA_DEFAULT_DOWN_WINDOW_S)
        if down <= up:
            findings.append((hpa.name, f"scale-down window {as_number(down)} s is not longer than scale-up window {as_number(up)} s: "
                                       "capacity leaves as fast as it comes, and each removal drains live calls"))
    return findings


def _autopilot_resources(pod: AgentPod, ctx: Context) -> list[str]:
    requests = prop(pod.container, "resources", "requests", default={})
    limits = prop(pod.container, "resources", "limits", default={})
    cpu, mem = cpu_millicores(requests.get("cpu")), memory_mib(requests.get("memory"))
    if cpu is None or mem is None:
        return ["CPU or memory request missing: Autopilot applies its defaults (0.5 vCPU / 2 GiB) silently"]
    messages = autopilot_problems(int(cpu), int(mem), ctx.bursting) + _ephemeral_problems(requests)
    if not ctx.bursting:
        cpu_limit, mem_limit = cpu_millicores(limits.get("cpu")), memory_mib(limits.get("memory"))
        if (cpu_limit is not None and cpu_limit != cpu) or (mem_limit is not None and mem_limit != mem):
            messages.append(f"limits {limits.get('cpu')}/{limits.get('memory')} differ from requests "
                            f"{requests.get('cpu')}/{requests.get('memory')}: without bursting Autopilot silently sets limits "
                            "to the requests, so the declared headroom does not exist")
    return messages


def _ephemeral_problems(requests: Mapping[str, Any]) -> list[str]:
    value = requests.get("ephemeral-storage")
    if value is None:
        return []
    mib = memory_mib(value)
    if mib < MIN_EPHEMERAL_MI:
        return [f"ephemeral-storage request {value} is below the Autopilot minimum {MIN_EPHEMERAL_MI}Mi and would be raised silently"]
    if mib > MAX_EPHEMERAL_MI:
        return [f"ephemeral-storage request {value} exceeds the Autopilot maximum {MAX_EPHEMERAL_MI // 1024}Gi and is rejected"]
    return []
