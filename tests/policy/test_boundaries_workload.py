"""The agent workload's rules at their boundaries: equal, just inside, just outside; on every
branch a rule reads; and with each field unset where Kubernetes or GKE supply a default.

Each case starts from the committed prod stack's real plan (2000m request = limit, no bursting,
load threshold 0.7, HPA target 50 %, grace 2800 s = drain 2700 + shutdown 100) and changes the
rendered inputs the way a hand edit would. The expected outcome is stated as which messages the
one rule gives: `[]` (passes) or the messages, so a case that passes for the wrong reason (a rule
that never runs) cannot look like a pass of the right one: each passing case has a failing twin
one step away.
"""

from __future__ import annotations

import pytest

from domain.capacity import SHUTDOWN_BUDGET_S
from policy.engine import evaluate_plan
from tests.conftest import _fixture_plan
from tests.policy.test_rule_edges import _same_in_crossguard

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SPOT = "cloud.google.com/gke-spot"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"


def _prod() -> list[dict]:
    return _fixture_plan("prod").resources


def _deployment(resources: list[dict]) -> dict:
    return next(r for r in resources if r["type"] == DEPLOYMENT and r["name"] == "agent-deployment")["inputs"]


def _pod(resources: list[dict]) -> dict:
    return _deployment(resources)["spec"]["template"]["spec"]


def _container(resources: list[dict]) -> dict:
    return _pod(resources)["containers"][0]


def _hpa(resources: list[dict]) -> dict:
    return next(r for r in resources if r["type"] == HPA and r["name"] == "agent-hpa")["inputs"]["spec"]


def _env(resources: list[dict], name: str, value: str | None) -> None:
    env = _container(resources)["env"]
    env[:] = [e for e in env if e["name"] != name] + ([{"name": name, "value": value}] if value is not None else [])


def _messages(resources: list[dict], rule: str) -> list[str]:
    return [v["message"] for v in evaluate_plan(resources, "prod") if v["rule"] == rule]


def test_the_committed_prod_plan_is_what_these_cases_assume():
    resources = _prod()
    c, hpa = _container(resources), _hpa(resources)
    assert c["resources"]["requests"]["cpu"] == c["resources"]["limits"]["cpu"] == "2000m"
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 50
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["AGENT_LOAD_THRESHOLD"] == "0.7" and env["AGENT_DRAIN_TIMEOUT_SECONDS"] == "2700"
    assert _pod(resources)["terminationGracePeriodSeconds"] == 2700 + SHUTDOWN_BUDGET_S == 2800


# --------------------------------------------------------------------------------------------
# agent-hpa-below-load-threshold: target 50 % x 1.1 tolerance x request/limit 1 = load 0.55.


@pytest.mark.parametrize(("threshold", "flagged"), [("0.54", True), ("0.55", True), ("0.56", False)])
def test_hpa_load_exactly_at_the_threshold_deadlocks(threshold, flagged):
    """At load == threshold the worker already reports full (livekit-agents marks itself full at
    load >= load_threshold), so equality is the failing side."""
    resources = _prod()
    _env(resources, "AGENT_LOAD_THRESHOLD", threshold)
    found = _messages(resources, "agent-hpa-below-load-threshold")
    if flagged:
        [message] = found
        assert message.startswith(f"HPA target 50% of a 2000m request with a 2000m effective limit puts each worker at "
                                  f"load 0.55 (with the 10% HPA tolerance) >= load_threshold {threshold}")
        _same_in_crossguard(resources, "prod")
    else:
        assert found == []


def test_unset_load_threshold_is_the_frameworks_0_7():
    """Without AGENT_LOAD_THRESHOLD the worker uses livekit-agents' default 0.7 (worker.py 1.8.9):
    target 64 % gives 0.704 >= 0.7, target 63 % gives 0.693."""
    resources = _prod()
    _env(resources, "AGENT_LOAD_THRESHOLD", None)
    _hpa(resources)["metrics"][0]["resource"]["target"]["averageUtilization"] = 64
    [message] = _messages(resources, "agent-hpa-below-load-threshold")
    assert ">= load_threshold 0.7:" in message and message.endswith("use a target of at most 63%")
    _hpa(resources)["metrics"][0]["resource"]["target"]["averageUtilization"] = 63
    assert _messages(resources, "agent-hpa-below-load-threshold") == []


