"""Rules for the agent workload. Facts are read from the rendered objects, the way the cluster will see them."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from domain.capacity import (
    AUTOSCALER_GRACE_CAP_S,
    NODE_BOOT_S,
    SPOT_GRACE_S,
    HPA_TOLERANCE,
    SHUTDOWN_BUDGET_S,
    max_safe_target,
    worker_load_at_target,
)
from k8s.runtime import AGENT_ROLE, HEALTH_PORT, LIVE_PATH, METRICS_PORT, READY_PATH, ROLE_LABEL
from domain.sizes import autopilot_problems
from policy.quantities import cpu_millicores, memory_mib
from policy.rules.base import (
    ADVISORY, Context, DEPLOYMENT, Finding, HPA, MANDATORY, PDB, Resource, Rule, as_number, prop, unless,
)

# livekit-agents 1.8.9 defaults when the container does not set them (worker.py).
FRAMEWORK_LOAD_THRESHOLD = 0.7
FRAMEWORK_DRAIN_TIMEOUT_S = 3600
SPOT_LABEL = "cloud.google.com/gke-spot"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
# autoscaling/v2 defaults (Kubernetes HPA docs): scale-up window 0 s, scale-down 300 s.
HPA_DEFAULT_UP_WINDOW_S, HPA_DEFAULT_DOWN_WINDOW_S = 0, 300
# Autopilot ephemeral-storage request range (GKE "Resource requests in Autopilot"); domain/sizes.py
# covers CPU and memory only.
MIN_EPHEMERAL_MI, MAX_EPHEMERAL_MI = 10, 10 * 1024


@dataclass(frozen=True)
class AgentPod:
    """The agent's Deployment, seen as the facts the timing rules need."""

    name: str
    spec: Mapping[str, Any]  # pod spec
    annotations: Mapping[str, Any]
    labels: Mapping[str, Any]
    container: Mapping[str, Any]
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def drain_timeout(self) -> int:
        return int(self.env.get("AGENT_DRAIN_TIMEOUT_SECONDS", FRAMEWORK_DRAIN_TIMEOUT_S))

    @property
    def load_threshold(self) -> float:
        return float(self.env.get("AGENT_LOAD_THRESHOLD", FRAMEWORK_LOAD_THRESHOLD))

    @property
    def grace(self) -> int:
        # Kubernetes' default when unset.
        return int(self.spec.get("terminationGracePeriodSeconds", 30))

    @property
    def pre_stop(self) -> Mapping[str, Any] | None:
        return prop(self.container, "lifecycle", "preStop")

    @property
    def pre_stop_seconds(self) -> int:
        return pre_stop_sleep_seconds(self.pre_stop)


def pre_stop_sleep_seconds(pre_stop: Mapping[str, Any] | None) -> int:
    """Seconds a preStop hook waits: native sleep, or `sleep N` run by exec."""
    if not pre_stop:
        return 0
    if "sleep" in pre_stop:
        return int(prop(pre_stop, "sleep", "seconds", default=0))
    words = " ".join(prop(pre_stop, "exec", "command", default=[])).replace(";", " ").split()
    return sum(int(words[i + 1]) for i, w in enumerate(words[:-1]) if w == "sleep" and words[i + 1].isdigit())


def _is_sleep_only(pre_stop: Mapping[str, Any] | None) -> bool:
    if not pre_stop:
        return False
    if "sleep" in pre_stop:
        return True
    command = " ".join(prop(pre_stop, "exec", "command", default=[]))
    words = [w for w in command.replace(";", " ").split() if w not in ("/bin/sh", "sh", "bash", "/bin/bash", "-c")]
    return bool(words) and all(w == "sleep" or w.isdigit() for w in words)


def is_agent(template: Mapping[str, Any]) -> bool:
    """Agent pods say so (k8s/pod.py: gke-voice-agents/role=agent). Placeholders, tool servers
    and Deployments that are not ours carry another role or none, and the agent rules, which are
    about a LiveKit worker's drain and load, leave them alone."""
    return prop(template, "metadata", "labels", default={}).get(ROLE_LABEL) == AGENT_ROLE


def agent_pods(resources: Iterable[Resource]) -> list[AgentPod]:
    pods = []
    for r in resources:
        if r.type != DEPLOYMENT:
            continue
        template = prop(r.props, "spec", "template", default={})
        if not is_agent(template):
            continue
        spec = prop(template, "spec", default={})
        for container in prop(spec, "containers", default=[]):
            env = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
            pods.append(AgentPod(
                name=r.name, spec=spec, annotations=prop(template, "metadata", "annotations", default={}),
                labels=prop(template, "metadata", "labels", default={}), container=container, env=env,
            ))
    return pods


