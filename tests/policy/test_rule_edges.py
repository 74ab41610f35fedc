"""Ways around a rule that a careful user could still write, each caught for its stated reason.

Every case starts from a real evaluation of a committed stack under mocks. Config validation
cannot produce these states (the program always renders a Utilization target, the cluster
tolerance, a 1-pod budget and probes on the named health port), so each failing case mutates the
recorded inputs, the way a hand edit or a later program change would. The same cases also go
through the CrossGuard adapters (protobuf numbers, read-only proxies) and must read the same.
"""

from __future__ import annotations

import copy

import pytest

from tooling.plan import evaluate
from policy.engine import evaluate_plan, load_policy_config
from tests.conftest import _fixture_plan
from tests.policy.test_pack import crossguard_report

CLUSTER = "gcp:container/cluster:Cluster"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
P = "gke-voice-agents:"


def _one(resources: list[dict], typ: str) -> dict:
    # the agent's objects, not the metrics adapter's or the tool server's (their own Deployments
    # and PDBs); one of a kind otherwise (the cluster)
    found = [r for r in resources if r["type"] == typ]
    [found] = [r for r in found if r["name"].startswith("agent-")] if len(found) > 1 else found
    return found["inputs"]


def _container(resources: list[dict]) -> dict:
    return _one(resources, DEPLOYMENT)["spec"]["template"]["spec"]["containers"][0]


def _rule_messages(resources: list[dict], stack: str, rule: str) -> list[str]:
    return [v["message"] for v in evaluate_plan(resources, stack) if v["rule"] == rule]


def _same_in_crossguard(resources: list[dict], stack: str) -> None:
    engine = sorted((v["rule"], v["message"]) for v in evaluate_plan(resources, stack))
    pack = sorted((name, message) for name, message, _ in crossguard_report(resources, load_policy_config(stack)))
    assert pack == engine


# --------------------------------------------------------------------------------------------
# HPA targets stated another way. prod: 2000m request, no bursting, so the effective limit is
# 2000m too; load_threshold 0.7.


def _cpu_metric(resources: list[dict], metric: dict) -> list[dict]:
    _one(resources, HPA)["spec"]["metrics"] = [metric]
    return resources