def test_with_bursting_the_declared_limit_counts():
    """A bursting cluster honours a limit above the request: 1000m request, 2000m limit, 90 %
    target gives load 0.495; without bursting the same pod runs at limit = request, load 0.99."""
    resources = _prod()
    _container(resources)["resources"]["requests"]["cpu"] = "1000m"
    _hpa(resources)["metrics"][0]["resource"]["target"]["averageUtilization"] = 90
    config = {"agent-hpa-below-load-threshold": {"bursting": True}}
    assert [v for v in evaluate_plan(resources, "prod", config) if v["rule"] == "agent-hpa-below-load-threshold"] == []
    [message] = _messages(resources, "agent-hpa-below-load-threshold")
    assert "with a 1000m effective limit puts each worker at load 0.99" in message


def test_a_memory_metric_is_not_a_cpu_target():
    resources = _prod()
    _hpa(resources)["metrics"][0]["resource"]["name"] = "memory"
    _hpa(resources)["metrics"][0]["resource"]["target"]["averageUtilization"] = 95
    assert _messages(resources, "agent-hpa-below-load-threshold") == []


# --------------------------------------------------------------------------------------------
# agent-hpa-calls-below-cap: AGENT_MAX_CALLS 7 in prod. With a per-HPA tolerance of 0.75 the
# trigger is target x 1.75, so a target of exactly 4 calls fires at exactly 7.


@pytest.mark.parametrize(("target", "flagged"), [("4", True), ("3999m", False), ("4001m", True)])
def test_calls_trigger_exactly_at_the_cap_is_too_late(target, flagged):
    resources = _prod()
    _hpa(resources)["behavior"]["scaleUp"]["tolerance"] = "750m"
    _hpa(resources)["metrics"][1]["pods"]["target"]["averageValue"] = target
    found = _messages(resources, "agent-hpa-calls-below-cap")
    assert bool(found) is flagged, found
    if flagged:
        assert "refuses calls at AGENT_MAX_CALLS = 7" in found[0] and "with the 75% tolerance" in found[0]


def test_no_call_cap_means_no_calls_rule():
    resources = _prod()
    _env(resources, "AGENT_MAX_CALLS", None)
    _hpa(resources)["metrics"][1]["pods"]["target"]["averageValue"] = "100"
    assert _messages(resources, "agent-hpa-calls-below-cap") == []
    _env(resources, "AGENT_MAX_CALLS", "7")
    assert _messages(resources, "agent-hpa-calls-below-cap") != []


def test_a_pods_metric_on_another_series_is_not_the_calls_target():
    resources = _prod()
    _hpa(resources)["metrics"][1]["pods"]["target"]["averageValue"] = "100"
    _hpa(resources)["metrics"][1]["pods"]["metric"]["name"] = "prometheus.googleapis.com|other_gauge|gauge"
    assert _messages(resources, "agent-hpa-calls-below-cap") == []


# --------------------------------------------------------------------------------------------
# agent-grace-covers-drain: grace >= preStop + drain + shutdown budget (2800 in prod).


@pytest.mark.parametrize(("grace", "flagged"), [(2799, True), (2800, False), (2801, False)])
def test_grace_exactly_covering_the_drain_passes(grace, flagged):
    resources = _prod()
    _pod(resources)["terminationGracePeriodSeconds"] = grace
    found = _messages(resources, "agent-grace-covers-drain")
    assert found == ([f"terminationGracePeriodSeconds {grace} < preStop 0 + drain timeout 2700 + shutdown "
                      f"{SHUTDOWN_BUDGET_S} = 2800 s: SIGKILL lands 1 s before running calls may finish"] if flagged else [])


def test_unset_grace_is_kubernetes_30_seconds():
    """terminationGracePeriodSeconds defaults to 30 (Kubernetes API reference, PodSpec)."""
    resources = _prod()
    del _pod(resources)["terminationGracePeriodSeconds"]
    [message] = _messages(resources, "agent-grace-covers-drain")
    assert message.startswith("terminationGracePeriodSeconds 30 < preStop 0 + drain timeout 2700")


def test_unset_drain_timeout_is_the_frameworks_hour():
    """Without AGENT_DRAIN_TIMEOUT_SECONDS the worker waits livekit-agents' 3600 s (worker.py 1.8.9)."""
    resources = _prod()
    _env(resources, "AGENT_DRAIN_TIMEOUT_SECONDS", None)
    [message] = _messages(resources, "agent-grace-covers-drain")
    assert "drain timeout 3600 + shutdown" in message