def _per_pod(check: Callable[[AgentPod, Context], list[str]]) -> Callable[[list[Resource], Context], list[Finding]]:
    def run(resources: list[Resource], ctx: Context) -> list[Finding]:
        return [(pod.name, message) for pod in agent_pods(resources) for message in check(pod, ctx)]
    return run


def _grace_covers_drain(pod: AgentPod, ctx: Context) -> list[str]:
    needed = pod.pre_stop_seconds + pod.drain_timeout + SHUTDOWN_BUDGET_S
    return unless(pod.grace >= needed,
                   f"terminationGracePeriodSeconds {pod.grace} < preStop {pod.pre_stop_seconds} + drain timeout "
                   f"{pod.drain_timeout} + shutdown {SHUTDOWN_BUDGET_S} = {needed} s: SIGKILL lands "
                   f"{needed - pod.grace} s before running calls may finish")


def _sleep_only_pre_stop(pod: AgentPod, ctx: Context) -> list[str]:
    if not _is_sleep_only(pod.pre_stop):
        return []
    left = pod.grace - pod.pre_stop_seconds
    return [f"preStop only sleeps {pod.pre_stop_seconds} s: the worker still advertises itself and takes new calls "
            f"during the sleep, then has {left} s of the {pod.grace} s grace left to drain them. The worker drains on "
            "SIGTERM; remove the preStop hook"]


def _command_words(container: Mapping[str, Any]) -> list[str]:
    # list(): CrossGuard hands sequences over as read-only proxies, which do not support `+`.
    return [str(w) for w in [*(container.get("command") or []), *(container.get("args") or [])]]


_MODES = ("start", "dev", "console")


def _agent_statement(script: str) -> tuple[str, bool]:
    """The statement of a `sh -c` script that runs the worker, and whether the shell hands
    over to it (`exec` on the last statement) so the worker, not the shell, gets SIGTERM."""
    statements = [s.strip() for s in re.split(r"&&|\|\||;|\n", script) if s.strip()]
    if not statements:
        return "", False
    runs_worker = [s for s in statements if any(m in s.split() for m in _MODES)]
    statement = runs_worker[-1] if runs_worker else statements[-1]
    return statement, statement is statements[-1] and statement.startswith("exec ")


def _exec_form_start(pod: AgentPod, ctx: Context) -> list[str]:
    words = _command_words(pod.container)
    if not words:
        return ["no command: the image's entrypoint decides, which no manifest check can see; state the worker's command "
                "in exec form with its `start` mode (ours: `python -m voice_agent start`)"]
    messages = []
    if words[0].rsplit("/", 1)[-1] in ("sh", "bash", "dash") and "-c" in words:
        script = words[words.index("-c") + 1] if words.index("-c") + 1 < len(words) else ""
        statement, hands_over = _agent_statement(script)
        if not hands_over:
            messages.append(f"the agent runs under `{shlex.join(words)}`: the shell receives SIGTERM and the worker never "
                            "drains; use exec form, or make the worker the script's last statement with `exec`")
        words = shlex.split(statement.removeprefix("exec "))
    if any(m in words for m in ("dev", "console")):
        messages.append(f"`{shlex.join(words)}` runs development mode, which skips the drain on SIGTERM; use `start`")
    elif "start" not in words:
        messages.append(f"`{shlex.join(words)}` does not run the worker's `start` mode")
    return messages


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
            if trigger >= cap - 1e-9:
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


def _extended_duration(pod: AgentPod, ctx: Context) -> list[str]:
    if pod.grace <= AUTOSCALER_GRACE_CAP_S:
        return []
    return unless(str(pod.annotations.get(SAFE_TO_EVICT)).lower() == "false",
                   f"grace {pod.grace} s exceeds the {AUTOSCALER_GRACE_CAP_S} s the cluster autoscaler honours: a node "
                   f"scale-down kills calls after 10 minutes; annotate the pod {SAFE_TO_EVICT}: \"false\"")


def _mentions(node: Any, text: str) -> bool:
    """Whether a string equal to `text` appears anywhere in nested props. Walks the structure
    rather than str() it: CrossGuard's read-only proxies do not print their contents."""
    if isinstance(node, Mapping):
        return any(_mentions(v, text) for v in node.values())
    if isinstance(node, Sequence) and not isinstance(node, str):
        return any(_mentions(v, text) for v in node)
    return node == text


