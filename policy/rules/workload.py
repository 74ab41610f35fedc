"""Rules for the agent workload: probes, rollouts, logs, hardening and disruption budgets, and
the assembly of every agent rule in its stable order (timing and capacity rules live beside
this module in agent_timing.py and agent_scaling.py; the pod view in agent_pod.py).
Facts are read from the rendered objects, the way the cluster will see them."""

from __future__ import annotations

from typing import Any, Mapping

from domain.capacity import NODE_BOOT_S
from k8s.runtime import HEALTH_PORT, LIVE_PATH, METRICS_PORT, READY_PATH
from policy.rules.agent_pod import AgentPod, _per_pod, agent_pods, is_agent
from policy.rules.agent_pod import pre_stop_sleep_seconds  # noqa: F401  (the view's public names, here as before)
from policy.rules.agent_scaling import (
    _autopilot_resources, _cpu_limit, _hpa_below_load_threshold, _hpa_calls_below_cap, _job_memory_limit,
    _scale_down_slower,
)
from policy.rules.agent_timing import (
    _exec_form_start, _extended_duration, _grace_covers_drain, _no_spot, _sleep_only_pre_stop,
)
from policy.rules.base import ADVISORY, DEPLOYMENT, MANDATORY, PDB, Context, Finding, Resource, Rule, as_number, prop, unless

__all__ = ["AgentPod", "RULES", "agent_pods", "is_agent", "pre_stop_sleep_seconds"]


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