def test_a_pre_stop_sleep_counts_inside_the_grace():
    resources = _prod()
    _container(resources)["lifecycle"] = {"preStop": {"sleep": {"seconds": 1}}}
    [message] = _messages(resources, "agent-grace-covers-drain")
    assert "< preStop 1 + drain timeout 2700" in message
    _pod(resources)["terminationGracePeriodSeconds"] = 2801
    assert _messages(resources, "agent-grace-covers-drain") == []


# --------------------------------------------------------------------------------------------
# agent-extended-duration: above the autoscaler's 600 s, safe-to-evict must be "false".


@pytest.mark.parametrize(("grace", "annotation", "flagged"), [
    (600, None, False),      # exactly the cap: the autoscaler honours it in full
    (601, None, True),
    (599, None, False),
    (601, "false", False),
    (601, "False", False),   # annotation values are compared case-insensitively by the autoscaler
    (601, "true", True),
])
def test_grace_exactly_600_needs_no_safe_to_evict(grace, annotation, flagged):
    resources = _prod()
    template = _deployment(resources)["spec"]["template"]
    _pod(resources)["terminationGracePeriodSeconds"] = grace
    annotations = template["metadata"]["annotations"]
    annotations.pop(SAFE_TO_EVICT)
    if annotation is not None:
        annotations[SAFE_TO_EVICT] = annotation
    found = _messages(resources, "agent-extended-duration")
    assert found == ([f"grace {grace} s exceeds the 600 s the cluster autoscaler honours: a node scale-down kills calls "
                      f"after 10 minutes; annotate the pod {SAFE_TO_EVICT}: \"false\""] if flagged else [])


# --------------------------------------------------------------------------------------------
# agent-no-spot: every way a pod lands on Spot (GKE "Spot Pods": nodeSelector or node affinity
# on cloud.google.com/gke-spot, usually with a toleration of the Spot taint).

SPOT_MESSAGE = "Spot Pods get 25 s to stop whatever the grace period says: every live call on a reclaimed node is cut"


@pytest.mark.parametrize(("spec", "flagged"), [
    ({"nodeSelector": {SPOT: "true"}}, True),
    ({"nodeSelector": {SPOT: "True"}}, True),
    ({"nodeSelector": {SPOT: "false"}}, False),
    ({"nodeSelector": {"cloud.google.com/compute-class": "Balanced"}}, False),
    ({"tolerations": [{"key": SPOT, "operator": "Equal", "value": "true", "effect": "NoSchedule"}]}, True),
    ({"tolerations": [{"key": "cloud.google.com/gke-accelerator", "operator": "Exists"}]}, False),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": SPOT, "operator": "In", "values": ["true"]}]}]}}}}, True),
    ({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": {
        "matchExpressions": [{"key": SPOT, "operator": "Exists"}]}}]}}}, True),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-central1-a"]}]}]}}}},
     False),
])
def test_spot_through_every_branch(spec, flagged):
    resources = _prod()
    _pod(resources).update(spec)
    assert _messages(resources, "agent-no-spot") == ([SPOT_MESSAGE] if flagged else [])
    if flagged:
        _same_in_crossguard(resources, "prod")


# --------------------------------------------------------------------------------------------
# agent-security-context: every field, at the container, inherited from the pod, and unset.


def _hardening(resources: list[dict]) -> list[str]:
    found = _messages(resources, "agent-security-context")
    assert len(found) <= 1
    return found[0].removeprefix("container is not hardened: ").split("; ") if found else []