def _no_spot(pod: AgentPod, ctx: Context) -> list[str]:
    selector = prop(pod.spec, "nodeSelector", default={})
    tolerations = prop(pod.spec, "tolerations", default=[])
    affinity = prop(pod.spec, "affinity", default={})
    if str(selector.get(SPOT_LABEL)).lower() == "true" or any(t.get("key") == SPOT_LABEL for t in tolerations) or _mentions(affinity, SPOT_LABEL):
        return [f"Spot Pods get {SPOT_GRACE_S} s to stop whatever the grace period says: every live call on a reclaimed "
                "node is cut"]
    return []


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


def _probes(pod: AgentPod, ctx: Context) -> list[str]:
    missing = [p for p in ("livenessProbe", "startupProbe") if not pod.container.get(p)]
    messages = unless(not missing, f"missing {', '.join(missing)}: a hung worker is never restarted, or prewarm is killed as a hang")
    return messages + _probe_port_problems(pod)


def _probe_target(pod: AgentPod, kind: str) -> tuple[Any, str | None] | None:
    """(port number or None when unresolvable, path) a probe aims at; None without a handler."""
    probe = pod.container.get(kind) or {}
    handler = prop(probe, "httpGet") or prop(probe, "tcpSocket")
    if not handler or prop(handler, "port") is None:
        return None
    port = prop(handler, "port")
    named = {p.get("name"): p.get("containerPort") for p in pod.container.get("ports") or []}
    number = named.get(port) if isinstance(port, str) and not port.isdigit() else port
    return number, prop(handler, "path")


def _probe_port_problems(pod: AgentPod) -> list[str]:
    """A probe aimed at a port nothing serves fails every time: the kubelet restarts a pod that
    was fine (liveness) or never lets it start (startup). The agent answers probes on its own
    server (/ready, /live next to /metrics); the framework's health port serves GET / only."""
    serving = {int(pod.env.get("AGENT_METRICS_PORT", METRICS_PORT)): "AGENT_METRICS_PORT",
               int(pod.env.get("AGENT_HEALTH_PORT", HEALTH_PORT)): "AGENT_HEALTH_PORT"}
    problems = []
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        target = _probe_target(pod, kind)
        if target is None:
            continue
        number, _ = target
        port = prop(pod.container.get(kind), "httpGet", "port") or prop(pod.container.get(kind), "tcpSocket", "port")
        if number is None:
            problems.append(f"{kind} checks port {port!r}, which no container port is named: the probe always fails")
        elif int(float(number)) not in serving:
            ports = ", ".join(f"{n} ({env})" for n, env in sorted(serving.items()))
            problems.append(f"{kind} checks port {as_number(number)} but the agent serves only {ports}: "
                            "the probe always fails and the kubelet restarts or holds back a healthy pod")
    return problems


def _readiness_means_registered(pod: AgentPod, ctx: Context) -> list[str]:
    """Readiness is what a rollout waits for before it drains an old pod. The framework's GET /
    answers 200 until the worker has given up on LiveKit (~130 s): a release with a wrong secret
    would be 'ready', and every old pod would drain while the new ones take no call."""
    target = _probe_target(pod, "readinessProbe")
    metrics = int(pod.env.get("AGENT_METRICS_PORT", METRICS_PORT))
    if target is None:
        return ["no readinessProbe: a pod counts as ready before its worker has registered with LiveKit, so a bad "
                f"release replaces every serving pod; probe GET {READY_PATH} on the metrics port ({metrics})"]
    number, path = target
    if number is None or int(float(number)) != metrics or path != READY_PATH:
        return [f"readinessProbe checks {path or '(tcp)'} on port {as_number(number) if number is not None else '?'}, not "
                f"GET {READY_PATH} on {metrics}: readiness must mean registered with LiveKit and not draining, or a "
                "release that cannot take calls (wrong secret, wrong URL, no model access) still replaces the fleet"]
    return []


def _liveness_not_readiness(pod: AgentPod, ctx: Context) -> list[str]:
    """A liveness probe that fails with readiness restarts pods for what readiness already shows."""
    target = _probe_target(pod, "livenessProbe")
    if target is None or target[1] != READY_PATH:
        return []
    return [f"livenessProbe checks {READY_PATH}, which fails during a LiveKit outage and during every drain: the kubelet "
            f"would restart healthy pods in an outage and cut the calls a draining pod carries; use {LIVE_PATH}"]