def test_average_value_target_deadlocks_like_a_percentage():
    """1800m per pod is 90 % of the 2000m request: load 0.9 x 1.1 = 0.99 >= 0.7. Without this
    reading, switching the HPA to AverageValue would slip past the rule."""
    resources = _cpu_metric(_fixture_plan("prod").resources, {"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "AverageValue", "averageValue": "1800m"}}})
    assert _rule_messages(resources, "prod", "agent-hpa-below-load-threshold") == [
        "HPA target 1800m per pod (90% of a 2000m request) with a 2000m effective limit puts each worker at load 0.99 "
        "(with the 10% HPA tolerance) >= load_threshold 0.7: every pod reports full before the HPA scales, and new "
        "callers wait; use an averageValue of at most 1260m"]
    _same_in_crossguard(resources, "prod")


def test_average_value_target_below_the_threshold_passes():
    """1000m per pod = 50 % of the request, the committed target written absolutely: load 0.55."""
    resources = _cpu_metric(_fixture_plan("prod").resources, {"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "AverageValue", "averageValue": "1"}}})
    assert _rule_messages(resources, "prod", "agent-hpa-below-load-threshold") == []


def test_container_resource_metric_is_read_too():
    resources = _cpu_metric(_fixture_plan("prod").resources, {"type": "ContainerResource", "containerResource": {
        "name": "cpu", "container": "agent", "target": {"type": "Utilization", "averageUtilization": 75}}})
    [message] = _rule_messages(resources, "prod", "agent-hpa-below-load-threshold")
    assert message.startswith("HPA target 75% of a 2000m request with a 2000m effective limit puts each worker at load 0.83")
    _same_in_crossguard(resources, "prod")


@pytest.mark.parametrize(("target", "tolerance", "expected_load"), [
    # A larger per-HPA tolerance lets pods run further above target before the HPA acts.
    (50, "0.5", "0.75"),
    # A smaller one is not trusted (ignored where HPAConfigurableTolerance is off): 64 % x 1.1.
    (64, "0.01", "0.70"),
])
def test_per_hpa_scale_up_tolerance_counts_only_when_larger(target, tolerance, expected_load):
    resources = _fixture_plan("prod").resources
    spec = _one(resources, HPA)["spec"]
    spec["metrics"][0]["resource"]["target"]["averageUtilization"] = target
    spec["behavior"]["scaleUp"]["tolerance"] = tolerance
    [message] = _rule_messages(resources, "prod", "agent-hpa-below-load-threshold")
    used = max(0.10, float(tolerance))
    assert f"puts each worker at load {expected_load} (with the {used:.0%} HPA tolerance)" in message


def test_a_larger_tolerance_within_the_threshold_passes():
    """50 % x (1 + 0.3) = 0.65 < 0.7."""
    resources = _fixture_plan("prod").resources
    _one(resources, HPA)["spec"]["behavior"]["scaleUp"]["tolerance"] = "300m"
    assert _rule_messages(resources, "prod", "agent-hpa-below-load-threshold") == []


# --------------------------------------------------------------------------------------------
# Control plane: narrow ranges plus "all of Google Cloud".


def test_google_cloud_public_ranges_open_the_ip_endpoint():
    """A stack may open the IP endpoint to a named office range (config accepts it, real
    evaluation); letting every Google Cloud public address in as well defeats the narrow range."""
    resources = copy.deepcopy(evaluate("prod", {P + "controlPlaneAuthorizedNetworks": '{"office": "203.0.113.0/24"}'}).resources)
    assert _rule_messages(resources, "prod", "gke-no-open-control-plane") == []
    _one(resources, CLUSTER)["masterAuthorizedNetworksConfig"]["gcpPublicCidrsAccessEnabled"] = True
    assert _rule_messages(resources, "prod", "gke-no-open-control-plane") == [
        "masterAuthorizedNetworksConfig.gcpPublicCidrsAccessEnabled = true admits every Google Cloud public IP to the "
        "control plane's IP endpoint, not just the named ranges; set it to false"]


def test_google_cloud_public_ranges_do_not_matter_with_the_ip_endpoint_off():
    resources = _fixture_plan("prod").resources
    assert _one(resources, CLUSTER)["controlPlaneEndpointsConfig"]["ipEndpointsConfig"]["enabled"] is False
    _one(resources, CLUSTER)["masterAuthorizedNetworksConfig"] = {"gcpPublicCidrsAccessEnabled": True}
    assert _rule_messages(resources, "prod", "gke-no-open-control-plane") == []


# --------------------------------------------------------------------------------------------
# A disruption budget of zero.


@pytest.mark.parametrize(("budget", "setting"), [
    ({"maxUnavailable": 0}, "maxUnavailable 0"),
    ({"maxUnavailable": "0%"}, "maxUnavailable 0%"),
    ({"minAvailable": "100%"}, "minAvailable 100%"),
])
def test_budget_that_allows_no_disruption_is_flagged_on_the_pdb(budget, setting):
    resources = _fixture_plan("prod").resources
    spec = _one(resources, PDB)["spec"]
    spec.pop("maxUnavailable")
    spec.update(budget)
    found = [(v["resource"], v["message"]) for v in evaluate_plan(resources, "prod") if v["rule"] == "agent-pdb"]
    assert found == [("agent-pdb", f"the budget allows no disruption ({setting}): node upgrades stall on it for up to 1 h "
                                   "and then evict anyway, and the autoscaler can never empty a node; allow one pod at a "
                                   "time (maxUnavailable: 1)")]
    _same_in_crossguard(resources, "prod")


# --------------------------------------------------------------------------------------------
# Probes aimed at the wrong port.


def test_probes_on_a_port_the_worker_does_not_serve_are_flagged():
    """The named port `metrics` renumbered to 8080: every probe now misses the agent's 9100."""
    resources = _fixture_plan("dev").resources
    container = _container(resources)
    next(p for p in container["ports"] if p["name"] == "metrics")["containerPort"] = 8080
    messages = _rule_messages(resources, "dev", "agent-probes")
    assert [m.split(" checks")[0] for m in messages] == ["startupProbe", "livenessProbe", "readinessProbe"]
    assert messages[1] == ("livenessProbe checks port 8080 but the agent serves only 8081 (AGENT_HEALTH_PORT), "
                           "9100 (AGENT_METRICS_PORT): the probe always fails and the kubelet restarts or holds back a healthy pod")
    _same_in_crossguard(resources, "dev")


def test_probe_port_follows_the_agent_metrics_port_env():
    resources = _fixture_plan("dev").resources
    env = _container(resources)["env"]
    next(e for e in env if e["name"] == "AGENT_METRICS_PORT")["value"] = "9000"
    messages = _rule_messages(resources, "dev", "agent-probes")
    assert len(messages) == 3 and all("serves only 8081 (AGENT_HEALTH_PORT), 9000 (AGENT_METRICS_PORT)" in m for m in messages)
    assert _rule_messages(resources, "dev", "agent-readiness-registered") == [
        "readinessProbe checks /ready on port 9100, not GET /ready on 9000: readiness must mean registered with LiveKit "
        "and not draining, or a release that cannot take calls (wrong secret, wrong URL, no model access) still replaces "
        "the fleet"]


def test_a_rollout_without_deadline_or_with_recreate_is_flagged():
    resources = _fixture_plan("prod").resources
    deployment = next(r for r in resources if r["name"] == "agent-deployment")["inputs"]["spec"]
    deployment.pop("progressDeadlineSeconds")
    assert [m.split(":")[0] for m in _rule_messages(resources, "prod", "agent-rollout-keeps-old-pods")] == [
        "no progressDeadlineSeconds"]
    deployment["strategy"] = {"type": "Recreate"}
    assert len(_rule_messages(resources, "prod", "agent-rollout-keeps-old-pods")) == 2
    deployment["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "0%"}}
    deployment["progressDeadlineSeconds"] = 300
    assert _rule_messages(resources, "prod", "agent-rollout-keeps-old-pods") == []


@pytest.mark.parametrize("deadline, found", [
    (250, []),  # equal to node boot 120 + startup budget 120 + minReadySeconds 10
    (249, ["progressDeadlineSeconds 249 < node boot 120 + startup probe budget 120 + minReadySeconds 10 = 250 s"]),
    (10, ["progressDeadlineSeconds 10 is not above minReadySeconds 10: Kubernetes refuses the Deployment"]),
])
def test_the_progress_deadline_outlasts_a_healthy_start(deadline, found):
    resources = _fixture_plan("prod").resources
    spec = next(r for r in resources if r["name"] == "agent-deployment")["inputs"]["spec"]
    assert spec["minReadySeconds"] == 10
    spec["progressDeadlineSeconds"] = deadline
    messages = _rule_messages(resources, "prod", "agent-rollout-keeps-old-pods")
    assert [m.split(":")[0] for m in messages] == [f.split(":")[0] for f in found]


def test_probe_on_an_unnamed_port_is_flagged():
    resources = _fixture_plan("dev").resources
    _container(resources)["livenessProbe"]["httpGet"]["port"] = "healthz"
    assert _rule_messages(resources, "dev", "agent-probes") == [
        "livenessProbe checks port 'healthz', which no container port is named: the probe always fails"]


# --------------------------------------------------------------------------------------------
# Registry access granted on the project instead of the repository.

REPOSITORY_MEMBER = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"


def _node_reader_moved(resources: list[dict], role: str) -> list[dict]:
    """The repository grant replaced by the same member on the project, as a user might."""
    grant = next(r for r in resources if r["type"] == REPOSITORY_MEMBER)
    resources.remove(grant)
    resources.append({"type": PROJECT_MEMBER, "name": "nodes-registry", "parent": None,
                      "inputs": {"project": grant["inputs"]["project"], "role": role, "member": grant["inputs"]["member"]}})
    return resources


def test_project_level_reader_lets_the_nodes_pull():
    resources = _node_reader_moved(_fixture_plan("prod").resources, "roles/artifactregistry.reader")
    assert _rule_messages(resources, "prod", "registry-node-reader") == []


def test_project_level_grant_without_read_is_still_a_violation():
    resources = _node_reader_moved(_fixture_plan("prod").resources, "roles/logging.logWriter")
    [message] = _rule_messages(resources, "prod", "registry-node-reader")
    assert message.startswith("node service account gva-prod-nodes@gva-fixture-prod.iam.gserviceaccount.com "
                              "cannot pull from this repository")