@pytest.mark.parametrize(("change", "problems"), [
    # runAsNonRoot: the container's own setting wins over the pod's (PodSecurityContext docs)
    (lambda c, p: c.update(runAsNonRoot=False), ["runAsNonRoot is not true"]),
    (lambda c, p: c.pop("runAsNonRoot"), []),  # the pod's true is inherited
    (lambda c, p: (c.pop("runAsNonRoot"), p.pop("runAsNonRoot")), ["runAsNonRoot is not true"]),
    (lambda c, p: (c.pop("runAsNonRoot"), p.update(runAsNonRoot=False)), ["runAsNonRoot is not true"]),
    # readOnlyRootFilesystem exists only on the container and is false when unset
    (lambda c, p: c.pop("readOnlyRootFilesystem"), ["root filesystem is writable"]),
    (lambda c, p: c.update(readOnlyRootFilesystem=False), ["root filesystem is writable"]),
    # allowPrivilegeEscalation is true when unset (SecurityContext API reference)
    (lambda c, p: c.pop("allowPrivilegeEscalation"), ["privilege escalation is allowed"]),
    (lambda c, p: c.update(allowPrivilegeEscalation=True), ["privilege escalation is allowed"]),
    (lambda c, p: c.update(capabilities={"drop": ["NET_RAW"]}), ["capabilities are not dropped"]),
    (lambda c, p: c.pop("capabilities"), ["capabilities are not dropped"]),
    # seccomp: the container's profile, else the pod's; none at all is Unconfined on GKE
    (lambda c, p: c.pop("seccompProfile"), []),
    (lambda c, p: (c.pop("seccompProfile"), p.pop("seccompProfile")), ["no RuntimeDefault seccomp profile"]),
    (lambda c, p: c.update(seccompProfile={"type": "Unconfined"}), ["no RuntimeDefault seccomp profile"]),
    (lambda c, p: c.update(seccompProfile={"type": "Localhost", "localhostProfile": "x.json"}),
     ["no RuntimeDefault seccomp profile"]),
    (lambda c, p: (c.clear(), p.clear()), ["runAsNonRoot is not true", "root filesystem is writable",
                                           "privilege escalation is allowed", "capabilities are not dropped",
                                           "no RuntimeDefault seccomp profile"]),
])
def test_container_hardening_field_by_field(change, problems):
    resources = _prod()
    change(_container(resources)["securityContext"], _pod(resources)["securityContext"])
    assert _hardening(resources) == problems


def test_no_security_context_at_all_is_not_hardened():
    resources = _prod()
    del _container(resources)["securityContext"]
    del _pod(resources)["securityContext"]
    assert len(_hardening(resources)) == 5


# --------------------------------------------------------------------------------------------
# agent-rollout-keeps-old-pods: maxUnavailable 0 only; Kubernetes' defaults are RollingUpdate
# with maxUnavailable 25 % and maxSurge 25 % (Deployment docs, "Rolling Update Deployment").


@pytest.mark.parametrize(("strategy", "flagged"), [
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, None),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "0%"}}, None),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}}, "is 1 "),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "1%"}}, "is 1% "),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}}, "is 25% "),   # unset: 25 %
    ({"type": "RollingUpdate"}, "is 25% "),
    ({}, "is 25% "),                                                                # no strategy at all
    ({"type": "Recreate"}, "Recreate"),
])
def test_rollout_strategy_with_kubernetes_defaults(strategy, flagged):
    resources = _prod()
    spec = _deployment(resources)["spec"]
    spec.pop("strategy")
    if strategy:
        spec["strategy"] = strategy
    found = _messages(resources, "agent-rollout-keeps-old-pods")
    if flagged is None:
        assert found == []
    else:
        [message] = found
        assert flagged in message


# needed = node boot 120 + startup probe 10 s x 12 + minReadySeconds 10 = 250 s in prod.
@pytest.mark.parametrize(("deadline", "flagged"), [(249, True), (250, False), (251, False)])
def test_progress_deadline_at_what_a_new_pod_needs(deadline, flagged):
    resources = _prod()
    _deployment(resources)["spec"]["progressDeadlineSeconds"] = deadline
    found = _messages(resources, "agent-rollout-keeps-old-pods")
    assert found == ([f"progressDeadlineSeconds {deadline} < node boot 120 + startup probe budget 120 + minReadySeconds "
                      "10 = 250 s: a healthy release on a new node is reported stuck; raise it"] if flagged else [])


def test_startup_probe_defaults_count_in_the_deadline():
    """periodSeconds 10 and failureThreshold 3 when unset (Probe API reference): 120 + 30 + 10."""
    resources = _prod()
    probe = _container(resources)["startupProbe"]
    del probe["periodSeconds"], probe["failureThreshold"]
    _deployment(resources)["spec"]["progressDeadlineSeconds"] = 159
    [message] = _messages(resources, "agent-rollout-keeps-old-pods")
    assert "startup probe budget 30 + minReadySeconds 10 = 160 s" in message
    _deployment(resources)["spec"]["progressDeadlineSeconds"] = 160
    assert _messages(resources, "agent-rollout-keeps-old-pods") == []