def _deadline_problems(spec: Mapping[str, Any]) -> list[str]:
    """The deadline must outlast what a healthy new pod needs before it counts as available (a
    node boot, the startup probe's budget, minReadySeconds), or a good release is reported stuck;
    Kubernetes itself refuses a deadline not above minReadySeconds."""
    deadline = float(prop(spec, "progressDeadlineSeconds"))
    min_ready = float(prop(spec, "minReadySeconds", default=0))
    containers = prop(spec, "template", "spec", "containers", default=[])
    startup = max((float(prop(c, "startupProbe", "periodSeconds", default=10))
                   * float(prop(c, "startupProbe", "failureThreshold", default=3)) for c in containers
                   if c.get("startupProbe")), default=0.0)
    needed = NODE_BOOT_S + startup + min_ready
    if deadline <= min_ready:
        return [f"progressDeadlineSeconds {as_number(deadline)} is not above minReadySeconds {as_number(min_ready)}: "
                "Kubernetes refuses the Deployment"]
    if deadline < needed:
        return [f"progressDeadlineSeconds {as_number(deadline)} < node boot {NODE_BOOT_S} + startup probe budget "
                f"{as_number(startup)} + minReadySeconds {as_number(min_ready)} = {as_number(needed)} s: a healthy release "
                "on a new node is reported stuck; raise it"]
    return []


def _rollout_keeps_old_pods(resources: list[Resource], ctx: Context) -> list[Finding]:
    """A bad release must stall with the old pods still serving: only surge, never unavailable."""
    findings = []
    for r in resources:
        if r.type != DEPLOYMENT or not is_agent(prop(r.props, "spec", "template", default={})):
            continue
        spec = prop(r.props, "spec", default={})
        strategy = prop(spec, "strategy", default={})
        unavailable = prop(strategy, "rollingUpdate", "maxUnavailable", default="25%")
        if prop(strategy, "type", default="RollingUpdate") == "Recreate":
            findings.append((r.name, "strategy Recreate stops every pod before the new release proves it can take calls; "
                                     "use RollingUpdate with maxUnavailable 0"))
        elif str(as_number(unavailable)) not in ("0", "0%"):
            findings.append((r.name, f"rollingUpdate.maxUnavailable is {as_number(unavailable)} (Kubernetes' default 25 % when "
                                     "unset): old pods start draining before new ones are ready, so a release that never "
                                     "becomes ready still takes capacity away; set maxUnavailable 0 and let maxSurge add pods"))
        if prop(spec, "progressDeadlineSeconds") is None:
            findings.append((r.name, "no progressDeadlineSeconds: a stuck rollout is reported after Kubernetes' default 600 s; "
                                     "set it from the time a new pod needs to become ready, so a bad release alarms early"))
        else:
            findings += [(r.name, m) for m in _deadline_problems(spec)]
    return findings


def _no_conversation_text(pod: AgentPod, ctx: Context) -> list[str]:
    """Callers' words are personal data; Cloud Logging keeps them for weeks and many people read it."""
    value = pod.env.get("AGENT_LOG_CONVERSATION_TEXT", "false").strip().lower()
    return unless(value not in ("true", "1"),
                  "AGENT_LOG_CONVERSATION_TEXT is on: every caller's words go to Cloud Logging in DEBUG lines; "
                  "leave logConversationText false (a dev stack may allow it in its policy config)")


def _security_context(pod: AgentPod, ctx: Context) -> list[str]:
    c, p = pod.container.get("securityContext") or {}, pod.spec.get("securityContext") or {}

    def setting(key: str) -> Any:
        return c.get(key, p.get(key))

    problems = []
    if setting("runAsNonRoot") is not True:
        problems.append("runAsNonRoot is not true")
    if c.get("readOnlyRootFilesystem") is not True:
        problems.append("root filesystem is writable")
    if c.get("allowPrivilegeEscalation") is not False:
        problems.append("privilege escalation is allowed")
    if "ALL" not in (prop(c, "capabilities", "drop", default=[]) or []):
        problems.append("capabilities are not dropped")
    if prop(c, "seccompProfile", "type", default=prop(p, "seccompProfile", "type")) != "RuntimeDefault":
        problems.append("no RuntimeDefault seccomp profile")
    return unless(not problems, "container is not hardened: " + "; ".join(problems))


