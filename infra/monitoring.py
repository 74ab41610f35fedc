"""AgentMonitoring: seed 001's runbook in Cloud Monitoring, a dashboard and alert policies.

Every query comes from domain/runbook.py, where the agent's tests run it against a real
Prometheus scraping real agent processes (agent/tests/test_runbook.py); this file only places
them. Managed Service for Prometheus (on in the cluster) ingests the PodMonitoring scrape, and
Cloud Monitoring evaluates PromQL in dashboard widgets (``prometheusQuery``) and in alert
conditions (``conditionPrometheusQueryLanguage``):
https://cloud.google.com/monitoring/promql/create-promql-alerts-console and
https://cloud.google.com/monitoring/api/ref_v3/rest/v1/projects.dashboards.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from domain import runbook
from infra.names import child, type_token

# Prometheus rule names (the alert's `alertname`): [a-zA-Z_:][a-zA-Z0-9_:]*
RULE_GROUP = "voice-agents"
# Every condition's series (voice_agent_*, lk_agents_*) exists only once agent pods run, and
# Cloud Monitoring refuses a PromQL condition on a metric it has not seen unless validation is
# off (pulumi-gcp 10.2.0 monitoring/_inputs.py `disable_metric_validation`, added for exactly
# this by terraform-provider-google#20491). Without it the first `pulumi up` stops here.
DISABLE_METRIC_VALIDATION = True
# Cloud Monitoring evaluates a PromQL condition at most this often (evaluationInterval).
EVALUATION_INTERVAL = "60s"
GRID_COLUMNS = 12
TILE_WIDTH, TILE_HEIGHT = 6, 4


@dataclass(frozen=True)
class AgentMonitoringArgs:
    project: str
    stack: str
    # Channel ids (projects/<p>/notificationChannels/<id>); empty: the policies fire into the
    # console's incident list only.
    notification_channels: Sequence[str] = field(default_factory=tuple)
    # latencyAlertP95Seconds: the slow-answers alert fires above this p95 time to first audio
    latency_alert_p95_seconds: float = runbook.DEFAULT_LATENCY_ALERT_P95_SECONDS


def rule_name(key: str) -> str:
    """no-worker-registered -> VoiceAgentNoWorkerRegistered"""
    return "VoiceAgent" + "".join(part.capitalize() for part in key.split("-"))


def dashboard_json(stack: str, latency_alert_p95_seconds: float = runbook.DEFAULT_LATENCY_ALERT_P95_SECONDS) -> str:
    tiles = []
    for index, panel in enumerate(runbook.dashboard_panels()):
        chart: dict = {
            "dataSets": [{"timeSeriesQuery": {"prometheusQuery": panel.query}, "plotType": "LINE"}],
        }
        if panel.query == runbook.worker_load_vs_threshold():
            # at 1 the worker reports itself full and LiveKit offers it no more calls
            chart["thresholds"] = [{"value": 1.0, "label": "full", "color": "RED"}]
        if panel.query == runbook.time_to_first_audio_by_version(0.95):
            # the slow-answers alert's line
            chart["thresholds"] = [{"value": latency_alert_p95_seconds, "label": "alert", "color": "RED"}]
        tiles.append({
            "xPos": (index % 2) * TILE_WIDTH,
            "yPos": (index // 2) * TILE_HEIGHT,
            "width": TILE_WIDTH,
            "height": TILE_HEIGHT,
            "widget": {"title": panel.title, "xyChart": chart},
        })
    return json.dumps({
        "displayName": f"Voice agents ({stack}): rollouts and drains",
        "mosaicLayout": {"columns": GRID_COLUMNS, "tiles": tiles},
    }, sort_keys=True)


def alert_policy_args(alert: runbook.Alert, args: AgentMonitoringArgs) -> dict:
    return {
        "project": args.project,
        "display_name": f"{alert.title} ({args.stack})",
        "combiner": "OR",
        "severity": alert.severity,
        "conditions": [{
            "display_name": alert.title,
            "condition_prometheus_query_language": {
                "query": alert.query,
                "duration": alert.duration,
                "evaluation_interval": EVALUATION_INTERVAL,
                "alert_rule": rule_name(alert.key),
                "rule_group": RULE_GROUP,
                "disable_metric_validation": DISABLE_METRIC_VALIDATION,
            },
        }],
        "documentation": {"content": alert.doc, "mime_type": "text/markdown"},
        "notification_channels": list(args.notification_channels),
        "user_labels": {"stack": args.stack, "app": "voice-agent"},
    }


class AgentMonitoring(pulumi.ComponentResource):
    dashboard_id: pulumi.Output[str]
    alert_policy_names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: AgentMonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "AgentMonitoring"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        dashboard = gcp.monitoring.Dashboard(
            child(name, "dashboard"), project=args.project, dashboard_json=dashboard_json(args.stack, args.latency_alert_p95_seconds),
            opts=child_opts)
        policies = [
            # keyed by the alert's stable key, never its position
            gcp.monitoring.AlertPolicy(child(name, alert.key), **alert_policy_args(alert, args), opts=child_opts)
            for alert in runbook.alert_rules(args.latency_alert_p95_seconds)
        ]
        self.dashboard_id = dashboard.id
        self.alert_policy_names = pulumi.Output.all(*[p.display_name for p in policies])
        self.register_outputs({"dashboardId": self.dashboard_id, "alertPolicyNames": self.alert_policy_names})