@pytest.mark.parametrize(("deadline", "min_ready", "refused"), [(10, 10, True), (10, 11, True), (300, 299, False)])
def test_progress_deadline_not_above_min_ready_is_refused(deadline, min_ready, refused):
    resources = _prod()
    _deployment(resources)["spec"].update(progressDeadlineSeconds=deadline, minReadySeconds=min_ready)
    found = _messages(resources, "agent-rollout-keeps-old-pods")
    assert any("Kubernetes refuses the Deployment" in m for m in found) is refused


def test_unset_progress_deadline_is_kubernetes_600_seconds():
    resources = _prod()
    del _deployment(resources)["spec"]["progressDeadlineSeconds"]
    [message] = _messages(resources, "agent-rollout-keeps-old-pods")
    assert message.startswith("no progressDeadlineSeconds: a stuck rollout is reported after Kubernetes' default 600 s")


# --------------------------------------------------------------------------------------------
# agent-job-memory-limit: prod container limit 4096Mi.


@pytest.mark.parametrize(("job", "flagged"), [("4095", False), ("4096", True), ("4097", True), ("0", True), (None, True)])
def test_job_memory_limit_below_the_container_limit(job, flagged):
    resources = _prod()
    _env(resources, "AGENT_JOB_MEMORY_LIMIT_MB", job)
    found = _messages(resources, "agent-job-memory-limit")
    assert bool(found) is flagged
    if job in (None, "0"):
        assert found[0].startswith("AGENT_JOB_MEMORY_LIMIT_MB is not set")
    elif flagged:
        assert found[0].startswith(f"AGENT_JOB_MEMORY_LIMIT_MB {job} is not below the container's memory limit 4096 MiB")


# --------------------------------------------------------------------------------------------
# agent-scale-down-slower: prod scale-up window 60 s; autoscaling/v2 defaults when unset are
# 0 s up and 300 s down (HPA docs, "Default Behavior").


@pytest.mark.parametrize(("up", "down", "flagged"), [
    (60, 60, True), (60, 61, False), (60, 59, True),
    (None, 0, True), (None, 1, False),       # unset scale-up window: 0 s
    (299, None, False), (300, None, True),   # unset scale-down window: 300 s
])
def test_scale_down_window_against_scale_up(up, down, flagged):
    resources = _prod()
    behavior = _hpa(resources)["behavior"]
    for side, value in (("scaleUp", up), ("scaleDown", down)):
        behavior[side].pop("stabilizationWindowSeconds")
        if value is not None:
            behavior[side]["stabilizationWindowSeconds"] = value
    assert bool(_messages(resources, "agent-scale-down-slower")) is flagged


# --------------------------------------------------------------------------------------------
# agent-autopilot-resources: ephemeral storage 10Mi .. 10Gi; limits = requests without bursting.


@pytest.mark.parametrize(("value", "problem"), [
    ("10Mi", None), ("9Mi", "is below the Autopilot minimum 10Mi"),
    ("10Gi", None), ("10241Mi", "exceeds the Autopilot maximum 10Gi"),
])
def test_ephemeral_storage_at_the_autopilot_range(value, problem):
    resources = _prod()
    _container(resources)["resources"]["requests"]["ephemeral-storage"] = value
    found = [m for m in _messages(resources, "agent-autopilot-resources") if "ephemeral-storage" in m]
    assert found == ([f"ephemeral-storage request {value} {problem}" + (" and would be raised silently" if "minimum" in problem
                                                                          else " and is rejected")] if problem else [])


def test_no_ephemeral_storage_request_is_autopilots_default_not_a_problem():
    """Unset, Autopilot gives the pod its default ephemeral storage: nothing to say about it."""
    resources = _prod()
    _container(resources)["resources"]["requests"].pop("ephemeral-storage", None)
    assert not [m for m in _messages(resources, "agent-autopilot-resources") if "ephemeral-storage" in m]


@pytest.mark.parametrize(("limits", "flagged"), [
    ({"cpu": "2000m", "memory": "4096Mi"}, False),
    ({"cpu": "2001m", "memory": "4096Mi"}, True),
    ({"cpu": "2000m", "memory": "4097Mi"}, True),
    ({"memory": "4096Mi"}, False),  # an unset limit is set to the request by Autopilot: nothing declared differs
])
def test_limits_that_differ_from_requests_without_bursting(limits, flagged):
    resources = _prod()
    _container(resources)["resources"]["limits"] = dict(limits, **{"ephemeral-storage": "1Gi"})
    found = [m for m in _messages(resources, "agent-autopilot-resources") if "differ from requests" in m]
    assert bool(found) is flagged