def _pdb_present(resources: list[Resource], ctx: Context) -> list[Finding]:
    pdbs = [r for r in resources if r.type == PDB]
    findings = []
    for pod in agent_pods(resources):
        covering = [r for r in pdbs if _selects(prop(r.props, "spec", "selector", "matchLabels", default={}), pod.labels)]
        if not covering:
            findings.append((pod.name, "no PodDisruptionBudget selects the agent: a node drain may evict every pod at once"))
        findings += [(r.name, message) for r in covering for message in _pdb_allows_no_disruption(r.props)]
    return findings


def _selects(match_labels: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    return bool(match_labels) and all(labels.get(k) == v for k, v in match_labels.items())


def _pdb_allows_no_disruption(props: Mapping[str, Any]) -> list[str]:
    """A budget of zero does not protect calls better than a budget of one: GKE node upgrades
    wait on it for up to an hour and then evict anyway, and the cluster autoscaler never
    removes the node (GKE "Standard cluster upgrades" / "Autopilot upgrades" docs)."""
    max_unavailable = prop(props, "spec", "maxUnavailable")
    min_available = prop(props, "spec", "minAvailable")
    if max_unavailable is not None and str(as_number(max_unavailable)) in ("0", "0%"):
        setting = f"maxUnavailable {as_number(max_unavailable)}"
    elif str(min_available) == "100%":
        setting = "minAvailable 100%"
    else:
        return []
    return [f"the budget allows no disruption ({setting}): node upgrades stall on it for up to 1 h and then evict anyway, "
            "and the autoscaler can never empty a node; allow one pod at a time (maxUnavailable: 1)"]


RULES: tuple[Rule, ...] = (
    Rule("agent-grace-covers-drain", MANDATORY, "Grace covers preStop + drain timeout + shutdown budget.", check_stack=_per_pod(_grace_covers_drain)),
    Rule("agent-no-sleep-prestop", MANDATORY, "No preStop that only sleeps while the worker takes calls.", check_stack=_per_pod(_sleep_only_pre_stop)),
    Rule("agent-exec-form-start", MANDATORY, "The worker gets SIGTERM directly and runs `start` mode.", check_stack=_per_pod(_exec_form_start)),
    Rule("agent-cpu-limit", MANDATORY, "The agent container has a CPU limit.", check_stack=_per_pod(_cpu_limit)),
    Rule("agent-hpa-below-load-threshold", MANDATORY, "HPA target x request/limit stays below the worker's load threshold.", check_stack=_hpa_below_load_threshold,
         config=("bursting",)),
    Rule("agent-hpa-calls-below-cap", MANDATORY, "The HPA's calls target, with its tolerance, fires below the pod's call cap.",
         check_stack=_hpa_calls_below_cap),
    Rule("agent-job-memory-limit", MANDATORY, "A runaway job is killed before the container's memory limit.",
         check_stack=_per_pod(_job_memory_limit)),
    Rule("agent-scale-down-slower", ADVISORY, "Scale-down is slower than scale-up.", check_stack=_scale_down_slower),
    Rule("agent-extended-duration", MANDATORY, "Grace beyond 10 minutes comes with safe-to-evict=false.", check_stack=_per_pod(_extended_duration)),
    Rule("agent-no-spot", MANDATORY, "Live sessions do not run on Spot Pods.", check_stack=_per_pod(_no_spot)),
    Rule("agent-autopilot-resources", ADVISORY, "Requests and limits are valid on Autopilot as declared.", check_stack=_per_pod(_autopilot_resources),
         config=("bursting",)),
    Rule("agent-probes", ADVISORY, "The agent has liveness and startup probes.", check_stack=_per_pod(_probes)),
    Rule("agent-readiness-registered", MANDATORY, "Readiness means registered with LiveKit and not draining.",
         check_stack=_per_pod(_readiness_means_registered)),
    Rule("agent-liveness-not-readiness", MANDATORY, "Liveness never fails for what readiness shows (outage, drain).",
         check_stack=_per_pod(_liveness_not_readiness)),
    Rule("agent-rollout-keeps-old-pods", MANDATORY, "Rollouts surge and never take an old pod away before a new one is ready.",
         check_stack=_rollout_keeps_old_pods),
    Rule("agent-no-conversation-text", MANDATORY, "No caller's words in the logs.", check_stack=_per_pod(_no_conversation_text)),
    Rule("agent-security-context", MANDATORY, "The agent container is hardened.", check_stack=_per_pod(_security_context)),
    Rule("agent-pdb", ADVISORY, "A PodDisruptionBudget covers the agent.", check_stack=_pdb_present),
)
