"""AgentMonitoring (infra/monitoring.py) under the Pulumi mocks: one dashboard whose widgets are
exactly the runbook's panels, one alert policy per runbook alert with its PromQL condition,
every input a field of the pinned pulumi-gcp, and the component's outputs checked inside apply
(proven to run). The queries themselves run against a real Prometheus in
agent/tests/test_runbook.py.

The component is not wired into __main__.py yet, so the tests build it in a program of their own
(mocks, config and settings are process-global: each build replaces them)."""

from __future__ import annotations

import json
import re

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.mocks import set_mocks
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from domain import runbook
from tooling.mocks import ParentTrackingMonitor, RecordingMocks, args_class
from infra.monitoring import AgentMonitoring, AgentMonitoringArgs, rule_name
from tests.infra.test_provider_schema import unknown_fields

DASHBOARD = "gcp:monitoring/dashboard:Dashboard"
ALERT = "gcp:monitoring/alertPolicy:AlertPolicy"
CHANNEL = "projects/gva-fixture-prod/notificationChannels/123"


def build(stack: str, channels: tuple[str, ...] = (), latency: float = runbook.DEFAULT_LATENCY_ALERT_P95_SECONDS):
    mocks = RecordingMocks()
    pulumi_settings.reset_options(project="gke-voice-agents", stack=stack, preview=False)
    set_mocks(mocks, project="gke-voice-agents", stack=stack, preview=False, monitor=ParentTrackingMonitor(mocks))
    component = AgentMonitoring("runbook", AgentMonitoringArgs(
        project=f"gva-fixture-{stack}", stack=stack, notification_channels=channels,
        latency_alert_p95_seconds=latency))
    _sync_await(wait_for_rpcs())
    return component, mocks


def of_type(mocks: RecordingMocks, resource_type: str):
    return [r for r in mocks.resources if r.type == resource_type]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_dashboard_shows_every_runbook_panel_in_order(stack):
    _, mocks = build(stack)
    [dashboard] = of_type(mocks, DASHBOARD)
    assert dashboard.name == "runbook-dashboard" and dashboard.parent == "runbook"
    doc = json.loads(dashboard.inputs["dashboardJson"])
    tiles = doc["mosaicLayout"]["tiles"]
    queries = [t["widget"]["xyChart"]["dataSets"][0]["timeSeriesQuery"]["prometheusQuery"] for t in tiles]
    assert queries == [p.query for p in runbook.dashboard_panels()]
    titles = {t["widget"]["title"] for t in tiles}
    for needed in ("Active sessions by version", "New sessions by version", "Worker load / load threshold",
                   "Full pods by version", "Drains started", "Drains finished", "Drains timed out",
                   "Sessions lost or ended in error"):
        assert any(title.startswith(needed) for title in titles), needed
    # tiles never overlap and stay inside the 12-column grid
    cells = [(t["xPos"], t["yPos"]) for t in tiles]
    assert len(set(cells)) == len(cells) and all(t["xPos"] + t["width"] <= 12 for t in tiles)
    load = next(t for t in tiles if t["widget"]["title"].startswith("Worker load"))
    assert load["widget"]["xyChart"]["thresholds"][0]["value"] == 1.0
    assert stack in doc["displayName"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_one_alert_policy_per_runbook_alert(stack):
    _, mocks = build(stack, channels=(CHANNEL,))
    policies = {r.name: r.inputs for r in of_type(mocks, ALERT)}
    assert set(policies) == {f"runbook-{a.key}" for a in runbook.alert_rules()}
    for alert in runbook.alert_rules():
        policy = policies[f"runbook-{alert.key}"]
        [condition] = policy["conditions"]
        promql = condition["conditionPrometheusQueryLanguage"]
        assert promql["query"] == alert.query and promql["duration"] == alert.duration
        assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", promql["alertRule"]), promql["alertRule"]
        assert promql["ruleGroup"] == "voice-agents" and promql["evaluationInterval"] == "60s"
        assert policy["notificationChannels"] == [CHANNEL]
        assert policy["userLabels"] == {"stack": stack, "app": "voice-agent"}
        assert policy["severity"] in ("CRITICAL", "ERROR", "WARNING")
        assert policy["documentation"]["content"]
    assert {a.key for a in runbook.alert_rules()} == {
        "no-worker-registered", "every-pod-full", "drain-timed-out", "sessions-cut", "slow-answers"}


def test_every_input_is_a_field_of_the_pinned_provider():
    _, mocks = build("prod")
    for resource in of_type(mocks, DASHBOARD) + of_type(mocks, ALERT):
        cls = args_class(resource.type)
        assert cls is not None
        assert list(unknown_fields(cls, resource.inputs, resource.name)) == []


def test_rule_names_are_prometheus_identifiers():
    assert rule_name("no-worker-registered") == "VoiceAgentNoWorkerRegistered"


def test_outputs_name_every_policy(apply_probe):
    component, _ = build("dev")

    def names_every_alert(names):
        assert sorted(names) == sorted(f"{a.title} (dev)" for a in runbook.alert_rules())

    apply_probe.check("alert policy names", component.alert_policy_names, names_every_alert)
    apply_probe.check("dashboard id", component.dashboard_id, lambda value: (isinstance(value, str) and value) or pytest.fail(f"dashboard id {value!r}"))


def test_latency_threshold_reaches_the_alert_and_the_p95_panel():
    """Guards against the stack's latencyAlertP95Seconds stopping short of Cloud Monitoring."""
    _, mocks = build("prod", latency=1.5)
    [policy] = [r.inputs for r in of_type(mocks, ALERT) if r.name == "runbook-slow-answers"]
    query = policy["conditions"][0]["conditionPrometheusQueryLanguage"]["query"]
    assert query == runbook.slow_answers(1.5) and query.endswith(" > 1.5")
    assert policy["conditions"][0]["conditionPrometheusQueryLanguage"]["duration"] == "300s"
    [dashboard] = of_type(mocks, DASHBOARD)
    tiles = json.loads(dashboard.inputs["dashboardJson"])["mosaicLayout"]["tiles"]
    p95 = next(t for t in tiles if t["widget"]["title"].startswith("Time to first audio p95"))
    assert p95["widget"]["xyChart"]["thresholds"] == [{"value": 1.5, "label": "alert", "color": "RED"}]
    assert any(t["widget"]["title"].startswith("Time to first audio p50") for t in tiles)


def test_alerts_can_be_created_before_their_metrics_exist():
    """Cloud Monitoring refuses a PromQL condition on a metric it has never seen unless metric
    validation is off (pulumi-gcp 10.2.0 monitoring/_inputs.py; terraform-provider-google#20491);
    every series here appears only once agents run, after the policies are created."""
    _, mocks = build("prod")
    conditions = [c for r in of_type(mocks, ALERT) for c in r.inputs["conditions"]]
    assert len(conditions) == len(runbook.alert_rules())
    assert all(c["conditionPrometheusQueryLanguage"]["disableMetricValidation"] is True for c in conditions)