def test_missing_requests_take_autopilot_defaults_silently():
    resources = _prod()
    del _container(resources)["resources"]["requests"]["memory"]
    assert _messages(resources, "agent-autopilot-resources") == [
        "CPU or memory request missing: Autopilot applies its defaults (0.5 vCPU / 2 GiB) silently"]


# --------------------------------------------------------------------------------------------
# Probes: ports, paths and the framework's health port.


@pytest.mark.parametrize(("port", "says"), [
    ("metrics", None), (9100, None), ("9100", None), (8081, None),
    (9101, "livenessProbe checks port 9101 but the agent serves only 8081 (AGENT_HEALTH_PORT), 9100 (AGENT_METRICS_PORT)"),
    ("nothing", "livenessProbe checks port 'nothing', which no container port is named: the probe always fails"),
])
@pytest.mark.parametrize("handler", ["httpGet", "tcpSocket"])
def test_probe_ports_the_agent_serves(port, says, handler):
    resources = _prod()
    _container(resources)["livenessProbe"].pop("httpGet")
    _container(resources)["livenessProbe"][handler] = {"port": port, **({"path": "/live"} if handler == "httpGet" else {})}
    found = [m for m in _messages(resources, "agent-probes") if m.startswith("livenessProbe")]
    assert (found == []) if says is None else (len(found) == 1 and found[0].startswith(says)), found


def test_probe_ports_follow_the_env_the_agent_reads():
    resources = _prod()
    _env(resources, "AGENT_METRICS_PORT", "9200")
    [message] = [m for m in _messages(resources, "agent-probes") if m.startswith("livenessProbe")]
    assert message.startswith("livenessProbe checks port 9100 but the agent serves only 8081 (AGENT_HEALTH_PORT), "
                              "9200 (AGENT_METRICS_PORT)")


@pytest.mark.parametrize(("handler", "flagged"), [
    ({"httpGet": {"path": "/ready", "port": "metrics"}}, False),
    ({"httpGet": {"path": "/ready", "port": 9100}}, False),
    ({"httpGet": {"path": "/live", "port": "metrics"}}, True),
    ({"httpGet": {"path": "/ready", "port": "health"}}, True),
    ({"tcpSocket": {"port": "metrics"}}, True),
    (None, True),
])
def test_readiness_must_be_get_ready_on_the_metrics_port(handler, flagged):
    resources = _prod()
    if handler is None:
        del _container(resources)["readinessProbe"]
    else:
        _container(resources)["readinessProbe"] = {"periodSeconds": 5, **handler}
    assert bool(_messages(resources, "agent-readiness-registered")) is flagged


@pytest.mark.parametrize(("value", "flagged"), [("false", False), ("true", True), ("TRUE", True), (" 1 ", True),
                                                ("0", False), (None, False)])
def test_conversation_text_as_the_agent_reads_it(value, flagged):
    """The agent turns it on for `true` or `1`, any case (agent/voice_agent/env_declarations.py TRUE)."""
    resources = _prod()
    _env(resources, "AGENT_LOG_CONVERSATION_TEXT", value)
    assert bool(_messages(resources, "agent-no-conversation-text")) is flagged


# --------------------------------------------------------------------------------------------
# agent-pdb: a budget must select the agent and allow a disruption.


@pytest.mark.parametrize(("budget", "flagged"), [
    ({"maxUnavailable": 1}, False), ({"maxUnavailable": "1%"}, False), ({"minAvailable": "99%"}, False),
    ({"minAvailable": 1}, False), ({"maxUnavailable": 0}, True), ({"minAvailable": "100%"}, True),
])
def test_budget_at_the_edge_of_no_disruption(budget, flagged):
    resources = _prod()
    pdb = next(r for r in resources if r["name"] == "agent-pdb")["inputs"]["spec"]
    pdb.pop("maxUnavailable", None)
    pdb.update(budget)
    assert bool(_messages(resources, "agent-pdb")) is flagged


def test_a_budget_selecting_other_pods_does_not_cover_the_agent():
    resources = _prod()
    pdb = next(r for r in resources if r["name"] == "agent-pdb")["inputs"]["spec"]
    pdb["selector"]["matchLabels"] = {**pdb["selector"]["matchLabels"], "app.kubernetes.io/name": "other"}
    assert _messages(resources, "agent-pdb") == ["no PodDisruptionBudget selects the agent: a node drain may evict every "
                                                 "pod at once"]
    pdb["selector"]["matchLabels"] = {}
    assert _messages(resources, "agent-pdb") == ["no PodDisruptionBudget selects the agent: a node drain may evict every "
                                                 "pod at once"]


# --------------------------------------------------------------------------------------------
# agent-exec-form-start: the worker must get SIGTERM itself and run `start`.


@pytest.mark.parametrize(("command", "args", "says"), [
    (["python", "-m", "voice_agent"], ["start"], []),
    (["/bin/sh", "-c", "exec python -m voice_agent start"], [], []),
    (["bash", "-c", "cd /app && exec python -m voice_agent start"], [], []),
    (["/usr/bin/dash", "-c", "exec python -m voice_agent start; echo done"], [],
     ["the agent runs under `/usr/bin/dash -c 'exec python -m voice_agent start; echo done'`: the shell receives SIGTERM"]),
    (["sh", "-c", "python -m voice_agent start"], [], ["the agent runs under `sh -c 'python -m voice_agent start'`"]),
    # two statements name a mode: the last of them is the worker (a dry check before it is not)
    (["sh", "-c", "python -m voice_agent start --help; exec python -m voice_agent start"], [], []),
    (["sh", "-c", "exec python -m voice_agent start; python -m voice_agent dev"], [],
     ["the agent runs under `sh -c 'exec python -m voice_agent start; python -m voice_agent dev'`",
      "`python -m voice_agent dev` runs development mode"]),
    # no statement names a mode: the last one is the one judged
    (["sh", "-c", "cd /app && exec python -m voice_agent"], [],
     ["`python -m voice_agent` does not run the worker's `start` mode"]),
    (["sh", "-c"], [], ["the agent runs under `sh -c`", "`` does not run the worker's `start` mode"]),
    (["python", "-m", "voice_agent"], ["dev"], ["`python -m voice_agent dev` runs development mode"]),
    (["python", "-m", "voice_agent"], ["console"], ["`python -m voice_agent console` runs development mode"]),
    (["python", "-m", "voice_agent"], [], ["`python -m voice_agent` does not run the worker's `start` mode"]),
    ([], [], ["no command: the image's entrypoint decides"]),
])
def test_exec_form_start(command, args, says):
    resources = _prod()
    _container(resources).update(command=command, args=args)
    found = _messages(resources, "agent-exec-form-start")
    assert len(found) == len(says) and all(m.startswith(s) for m, s in zip(found, says)), found


@pytest.mark.parametrize(("pre_stop", "seconds", "sleep_only"), [
    ({"sleep": {"seconds": 5}}, 5, True),
    ({"exec": {"command": ["/bin/sh", "-c", "sleep 5"]}}, 5, True),
    ({"exec": {"command": ["sh", "-c", "sleep 5; sleep 7"]}}, 12, True),
    ({"exec": {"command": ["sleep", "5"]}}, 5, True),
    ({"exec": {"command": ["/bin/bash", "-c", "sleep 5"]}}, 5, True),
    ({"exec": {"command": ["bash", "-c", "sleep 5"]}}, 5, True),
    ({"exec": {"command": ["/bin/sh", "-c", "curl -X POST localhost:8081/drain; sleep 5"]}}, 5, False),
    ({"exec": {"command": ["/bin/sh", "-c", "sleep"]}}, 0, True),
    ({"httpGet": {"path": "/drain", "port": 8081}}, 0, False),
])
def test_pre_stop_seconds_and_sleep_only(pre_stop, seconds, sleep_only):
    resources = _prod()
    _container(resources)["lifecycle"] = {"preStop": pre_stop}
    [grace] = _messages(resources, "agent-grace-covers-drain") or [""]
    assert (f"< preStop {seconds} + drain timeout" in grace) if seconds else grace == ""
    found = _messages(resources, "agent-no-sleep-prestop")
    assert bool(found) is sleep_only
    if sleep_only:
        assert found[0].startswith(f"preStop only sleeps {seconds} s: ") and f"then has {2800 - seconds} s of the 2800 s" in found[0]
